"""The session's Kubernetes cluster for every test marked `cluster`.

By default a LocalCluster (e2e/localcluster): etcd, the control plane and
real nodes (kubelet, containerd, runc, CNI, kube-proxy) built or installed by
e2e/build.sh, running the image `make image` built. With
KUBETUNE_E2E_KUBECONFIG=path the same tests run against that cluster instead
(kind, or any) with the image KUBETUNE_E2E_IMAGE, minus the tests that need
the local harness's faults.

Fixtures:
- cluster: the cluster (.kubeconfig, .kubectl(*args), .helm(*args), .api (local only),
  .serviceaccount_kubeconfig(ns, name), .image, .local);
- namespace: a fresh namespace per test, deleted afterwards;
- local_cluster: the cluster, skipping the test when it is not the local one;
- kueue_cluster, jobset_cluster: the local cluster with Kueue / JobSet's controller running
  (started on first use, then for the rest of the session; e2e/localcluster/addons.py).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[2] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from localcluster import LocalCluster  # noqa: E402
from localcluster.external import ExternalCluster  # noqa: E402
from tests.cluster.kube import get  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster | ExternalCluster]:
    """One cluster for the whole session, torn down completely at its end."""
    external = os.environ.get("KUBETUNE_E2E_KUBECONFIG")
    if external:
        ext = ExternalCluster(Path(external))
        yield ext
        ext.stop()
        return
    # SIGTERM (a CI timeout, `kill`) tears down like Ctrl-C instead of leaking.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    local = LocalCluster()
    try:
        with local:
            yield local
    finally:
        signal.signal(signal.SIGTERM, previous)
    if local.left_over:
        pytest.fail("local cluster teardown left: " + "; ".join(local.left_over))


@pytest.fixture
def local_cluster(cluster: LocalCluster | ExternalCluster) -> LocalCluster:
    """The cluster, when it is the local one (the test injects faults or adds nodes)."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the local cluster's fault injection")
    return cluster


@pytest.fixture
def kueue_cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The local cluster with Kueue running (Job and JobSet integrations, webhooks registered)."""
    local_cluster.start_kueue()
    return local_cluster


@pytest.fixture
def jobset_cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The local cluster with JobSet's controller running (webhooks registered)."""
    local_cluster.start_jobset()
    return local_cluster


@pytest.fixture
def namespace(cluster: LocalCluster | ExternalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, deleted (in the background) afterwards."""
    # A DNS label: a parametrized test's "[...]" and any other character outside [a-z0-9-] become "-".
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("_", "-"))[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    cluster.create_namespace(name)
    # Pods are refused until the ServiceAccount controller has made the namespace's default account.
    # Generous: after another test's API server outage its watches may still be backing off (up to a minute).
    deadline = time.monotonic() + 90
    while not get(cluster, "serviceaccount", "default", "-n", name):
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name} got no default ServiceAccount within 90s")
        time.sleep(0.2)
    yield name
    try:
        cluster.delete_namespace(name)
    except Exception as exc:  # an API server another test left down: the sweep at the end finds it
        warnings.warn(f"namespace {name} was not deleted: {exc}", stacklevel=1)
