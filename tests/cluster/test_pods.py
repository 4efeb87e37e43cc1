"""Pods as the nodes' kubelets run them: environment, volumes, lifecycle, status, and what the kubelet enforces."""

from __future__ import annotations

import json
import time

import pytest

from .kube import IMAGE, apply, condition, container_status, get, wait_for
from .procs import processes_with, token

pytestmark = pytest.mark.cluster
PY = IMAGE


def pod(name: str, containers: list[dict], **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "demo"}, "annotations": {"lr": "0.01"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": containers, **spec},
    }


def phase(cluster, namespace: str, name: str) -> str:
    return str(get(cluster, "pod", name, "-n", namespace).get("status", {}).get("phase", ""))


def finished(cluster, namespace: str, name: str) -> dict:
    wait_for(
        lambda: phase(cluster, namespace, name) in ("Succeeded", "Failed"), timeout=60, what=f"pod {name} to finish"
    )
    return get(cluster, "pod", name, "-n", namespace)


REPORT = """
import json, os, pathlib, sys
report = {
    "argv": sys.argv[1:], "cwd": os.getcwd(),
    "env": {k: os.environ.get(k) for k in ("GREETING", "LR", "APP", "POD_NAME", "POD_IP", "FROM_CM",
                                           "FROM_SECRET", "CM_color", "NESTED", "ESCAPED")},
    "files": {p: pathlib.Path(p).read_text() for p in ("/etc/cfg/color", "/etc/secret/password", "/data/init.txt")},
    # The kubelet adds annotations of its own; the message must stay under 4 KiB.
    "lr_annotation": 'lr="0.01"' in pathlib.Path("/etc/info/annotations").read_text(),
    "token": pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(),
}
open("/dev/termination-log", "w").write(json.dumps(report))
"""


def test_env_volumes_and_expansion(cluster, namespace):
    apply(
        cluster,
        namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"color": "blue"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"password": "hunter2"}},
    )
    main = {
        "name": "main",
        "image": PY,
        "workingDir": "/tmp",
        "command": ["python3", "-c", REPORT],
        "args": ["--lr=$(LR)", "$$(LR)", "$(UNDEFINED)"],
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "LR", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['lr']"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "NESTED", "value": "$(GREETING)-$(FROM_CM)"},
            {"name": "ESCAPED", "value": "$$(GREETING)"},
        ],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
            {"name": "sec", "mountPath": "/etc/secret"},
            {"name": "info", "mountPath": "/etc/info"},
            {"name": "data", "mountPath": "/data"},
        ],
    }
    init = {
        "name": "prepare",
        "image": PY,
        "command": ["sh", "-c", "echo prepared > /data/init.txt"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {
            "name": "info",
            "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]},
        },
        {"name": "data", "emptyDir": {}},
    ]
    apply(cluster, namespace, pod("env", [main], initContainers=[init], volumes=volumes))

    done = finished(cluster, namespace, "env")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    report = json.loads(container_status(done, "main")["state"]["terminated"]["message"])
    assert report["argv"] == ["--lr=0.01", "$(LR)", "$(UNDEFINED)"]
    assert report["cwd"] == "/tmp"
    assert report["env"] == {
        "GREETING": "hello",
        "LR": "0.01",
        "APP": "demo",
        "POD_NAME": "env",
        "POD_IP": done["status"]["podIP"],
        "FROM_CM": "blue",
        "FROM_SECRET": "hunter2",
        "CM_color": "blue",
        "NESTED": "hello-blue",
        "ESCAPED": "$(GREETING)",
    }
    assert report["files"]["/etc/cfg/color"] == "blue"
    assert report["files"]["/etc/secret/password"] == "hunter2"
    assert report["lr_annotation"] is True
    assert report["files"]["/data/init.txt"] == "prepared\n"
    assert report["token"] is True
    assert container_status(done, "prepare")["state"]["terminated"]["reason"] == "Completed"
    assert condition(done, "Initialized")["status"] == "True"
    assert done["status"]["hostIP"] and done["status"]["startTime"]


def test_termination_message_is_capped_at_4kib(cluster, namespace):
    main = {
        "name": "main",
        "image": PY,
        "command": ["python3", "-c", "open('/dev/termination-log', 'w').write('x' * 10000)"],
    }
    apply(cluster, namespace, pod("big", [main]))
    message = container_status(finished(cluster, namespace, "big"), "main")["state"]["terminated"]["message"]
    assert message == "x" * 4096


def test_fallback_to_logs_on_error(cluster, namespace):
    main = {
        "name": "main",
        "image": PY,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "command": ["python3", "-c", "import sys; print('boom: bad learning rate'); sys.exit(2)"],
    }
    apply(cluster, namespace, pod("fallback", [main]))
    terminated = container_status(finished(cluster, namespace, "fallback"), "main")["state"]["terminated"]
    assert terminated["exitCode"] == 2
    assert "boom: bad learning rate" in terminated["message"]


def test_restart_policy_on_failure_restarts_the_container(cluster, namespace):
    # Fails on the first run, succeeds on the second: the emptyDir outlives the container.
    main = {
        "name": "main",
        "image": PY,
        "command": [
            "sh",
            "-c",
            "if [ -e /data/ran ]; then echo second; exit 0; fi; touch /data/ran; echo first; exit 1",
        ],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    apply(
        cluster, namespace, pod("retry", [main], restartPolicy="OnFailure", volumes=[{"name": "data", "emptyDir": {}}])
    )
    status = container_status(finished(cluster, namespace, "retry"), "main")
    assert status["restartCount"] == 1
    assert status["state"]["terminated"]["exitCode"] == 0
    assert cluster.kubectl("logs", "retry", "-n", namespace).stdout == "second\n"


def test_active_deadline_seconds_fails_the_pod(local_cluster, namespace):
    word = token()
    main = {"name": "main", "image": PY, "command": ["python3", "-c", "import time; time.sleep(600)", word]}
    apply(local_cluster, namespace, pod("deadline", [main], activeDeadlineSeconds=2))
    done = finished(local_cluster, namespace, "deadline")
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert not processes_with(word)


def test_graceful_deletion_sigterm_then_sigkill(local_cluster, namespace):
    polite, stubborn = token(), token()
    obeys = {"name": "obeys", "image": PY, "command": ["python3", "-c", "import time; time.sleep(600)", polite]}
    ignores = {
        "name": "ignores",
        "image": PY,
        "command": [
            "python3",
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
            stubborn,
        ],
    }
    # Shared: pause is PID 1, so `obeys` gets SIGTERM's default action (a PID 1 would ignore it).
    apply(
        local_cluster,
        namespace,
        pod("grace", [obeys, ignores], terminationGracePeriodSeconds=3, shareProcessNamespace=True),
    )
    wait_for(lambda: processes_with(polite) and processes_with(stubborn), timeout=30, what="both running")
    time.sleep(0.5)  # let the Python in `ignores` install its handler

    started = time.monotonic()
    local_cluster.kubectl("delete", "pod", "grace", "-n", namespace, "--wait=false")
    wait_for(lambda: not processes_with(polite), timeout=2, interval=0.05, what="SIGTERM to end `obeys`")
    assert processes_with(stubborn), "a process that ignores SIGTERM must live until the grace period ends"
    wait_for(lambda: not processes_with(stubborn), timeout=10, interval=0.1, what="SIGKILL")
    assert time.monotonic() - started >= 2.5
    wait_for(lambda: not get(local_cluster, "pod", "grace", "-n", namespace), timeout=10, what="pod deleted")


def test_kubectl_logs(cluster, namespace):
    main = {"name": "main", "image": PY, "command": ["python3", "-c", "print('line one'); print('line two')"]}
    apply(cluster, namespace, pod("logs", [main]))
    finished(cluster, namespace, "logs")
    assert cluster.kubectl("logs", "logs", "-n", namespace).stdout == "line one\nline two\n"
    assert cluster.kubectl("logs", "logs", "-n", namespace, "--tail=1").stdout == "line two\n"


def test_image_entrypoint_and_cmd_apply_as_docker_defines_them(cluster, namespace):
    """No command: the image's ENTRYPOINT (kubetune) and CMD (--help); args replace only CMD."""
    uses_cmd = {"name": "a", "image": PY}
    uses_args = {"name": "b", "image": PY, "args": ["--version"]}
    apply(cluster, namespace, pod("defaults", [uses_cmd, uses_args]))
    assert finished(cluster, namespace, "defaults")["status"]["phase"] == "Succeeded"
    assert "usage: kubetune" in cluster.kubectl("logs", "defaults", "-c", "a", "-n", namespace).stdout
    assert cluster.kubectl("logs", "defaults", "-c", "b", "-n", namespace).stdout.startswith("kubetune ")


def test_an_image_that_is_not_there_is_never_run(local_cluster, namespace):
    """Nothing can be pulled here: the kubelet reports the pull error and backs off."""
    apply(local_cluster, namespace, pod("absent", [{"name": "main", "image": "registry.invalid/no-such-image:1"}]))

    def reason() -> str:
        statuses = get(local_cluster, "pod", "absent", "-n", namespace)["status"].get("containerStatuses", [])
        return str(statuses[0]["state"].get("waiting", {}).get("reason")) if statuses else ""

    wait_for(lambda: reason() in ("ErrImagePull", "ImagePullBackOff"), timeout=60, what="ErrImagePull")


def test_security_context_is_enforced(cluster, namespace):
    """runAsNonRoot against a root user, a read-only root filesystem, dropped capabilities."""
    root = {"name": "main", "image": PY, "command": ["true"], "securityContext": {"runAsUser": 0, "runAsNonRoot": True}}
    apply(cluster, namespace, pod("as-root", [root]))

    def waiting() -> dict:
        statuses = get(cluster, "pod", "as-root", "-n", namespace)["status"].get("containerStatuses", [])
        return dict(statuses[0]["state"].get("waiting", {})) if statuses else {}

    refused = wait_for(lambda: waiting().get("reason") == "CreateContainerConfigError" and waiting(), timeout=60)
    assert "non-root" in refused["message"], refused

    probe = (
        "import json, os, pathlib\n"
        "out = {'uid': os.getuid(), 'caps': [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1]}\n"
        "try:\n    pathlib.Path('/app/x').write_text('x'); out['rootfs'] = 'writable'\n"
        "except OSError as e:\n    out['rootfs'] = e.strerror\n"
        "pathlib.Path('/scratch/x').write_text('x'); out['emptyDir'] = 'writable'\n"
        "open('/dev/termination-log', 'w').write(json.dumps(out))\n"
    )
    locked = {
        "name": "main",
        "image": PY,
        "command": ["python3", "-c", probe],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1234,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    apply(cluster, namespace, pod("locked", [locked], volumes=[{"name": "scratch", "emptyDir": {}}]))
    done = finished(cluster, namespace, "locked")
    report = json.loads(container_status(done, "main")["state"]["terminated"]["message"])
    assert report == {
        "uid": 1234,
        "caps": "0000000000000000",
        "rootfs": "Read-only file system",
        "emptyDir": "writable",
    }


def test_a_memory_limit_is_a_cgroup_limit(cluster, namespace):
    """Allocating past limits.memory gets the container OOM-killed by the kernel, as on any node."""
    hog = {
        "name": "main",
        "image": PY,
        "command": ["python3", "-c", "x = bytearray(400 * 2**20); x[::4096] = b'1' * len(x[::4096])"],
        "resources": {"limits": {"memory": "96Mi", "cpu": "500m"}},
    }
    apply(cluster, namespace, pod("hog", [hog]))
    terminated = container_status(finished(cluster, namespace, "hog"), "main")["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137), terminated


def test_a_sidecars_startup_probe_gates_the_main_container(cluster, namespace):
    """The kubelet starts the main container only once the native sidecar's startupProbe passes."""
    sidecar = {
        "name": "side",
        "image": PY,
        "restartPolicy": "Always",
        "command": ["sh", "-c", "sleep 3; touch /shared/ready; exec sleep 600"],
        "startupProbe": {
            "exec": {"command": ["test", "-e", "/shared/ready"]},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }
    main = {
        "name": "main",
        "image": PY,
        "command": ["sh", "-c", "test -e /shared/ready && printf saw-ready > /dev/termination-log"],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }
    apply(
        cluster,
        namespace,
        pod("gated", [main], initContainers=[sidecar], volumes=[{"name": "shared", "emptyDir": {}}]),
    )
    done = finished(cluster, namespace, "gated")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert container_status(done, "main")["state"]["terminated"]["message"] == "saw-ready"
