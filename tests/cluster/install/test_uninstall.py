"""The README's uninstall steps, run as written, finish within a minute once the operator is gone.

The commands are read from README.md itself (the sh blocks of its
"Uninstalling" paragraph, the install commands of "With Helm" and "With
kubectl"), so the test follows the README as it changes. They run in a shell
at the repository root against the local control plane, after tuning jobs
have started trial Jobs and the operator has been scaled to nothing: what
they delete must go without any operator's help.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator.harness import example, get, wait_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
HPTJ = "hyperparametertuningjobs.kubetune.io"
NAMESPACE = "kubetune-system"
DEPLOYMENT = "kubetune-operator"
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LIMIT = 60.0


def _blocks(after: str, until: str) -> list[str]:
    text = README.read_text()
    start = text.index(after)
    return re.findall(r"```sh\n(.*?)```", text[start : text.index(until, start)], re.S)


def readme_commands() -> dict[str, str]:
    """The README's own commands, by what they are for."""
    (helm_install_block,) = _blocks("**With Helm**", "**With kubectl**")
    (kubectl_install,) = _blocks("**With kubectl**", "**Quick start**")
    helm_uninstall, kubectl_uninstall, legacy = _blocks("**Uninstalling**", "**End to end on kind**")
    assert helm_uninstall.startswith("helm uninstall") and "-f manifests/install.yaml" in kubectl_uninstall
    assert "/metadata/finalizers" in legacy
    return {
        "helm-install": helm_install_block.splitlines()[0],
        "kubectl-install": kubectl_install,
        "helm-uninstall": helm_uninstall,
        "kubectl-uninstall": kubectl_uninstall,
        "legacy": legacy,
    }


def sh(cluster: Any, script: str, timeout: float) -> tuple[subprocess.CompletedProcess[str] | None, float]:
    """Run script as a user would type it, from the repository root; None when it ran past timeout."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=ROOT, env=cluster.env(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started
    return result, time.monotonic() - started


def _clean_slate(cluster: Any) -> None:
    """Nothing of an earlier install (the harness's RBAC, a CRD another module applied): the README's install
    must create everything itself, and its uninstall must be what removes it."""
    if get_crd(cluster):
        for item in json.loads(cluster.kubectl("get", "hptj", "-A", "-o", "json").stdout)["items"]:
            meta = item["metadata"]
            if meta.get("finalizers"):
                cluster.kubectl(
                    "-n", meta["namespace"], "patch", "hptj", meta["name"], "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip
    cluster.kubectl("delete", "crd", HPTJ, "--ignore-not-found", "--timeout=60s")
    cluster.kubectl(
        "delete", "clusterrole,clusterrolebinding", DEPLOYMENT, "kubetune-edit", "kubetune-view", "--ignore-not-found"
    )
    cluster.kubectl(
        "delete", "validatingadmissionpolicy,validatingadmissionpolicybinding", "kubetune-trial-rights",
        "--ignore-not-found",
    )  # fmt: skip
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=90s")


def get_crd(cluster: Any) -> bool:
    return cluster.kubectl("get", "crd", HPTJ, check=False).returncode == 0


def _start_tuning_jobs(cluster: Any, namespace: str) -> list[str]:
    """Two tuning jobs with running trials; the second made as 0.1.0 made them, with kopf's finalizer on it."""
    names = []
    for name, finalizers in (("plain", []), ("from-0-1-0", [LEGACY_FINALIZER])):
        resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2})
        resource["metadata"] = {"name": name, "finalizers": finalizers}
        resource["spec"]["staticHyperParameters"]["epochs"] = 500  # still running when the operator goes
        for container in resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"]:
            container["image"] = "ghcr.io/kubetune/kubetune:0.1.0"  # the chart's image, as the examples say
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(resource))
        names.append(name)
    for name in names:
        wait_until(
            lambda n=name: get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={n}")["items"],
            120, f"trial Jobs of {name}",
        )  # fmt: skip

    def legacy_finalizer_removed() -> bool:
        meta = get(cluster, namespace, "hptj", "from-0-1-0")["metadata"]
        return LEGACY_FINALIZER not in (meta.get("finalizers") or [])

    wait_until(legacy_finalizer_removed, 30, "the operator to remove 0.1.0's finalizer")
    return names


def _operator_gone(cluster: Any) -> None:
    cluster.kubectl("-n", NAMESPACE, "scale", "deployment", DEPLOYMENT, "--replicas=0")
    selector = "app.kubernetes.io/component=operator"
    wait_until(lambda: not get(cluster, NAMESPACE, "pods", selector=selector)["items"], 60, "the operator to stop")


def _why_it_hung(cluster: Any, namespace: str) -> str:
    result = cluster.kubectl("-n", namespace, "get", "hptj", "-o", "json", check=False)
    if result.returncode != 0:
        return result.stderr
    return "; ".join(
        f"{i['metadata']['name']}: finalizers {i['metadata'].get('finalizers')}"
        for i in json.loads(result.stdout)["items"]
    )


@pytest.mark.parametrize("path", ["helm", "kubectl"])
def test_readme_uninstall_finishes_within_a_minute_without_an_operator(cluster: Any, namespace: str, path: str) -> None:
    commands = readme_commands()
    _clean_slate(cluster)
    installed, _ = sh(cluster, commands[f"{path}-install"], 120)
    assert installed is not None and installed.returncode == 0, installed
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout=120s")
    _start_tuning_jobs(cluster, namespace)
    _operator_gone(cluster)

    result, elapsed = sh(cluster, commands[f"{path}-uninstall"], LIMIT)
    assert result is not None, (
        f"the README's {path} uninstall ran past {LIMIT:.0f} s: {_why_it_hung(cluster, namespace)}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < LIMIT

    assert not get_crd(cluster)
    assert cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0
    wait_until(lambda: not get(cluster, namespace, "jobs")["items"], 30, "the trial Jobs to be collected")
    left = cluster.kubectl(
        "get", "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
        "-l", "app.kubernetes.io/part-of=kubetune", "-o", "name",
    ).stdout  # fmt: skip
    assert left == "", left


def test_readme_legacy_finalizer_step_unblocks_an_uninstall_without_ever_running_this_version(
    cluster: Any, namespace: str
) -> None:
    """Tuning jobs that still carry 0.1.0's finalizer, and no operator of this version ever saw them."""
    commands = readme_commands()
    _clean_slate(cluster)
    installed, _ = sh(cluster, commands["helm-install"], 120)
    assert installed is not None and installed.returncode == 0, installed
    _operator_gone(cluster)
    resource = example("random.yaml")
    resource["metadata"] = {"name": "left-by-0-1-0", "finalizers": [LEGACY_FINALIZER]}
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(resource))

    result, elapsed = sh(cluster, commands["legacy"] + commands["helm-uninstall"], LIMIT)
    assert result is not None, f"ran past {LIMIT:.0f} s: {_why_it_hung(cluster, namespace)}"
    assert result.returncode == 0, result.stdout + result.stderr
    assert not get_crd(cluster) and elapsed < LIMIT
