"""A container's environment, as the kubelet builds it.

Order and precedence follow the kubelet: the API server's service variables,
then envFrom sources, then env entries in order, each value expanded with
$(VAR) against what came before; command and args are expanded last, against
the final environment.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from .api import Api, ApiError, Obj
from .expansion import expand, mapping_for
from .quantity import parse_quantity

_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VALID_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(RuntimeError):
    """A referenced ConfigMap, Secret or key is missing (the kubelet retries)."""


def field_value(pod: Obj, path: str) -> str:
    """Resolves a downward-API fieldRef path against the pod."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    match = _LABEL_REF.match(path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs", [])),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def resource_value(pod: Obj, ref: Obj, default_container: str, node_allocatable: Mapping[str, str]) -> str:
    """Resolves a resourceFieldRef; an unset limit falls back to node allocatable."""
    name = ref.get("containerName") or default_container
    container = next(c for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []) if c["name"] == name)
    kind, _, resource = ref["resource"].partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(resource)
    if raw is None and kind == "requests":
        raw = resources.get("limits", {}).get(resource)
    if raw is None:
        raw = node_allocatable.get(resource, "0")
    divisor = parse_quantity(ref.get("divisor", "1")) or Fraction(1)
    return str(math.ceil(parse_quantity(raw) / divisor))


def _get(api: Api, kind: str, namespace: str, name: str, optional: bool) -> Obj | None:
    try:
        return api.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
    except ApiError as exc:
        if exc.status == 404 and optional:
            return None
        raise ConfigError(f"{kind[:-1]} {namespace}/{name}: {exc.reason or exc.status}") from exc


def config_data(obj: Obj | None, secret: bool) -> dict[str, str]:
    """The string data of a ConfigMap or Secret (Secrets are base64 on the wire)."""
    if obj is None:
        return {}
    if secret:
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in obj.get("data", {}).items()}
    return dict(obj.get("data", {}))


def _key_ref(api: Api, namespace: str, ref: Obj, secret: bool) -> str | None:
    kind = "secrets" if secret else "configmaps"
    optional = bool(ref.get("optional"))
    data = config_data(_get(api, kind, namespace, ref["name"], optional), secret)
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"key {ref['key']!r} not found in {kind[:-1]} {namespace}/{ref['name']}")
    return data[ref["key"]]


def build_env(
    api: Api, pod: Obj, container: Obj, service_env: Mapping[str, str], node_allocatable: Mapping[str, str]
) -> dict[str, str]:
    """The variables the kubelet would give this container (without the base env)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source or "secretRef" in source:
            secret = "secretRef" in source
            ref = source["secretRef" if secret else "configMapRef"]
            obj = _get(api, "secrets" if secret else "configmaps", namespace, ref["name"], bool(ref.get("optional")))
            for key, text in config_data(obj, secret).items():
                if _VALID_NAME.match(prefix + key):
                    env[prefix + key] = text
    for var in container.get("env", []):
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), mapping_for(env, service_env))
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = resource_value(pod, source["resourceFieldRef"], container["name"], node_allocatable)
        elif "configMapKeyRef" in source:
            value = _key_ref(api, namespace, source["configMapKeyRef"], secret=False)
        elif "secretKeyRef" in source:
            value = _key_ref(api, namespace, source["secretKeyRef"], secret=True)
        else:
            raise ConfigError(f"unsupported valueFrom in env {name}: {sorted(source)}")
        if value is not None:
            env[name] = value
    return {**service_env, **env}


def expand_all(items: list[str], env: Mapping[str, str]) -> list[str]:
    """Expands $(VAR) in command or args against the final environment."""
    mapping = mapping_for(env)
    return [expand(item, mapping) for item in items]


def as_bytes(data: Obj, secret: bool) -> dict[str, bytes]:
    """Every key of a ConfigMap or Secret as bytes (binaryData included)."""
    out: dict[str, bytes] = {}
    if secret:
        for k, v in data.get("data", {}).items():
            out[k] = base64.b64decode(v)
    else:
        for k, v in data.get("data", {}).items():
            out[k] = v.encode()
        for k, v in data.get("binaryData", {}).items():
            out[k] = base64.b64decode(v)
    return out


def get_object(api: Api, kind: str, namespace: str, name: str, optional: bool) -> Any:
    """Public for volumes: a ConfigMap or Secret, None if optional and absent."""
    return _get(api, kind, namespace, name, optional)
