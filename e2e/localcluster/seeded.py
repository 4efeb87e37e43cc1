"""Containerd roots that already hold a node's images, imported once and cloned into each node.

Importing kubetune's image (about 550 MB) costs a node's containerd about 30
CPU-seconds: ctr reads and hashes the archive, writes every layer into the
content store and unpacks it into overlayfs snapshots. A test run starts a
dozen nodes, on two shared cores, so imports were the largest single cost of
bringing a cluster up. Instead, the images are imported once per set of
archives into a *seeded root*, kept in the cache (`containerd-roots/<key>/`),
and each node's containerd starts on a hard-linked copy of it (`cp -al`):
about a second, and no CPU to speak of.

Why hard links are safe here:
- content blobs are immutable (named by their digest);
- committed snapshots are only ever overlayfs lower directories, which the
  kernel never writes (a container's writes go to its own upper directory);
- deleting anything (a node's teardown, containerd's garbage collection)
  unlinks, leaving the seeded root's links alone.
The two bolt databases (containerd's metadata and the overlayfs
snapshotter's) are written in place, so each node gets copies of those.

The key covers the archives (path, size, modification time), the names each
image gets, and containerd's version, so a rebuilt image or an upgraded
containerd seeds anew; older seeded roots are removed then. Where the cache
and the node's folder are on different filesystems (no hard links), or
anything about the seeded root is off, the node imports as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from . import mounts
from .binaries import cache_root
from .images import NodeImage, import_archives
from .procs import ManagedProcess, wait_until

log = logging.getLogger(__name__)

#: Files containerd writes in place: copied, never linked.
DATABASES = (
    Path("io.containerd.metadata.v1.bolt") / "meta.db",
    Path("io.containerd.snapshotter.v1.overlayfs") / "metadata.db",
)


def roots_dir() -> Path:
    return cache_root() / "containerd-roots"


def _containerd_version() -> str:
    done = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def key(images: list[NodeImage], pinned: str) -> str:
    """What the seeded root depends on: each archive as it is on disk, its names, and containerd."""
    parts: list[object] = [_containerd_version(), pinned]
    for image in images:
        stat = image.archive.stat()
        parts.append([str(image.archive), stat.st_size, stat.st_mtime_ns, image.name, list(image.aliases)])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def seeded_root(images: list[NodeImage], pinned: str, logs: Path) -> Path:
    """The containerd root holding `images` (the first tagged `pinned`), importing them on first use."""
    folder = roots_dir() / key(images, pinned)
    root = folder / "root"
    with _locked(roots_dir() / ".lock"):
        if (folder / ".complete").exists():
            return root
        for old in roots_dir().iterdir():  # other keys: an older image or containerd
            if old.is_dir() and old != folder:
                _remove(old)
        _remove(folder)
        started = time.monotonic()
        _seed(folder, images, pinned, logs)
        (folder / ".complete").touch()
        log.info("seeded containerd root %s in %.1fs", folder, time.monotonic() - started)
    return root


def _remove(folder: Path) -> None:
    """Removes a (possibly half-built) seeded root, detaching what an interrupted unpack left mounted."""
    if folder.exists():
        mounts.detach(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _seed(folder: Path, images: list[NodeImage], pinned: str, logs: Path) -> None:
    """Runs a containerd of its own (no CRI, no network) on `folder`/root and imports the images into it."""
    state = folder / "state"
    state.mkdir(parents=True)
    socket = state / "containerd.sock"
    config = state / "containerd.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{folder / "root"}"\n'
        f'state = "{state / "run"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing",'
        ' "io.containerd.tracing.processor.v1.otlp"]\n'
        "[grpc]\n"
        f'address = "{socket}"\n'
        "[ttrpc]\n"
        f'address = "{state / "containerd.sock.ttrpc"}"\n'
    )

    process = ManagedProcess("containerd-seed", ["containerd", "--config", str(config)], logs / "containerd-seed.log")
    try:
        wait_until(lambda: not process.alive() or socket.exists(), 30, what="the seeding containerd to listen")
        if not process.alive():
            raise RuntimeError(f"the seeding containerd exited:\n{process.tail()}")
        import_archives(socket, images, pinned)  # as a node would, into the seeded root
    finally:
        process.stop(grace=10)  # a clean stop: bolt's last transaction is on disk
    mounts.detach(folder)
    shutil.rmtree(state, ignore_errors=True)


def clone(root: Path, target: Path) -> None:
    """Makes `target` a copy of the seeded root: files hard-linked, the databases copied."""
    if target.exists():
        raise FileExistsError(f"{target} exists: a node starts on an empty containerd root")
    if os.stat(root).st_dev != os.stat(target.parent).st_dev:
        raise OSError(f"{root} and {target} are on different filesystems: no hard links")
    done = subprocess.run(["cp", "-a", "-l", str(root), str(target)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise OSError(f"cp -al {root} {target} failed: {done.stderr.strip()[-1000:]}")
    for database in DATABASES:
        linked = target / database
        copy = linked.with_name(linked.name + ".copy")
        shutil.copy2(root / database, copy)
        copy.replace(linked)  # a file of its own, so this node's writes stay its own
