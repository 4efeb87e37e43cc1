"""A pod's volumes, materialised as directories on the host.

Each volume becomes a directory under the pod's folder; the shim bind-mounts
it (or a subPath of it) at each container's mountPath. ConfigMap, Secret,
downward API and projected contents are written once when the pod starts
(the kubelet would also refresh them later; tests here do not need that).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .api import Api, Obj
from .podenv import ConfigError, as_bytes, field_value, get_object, resource_value


def _write(directory: Path, rel: str, data: bytes, mode: int | None) -> None:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode if mode is not None else 0o644)


def _config_files(api: Api, namespace: str, source: Obj, secret: bool) -> dict[str, tuple[bytes, int | None]]:
    """Files of a configMap/secret volume source (or projection), by relative path."""
    kind = "secrets" if secret else "configmaps"
    name = str(source.get("secretName" if secret and "secretName" in source else "name"))
    optional = bool(source.get("optional"))
    obj = get_object(api, kind, namespace, name, optional)
    if obj is None:
        return {}
    data = as_bytes(obj, secret)
    items = source.get("items")
    if not items:
        return {k: (v, None) for k, v in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise ConfigError(f"key {item['key']!r} not in {kind[:-1]} {namespace}/{name}")
        files[item["path"]] = (data[item["key"]], item.get("mode"))
    return files


def _downward_files(pod: Obj, source: Obj, allocatable: Mapping[str, str]) -> dict[str, tuple[bytes, int | None]]:
    files = {}
    for item in source.get("items", []):
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            ref = item["resourceFieldRef"]
            value = resource_value(pod, ref, ref.get("containerName", ""), allocatable)
        files[item["path"]] = (value.encode(), item.get("mode"))
    return files


def _token_file(api: Api, pod: Obj, source: Obj) -> dict[str, tuple[bytes, int | None]]:
    """A TokenRequest bound to this pod, as the kubelet makes for projected tokens."""
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    spec: Obj = {
        "expirationSeconds": int(source.get("expirationSeconds", 3607)),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    }
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    answer = api.create(
        f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return {source["path"]: (answer["status"]["token"].encode(), None)}


def materialise(api: Api, pod: Obj, volume: Obj, directory: Path, allocatable: Mapping[str, str]) -> Path:
    """Fills directory for one volume; returns the host path to bind-mount.

    Raises ConfigError when a referenced object is missing: the kubelet keeps
    such a pod in ContainerCreating and retries, and so does the agent.
    """
    namespace = pod["metadata"]["namespace"]
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[bytes, int | None]] = {}
    default_mode: int | None = None
    if "emptyDir" in volume:
        return directory
    if "hostPath" in volume:
        path = Path(volume["hostPath"]["path"])
        if volume["hostPath"].get("type") in ("DirectoryOrCreate",) and not path.exists():
            path.mkdir(parents=True)
        return path
    if "configMap" in volume or "secret" in volume:
        secret = "secret" in volume
        source = volume["secret" if secret else "configMap"]
        files = _config_files(api, namespace, source, secret)
        default_mode = source.get("defaultMode")
    elif "downwardAPI" in volume:
        files = _downward_files(pod, volume["downwardAPI"], allocatable)
        default_mode = volume["downwardAPI"].get("defaultMode")
    elif "projected" in volume:
        default_mode = volume["projected"].get("defaultMode")
        for projection in volume["projected"].get("sources", []):
            if "configMap" in projection:
                files.update(_config_files(api, namespace, projection["configMap"], False))
            elif "secret" in projection:
                files.update(_config_files(api, namespace, projection["secret"], True))
            elif "downwardAPI" in projection:
                files.update(_downward_files(pod, projection["downwardAPI"], allocatable))
            elif "serviceAccountToken" in projection:
                files.update(_token_file(api, pod, projection["serviceAccountToken"]))
            else:
                raise ConfigError(f"unsupported projection {sorted(projection)}")
    else:
        kinds = sorted(k for k in volume if k != "name")
        raise ConfigError(f"volume {volume['name']}: unsupported volume type {kinds}")
    for rel, (data, mode) in files.items():
        _write(directory, rel, data, mode if mode is not None else default_mode)
    os.chmod(directory, 0o755)
    return directory
