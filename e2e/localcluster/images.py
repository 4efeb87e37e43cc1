"""What "running an image" means here: a local command named by a map.

Images are never pulled. A container whose spec has a `command` runs that
command with the local PATH; one that relies on its image's ENTRYPOINT needs
an entry in the image map, a JSON file the tests write:

    {"kubetune:dev": {"entrypoint": ["python", "-m", "kubetune"],
                      "cmd": [], "env": {"PYTHONPATH": "/src"}, "workingDir": "/src"}}

Keys are image names or fnmatch patterns ("*kubetune*"); an exact name wins.
The file is re-read at every container start, so a test may change it while
the cluster runs.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

from .api import Obj


@dataclass(frozen=True)
class ImageEntry:
    """The parts of an image a container run needs: Docker's ENTRYPOINT and CMD."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None

    def to_json(self) -> Obj:
        return {"entrypoint": self.entrypoint, "cmd": self.cmd, "env": self.env, "workingDir": self.working_dir}


def load_map(path: Path | None) -> dict[str, ImageEntry]:
    if path is None or not path.exists():
        return {}
    raw = json.loads(path.read_text() or "{}")
    return {
        name: ImageEntry(
            list(e.get("entrypoint", [])), list(e.get("cmd", [])), dict(e.get("env", {})), e.get("workingDir")
        )
        for name, e in raw.items()
    }


def lookup(images: dict[str, ImageEntry], image: str) -> ImageEntry | None:
    if image in images:
        return images[image]
    for pattern, entry in images.items():
        if fnmatch.fnmatchcase(image, pattern):
            return entry
    return None


class NoCommand(RuntimeError):
    """The container names no command and its image is not in the map."""


def argv_for(container: Obj, entry: ImageEntry | None) -> list[str]:
    """Docker's rule: command replaces ENTRYPOINT (and drops CMD), args replace CMD."""
    command, args = container.get("command"), container.get("args")
    if command:
        return list(command) + list(args or [])
    if entry is not None and (entry.entrypoint or entry.cmd):
        return entry.entrypoint + (list(args) if args else entry.cmd)
    if args:
        return list(args)
    raise NoCommand(
        f"image {container.get('image')!r} is not mapped to a local command and the container sets no command"
    )
