"""The control plane itself: versions, RBAC and ServiceAccount kubeconfigs, controllers."""

from __future__ import annotations

import json

import pytest

from .kube import IMAGE, apply, get, wait_for

pytestmark = pytest.mark.cluster


def test_versions_tell_the_truth(local_cluster):
    version = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    expected = local_cluster.binaries.kubernetes_version
    assert version["serverVersion"]["gitVersion"] == expected
    assert version["clientVersion"]["gitVersion"] == expected
    assert local_cluster.helm("version", "--short").stdout.startswith("v3.")


def test_serviceaccount_kubeconfig_has_exactly_its_rbac(cluster, namespace):
    apply(
        cluster,
        namespace,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "jobs"},
            "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jobs"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}],
        },
    )
    kubeconfig = cluster.serviceaccount_kubeconfig(namespace, "operator")

    def can(*args: str) -> str:
        result = cluster.kubectl("auth", "can-i", *args, "-n", namespace, kubeconfig=kubeconfig, check=False)
        return result.stdout.strip()

    whoami = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:operator"
    assert can("create", "jobs.batch") == "yes"
    assert can("delete", "jobs.batch") == "no"
    assert can("list", "secrets") == "no"
    denied = cluster.kubectl("get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_legacy_serviceaccount_token_secret_is_filled(cluster, namespace):
    apply(
        cluster,
        namespace,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "legacy"}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "legacy-token", "annotations": {"kubernetes.io/service-account.name": "legacy"}},
        },
    )
    secret = wait_for(
        lambda: get(cluster, "secret", "legacy-token", "-n", namespace).get("data", {}).get("token"),
        timeout=30,
        what="the token controller to fill the secret",
    )
    assert secret


def test_ttl_after_finished_deletes_the_job(cluster, namespace):
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "short"},
            "spec": {
                "ttlSecondsAfterFinished": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": IMAGE, "command": ["python3", "-c", "pass"]}],
                    }
                },
            },
        },
    )
    wait_for(lambda: get(cluster, "job", "short", "-n", namespace), timeout=10, what="job created")
    wait_for(
        lambda: not get(cluster, "job", "short", "-n", namespace),
        timeout=60,
        what="the TTL controller to delete the finished Job",
    )


def test_namespace_deletion_finishes(cluster):
    cluster.kubectl("create", "namespace", "doomed-ns")
    cluster.kubectl("create", "configmap", "x", "-n", "doomed-ns")
    cluster.kubectl("delete", "namespace", "doomed-ns", "--timeout=60s")
    assert not get(cluster, "namespace", "doomed-ns")
