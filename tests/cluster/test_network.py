"""Pod networking: a localhost per pod, and a pod IP the host can reach."""

from __future__ import annotations

import urllib.request

import pytest

from .kube import IMAGE, apply, container_status, get, wait_for

pytestmark = pytest.mark.cluster

SERVER = """
import http.server, os
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(os.environ["HOSTNAME"].encode())
http.server.HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
"""
CLIENT = """
import time, urllib.request
while True:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:8080/", timeout=1).read().decode()
        break
    except OSError:
        time.sleep(0.2)
open("/dev/termination-log", "w").write(body)
"""


def web_pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "server", "image": IMAGE, "command": ["python3", "-c", SERVER]},
                {"name": "client", "image": IMAGE, "command": ["python3", "-c", CLIENT]},
            ],
        },
    }


def test_pods_share_a_port_number_and_are_reachable_by_pod_ip(local_cluster, namespace):
    apply(local_cluster, namespace, web_pod("web-a"), web_pod("web-b"))

    def client_saw(name: str) -> str:
        pod = get(local_cluster, "pod", name, "-n", namespace)
        if not pod.get("status", {}).get("containerStatuses"):
            return ""
        state = container_status(pod, "client")["state"]
        return str(state.get("terminated", {}).get("message", ""))

    # Each pod's own localhost:8080 answers with its own server.
    assert wait_for(lambda: client_saw("web-a"), timeout=30, what="client in web-a") == "web-a"
    assert wait_for(lambda: client_saw("web-b"), timeout=30, what="client in web-b") == "web-b"

    # And this process, outside both, reaches each by its pod IP.
    ips = {n: get(local_cluster, "pod", n, "-n", namespace)["status"]["podIP"] for n in ("web-a", "web-b")}
    assert ips["web-a"] != ips["web-b"]
    for name, ip in ips.items():
        assert urllib.request.urlopen(f"http://{ip}:8080/", timeout=5).read().decode() == name


IN_CLUSTER = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
namespace = open(f"{sa}/namespace").read()
url = "https://%s:%s/api/v1/namespaces/%s/pods" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"], namespace)
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
try:
    status = urllib.request.urlopen(request, context=context).status
except urllib.error.HTTPError as error:
    status = error.code
open("/dev/termination-log", "w").write(str(status))
"""


def test_pods_reach_the_api_server_with_their_service_account(cluster, namespace):
    apply(
        cluster,
        namespace,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    for name, account in (("allowed", "reader"), ("denied", "default")):
        apply(
            cluster,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": account,
                    "containers": [{"name": "main", "image": IMAGE, "command": ["python3", "-c", IN_CLUSTER]}],
                },
            },
        )

    def answer(name: str) -> str:
        pod = get(cluster, "pod", name, "-n", namespace)
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            return ""
        return str(container_status(pod, "main")["state"]["terminated"].get("message", "none"))

    assert wait_for(lambda: answer("allowed"), timeout=60, what="allowed pod") == "200"
    assert wait_for(lambda: answer("denied"), timeout=60, what="denied pod") == "403"
