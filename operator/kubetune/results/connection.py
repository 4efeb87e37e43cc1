"""Reach a cluster the way kubectl does: --kubeconfig, --context, --namespace, then $KUBECONFIG, then in-cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from kubetune.errors import ResultsError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Connection:
    """An API client and the namespace a command acts in when none is given."""

    api: client.ApiClient
    namespace: str


def connect(kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None) -> Connection:
    """kubectl's rules: an explicit namespace wins, else the context's, else `default`.

    Inside a pod with no kubeconfig at hand, the pod's ServiceAccount and namespace are used.
    """
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    default_file = Path(config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
    if path is None and not default_file.exists() and "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        pod_namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.exists() else ""
        return Connection(client.ApiClient(), namespace or pod_namespace or "default")
    where = path or str(default_file)
    try:
        api = config.new_client_from_config(config_file=path, context=context, persist_config=False)  # type: ignore[no-untyped-call]
        contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise ResultsError(f"kubeconfig {where}: {exc}") from None
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    context_namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return Connection(api, namespace or context_namespace or "default")
