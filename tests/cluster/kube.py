"""Small helpers for tests that drive a cluster through kubectl."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import yaml

T = TypeVar("T")

#: The image the cluster's containers run: the one `make image` built from this checkout (a local
#: cluster's nodes hold it), or KUBETUNE_E2E_IMAGE for an external cluster. It has python3 and sh,
#: runs as the numeric user 65532, and its working directory /app holds the examples' script.
IMAGE = os.environ.get("KUBETUNE_E2E_IMAGE", "localhost/kubetune:dev")


class Kubectl(Protocol):
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any: ...


def wait_for(predicate: Callable[[], T], timeout: float = 60, interval: float = 0.3, what: str = "condition") -> T:
    """Polls predicate until truthy; fails the test with what it last saw."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


#: kubectl get's flags that read_json understands; any other makes the read a kubectl run.
_VALUED = {"-n": "namespace", "--namespace": "namespace", "-l": "selector", "--selector": "selector"}
_ALL = {"-A", "--all-namespaces"}


def read_json(cluster: Any, *args: str) -> dict[str, Any] | None:
    """`kubectl get ARGS -o json` through the cluster's own reader (LocalCluster.get_json), else None.

    Why: the tests poll every fraction of a second, and a kubectl process per poll
    was a seventh of the suite's CPU on CI's two cores. None means "ask kubectl":
    a cluster without a reader (another identity's wrapper), or flags it does not take.
    Raises LookupError for a missing object.
    """
    reader = getattr(cluster, "get_json", None)
    if reader is None or not args:
        return None
    words, options, everywhere, rest = [], {}, False, list(args)
    while rest:
        arg = rest.pop(0)
        key, eq, value = arg.partition("=")
        if key in _VALUED:
            options[_VALUED[key]] = value if eq else (rest.pop(0) if rest else "")
        elif arg in _ALL:
            everywhere = True
        elif arg.startswith("-"):
            return None
        else:
            words.extend(arg.split("/", 1))
    if len(words) not in (1, 2) or "," in words[0]:
        return None
    try:
        return dict(reader(*words, all_namespaces=everywhere, **options))
    except Exception as exc:  # ApiError, without importing the harness's client here
        if getattr(exc, "status", None) == 404:
            raise LookupError(" ".join(args)) from exc
        raise


def get(cluster: Kubectl, *args: str) -> dict[str, Any]:
    """`kubectl get ... -o json`, decoded; {} when not found."""
    try:
        found = read_json(cluster, *args)
    except LookupError:
        return {}
    if found is not None:
        return found
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return {}
        raise AssertionError(result.stderr)
    return dict(json.loads(result.stdout))


def apply(cluster: Kubectl, namespace: str, *manifests: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(list(manifests)))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c["type"] == kind:
            return dict(c)
    return None


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    status = pod.get("status", {})
    for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no status for container {name}")


def job_pods(cluster: Kubectl, namespace: str, job: str) -> list[dict[str, Any]]:
    return list(get(cluster, "pods", "-n", namespace, "-l", f"job-name={job}").get("items", []))


def install_crd(cluster: Kubectl, path: str, name: str = "hyperparametertuningjobs.kubetune.io") -> None:
    """Apply a CRD and wait until the API server serves it (Established).

    Polled here rather than with `kubectl wait --for=condition=Established`: kubectl 1.34
    fails at once ("status.conditions accessor error: <nil>") when it reads the CRD before
    the API server has written any condition, which a loaded machine makes likely.
    """
    cluster.kubectl("apply", "--server-side", "-f", path)

    def established() -> bool:
        crd = get(cluster, "crd", name)
        found = condition(crd, "Established") if crd else None
        return bool(found and found.get("status") == "True")

    wait_for(established, 60, what=f"CRD {name} to be Established")
