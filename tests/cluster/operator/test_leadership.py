"""One leader through API server outages: two replicas, the kube-apiserver killed and restarted.

What a leader does is read off two independent records: the replicas' own
decision lines (leader.acquired / leader.lost, and every trial or job decision
in between) and the managedFields of the objects they wrote, where each
replica's writes carry its own field manager. Both must show one actor at a
time. The first test drives the election alone, in process, against the same
real API server.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from kubetune.operator.leader import LeaderElection, LeaseSettings, lease_api

from .harness import OPERATOR_NAMESPACE, OperatorProcess, apply, wait_for_end, wait_until
from .test_restart import restart_spec, trial_jobs

pytestmark = pytest.mark.cluster

REPLICAS = ("replica-a", "replica-b")
MANAGER = "kubetune-operator-"
ACTING = {
    # Each logged only once its write was accepted (or, for job.*, as the loop takes a tuning job on).
    "trial.created",
    "trial.completed",
    "trial.failed",
    "trial.stopped",
    "trial.renamed",
    "job.started",
    "job.resumed",
    "job.ended",
}
IN_FLIGHT = dt.timedelta(seconds=15 - 10)
"""The replicas' lease duration less their renew deadline (the defaults): the fence's request timeout lets a
write sent just before the deadline land this much later, and no standby may lead before then. The deadline
comes no later than leader.lost, so writes land by leader.lost + IN_FLIGHT."""
LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+) ([\w.]+)(.*)$")


# -- the election alone ----------------------------------------------------------------------


def test_the_election_against_a_restarted_api_server(local_cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A leader loses at its renew deadline during an outage; the standby survives it, then takes over."""
    caplog.set_level(logging.INFO, logger="kubetune")
    api = config.new_client_from_config(str(local_cluster.kubeconfig))
    settings = {"duration_seconds": 4.0, "renew_deadline_seconds": 3.0, "retry_seconds": 0.5}
    name = f"election-{time.monotonic_ns() % 100000}"
    a = LeaderElection(lease_api(api), LeaseSettings("default", "a", name=name, **settings))
    # b's own deadlines are longer: once it leads, an API server still slow from its restart on a loaded
    # machine must not take it down too (a's shorter ones are what make it lose during the outage). 10 s
    # was not enough once, with four test workers on two cores and the controller manager and scheduler
    # starting over after the same outage.
    patient = {"duration_seconds": 40.0, "renew_deadline_seconds": 30.0, "retry_seconds": 0.5}
    b = LeaderElection(lease_api(api), LeaseSettings("default", "b", name=name, **patient))
    stop, lost = threading.Event(), threading.Event()
    assert a.acquire(stop) and a.leading()
    a.keep(stop, lost)
    acquired_b: list[bool] = []
    lost_b = threading.Event()

    def stand_by() -> None:  # as the operator does: once acquired, keep renewing
        acquired_b.append(b.acquire(stop))
        b.keep(stop, lost_b)

    standby = threading.Thread(target=stand_by)
    standby.start()
    try:
        wait_until(lambda: _fields(caplog, "leader.waiting", "b"), 30, "b to stand by")
        time.sleep(6)  # longer than the lease duration: b sees a's renews change the record, so it waits on
        assert a.leading() and not lost.is_set() and standby.is_alive()
        local_cluster.restart_apiserver(down_seconds=5)
        assert lost.wait(30) and not a.leading()
        standby.join(60)
        # b renews from here on: leading() holds however long the machine took to get here.
        assert acquired_b == [True] and b.leading() and not lost_b.is_set()
    finally:
        stop.set()
        standby.join(10)
    (gone,) = _fields(caplog, "leader.lost", "a")
    assert gone["reason"].startswith("not renewed within 3s: "), gone
    assert _fields(caplog, "leader.error", "b"), "the standby saw the outage"
    (taken,) = _fields(caplog, "leader.acquired", "b")
    assert taken["reason"].startswith("lease expired (held by a"), taken
    assert _fields(caplog, "leader.acquired", "a")[0]["reason"] == "lease was free (created it)"


def _fields(caplog: pytest.LogCaptureFixture, event: str, identity: str) -> list[dict[str, Any]]:
    found = [dict(getattr(r, "kubetune_fields", {})) for r in caplog.records if r.getMessage() == event]
    return [f for f in found if f.get("identity") == identity]


# -- two operators -------------------------------------------------------------------------------


@dataclass
class Kubelet:
    """Restarts a replica that exited, as the kubelet restarts a container: the test's stand-in for a Deployment."""

    replicas: dict[str, OperatorProcess]
    exits: list[tuple[str, int | None]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.done.wait(0.2):
            for name, replica in self.replicas.items():
                process = replica.process
                if process is not None and process.poll() is not None and not self.done.is_set():
                    self.exits.append((name, process.returncode))
                    time.sleep(1)
                    replica.start()


@pytest.fixture
def replicas(cluster: Any, operator: OperatorProcess, tmp_path: Path) -> Iterator[Kubelet]:
    """Two replicas in place of the module's operator, under a Kubelet; the module's is back afterwards."""
    operator.stop()
    kubelet = Kubelet(
        {
            name: OperatorProcess(cluster, operator.kubeconfig, tmp_path / f"{name}.log", ["--leader-identity", name])
            for name in REPLICAS
        }
    )
    thread = threading.Thread(target=kubelet.run, daemon=True)
    try:
        first, second = kubelet.replicas.values()
        first.start()
        wait_until(lambda: "leader.acquired" in first.log(), 60, "replica-a to lead", first)
        second.start()
        wait_until(lambda: "leader.waiting" in second.log(), 60, "replica-b to stand by", second)
        thread.start()
        yield kubelet
    finally:
        kubelet.done.set()
        if thread.is_alive():
            thread.join(10)
        for replica in kubelet.replicas.values():
            replica.stop()
            print(f"{replica.log_path}")
        # Whoever held the Lease is gone: free it so the module's operator leads at once.
        cluster.kubectl("-n", OPERATOR_NAMESPACE, "delete", "lease", "kubetune-operator", check=False)
        operator.start()


def outage_spec() -> dict[str, Any]:
    """Six trials, two at a time, each a few seconds long so that outages fall while trials run."""
    resource = restart_spec()
    resource["spec"]["resourceLimits"] = {"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 2}
    resource["spec"]["staticHyperParameters"] = {"epochs": 8, "batch_size": 32, "epoch_seconds": 0.5}
    return resource


@pytest.mark.parametrize("down_seconds", [5, 20])
def test_one_leader_acts_through_an_api_server_outage(
    local_cluster: Any, namespace: str, replicas: Kubelet, down_seconds: int
) -> None:
    resource = outage_spec()
    name = resource["metadata"]["name"]
    apply(local_cluster, namespace, resource)
    leader = replicas.replicas["replica-a"]
    wait_until(lambda: len(trial_jobs(local_cluster, namespace, name)) >= 2, 120, "the first two trials", leader)
    restarted_before = dict(local_cluster.control_plane.restarts)
    local_cluster.restart_apiserver(down_seconds)
    status = wait_for_end(local_cluster, namespace, name, leader, timeout=300)

    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    jobs = trial_jobs(local_cluster, namespace, name)
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"{name}-{n:04d}" for n in range(1, 7)]
    assert status["trainingJobStatusCounters"]["completed"] == 6, status

    logs = {n: parse(r.log()) for n, r in replicas.replicas.items()}
    terms = {n: leadership(n, lines) for n, lines in logs.items()}
    # A replica exits only after it lost the Lease (exit 1, so the Deployment restarts it); a standby never crashes.
    lost_count = {n: sum(1 for _, event, _ in lines if event == "leader.lost") for n, lines in logs.items()}
    for replica, code in replicas.exits:
        assert code == 1, (replica, code, replicas.exits)
    assert sorted(n for n, _ in replicas.exits) == sorted(n for n, c in lost_count.items() for _ in range(c))
    if down_seconds > 10:  # longer than the renew deadline: the leader cannot have kept the Lease
        assert lost_count["replica-a"] >= 1, logs["replica-a"]
        # Nor could the control plane's own leaders: they exited and were started again, as static pods are.
        restarts = local_cluster.control_plane.restarts
        for component in ("kube-controller-manager", "kube-scheduler"):
            assert restarts.get(component, 0) > restarted_before.get(component, 0), (component, restarts)
        reasons = [fields for _, event, fields in logs["replica-a"] if event == "leader.lost"]
        assert all("not renewed within 10s" in r for r in reasons), reasons

    # 1. The logs: terms of different replicas never overlap; every decision falls in its replica's term, or is a
    # write sent in it and answered after, and none falls in another replica's term.
    every = [(start, end, n) for n, spans in terms.items() for start, end in spans]
    for (s1, e1, who), (s2, e2, other) in itertools.combinations(every, 2):
        assert who == other or e1 <= s2 or e2 <= s1, f"{who} and {other} led at once: {every}"
    acted = 0
    for n, lines in logs.items():
        others = [(s, e) for other, spans in terms.items() if other != n for s, e in spans]
        for at, event, fields in lines:
            if event in ACTING:
                acted += 1
                assert within(at, terms[n]), f"{n}: {event} at {at} outside {terms[n]}: {fields}"
                assert not inside(at, others), f"{n}: {event} at {at} while another led: {terms}: {fields}"
    assert acted >= 6 * 2  # created and completed, each trial

    # 2. managedFields: every write by a replica's field manager landed while it led, or while a write it sent
    # then was still in flight (times are to the second).
    objects = [
        obj
        for kind in ("jobs", "hyperparametertuningjobs", "events")
        for obj in json.loads(
            local_cluster.kubectl("-n", namespace, "get", kind, "-o", "json", "--show-managed-fields").stdout
        )["items"]
    ]
    writes = 0
    for obj in objects:
        for entry in obj["metadata"].get("managedFields") or []:
            manager = entry.get("manager", "")
            if not manager.startswith(MANAGER):
                continue
            replica = manager.removeprefix(MANAGER)
            assert replica in terms, manager
            at = dt.datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ")
            writes += 1
            assert within(at, terms[replica], whole_seconds=True), (
                f"{obj['kind']} {obj['metadata']['name']} written by {manager} at {at}, outside its terms {terms[replica]}"
            )
            others = [(s, e) for other, spans in terms.items() if other != replica for s, e in spans]
            assert not inside(at, others, whole_seconds=True), (
                f"{obj['kind']} {obj['metadata']['name']} written by {manager} at {at}, while another led: {terms}"
            )
    assert writes >= len(jobs) + 1  # each trial Job and the tuning job's status, at least


def reach(end: dt.datetime) -> dt.datetime:
    """Until when a term that ended at `end` may still see its writes land."""
    return end if end == dt.datetime.max else end + IN_FLIGHT


def within(at: dt.datetime, spans: list[tuple[dt.datetime, dt.datetime]], whole_seconds: bool = False) -> bool:
    """`at` falls in one of the terms, or in the IN_FLIGHT after it; the API server's times are cut to the second."""
    return any((start.replace(microsecond=0) if whole_seconds else start) <= at <= reach(end) for start, end in spans)


def inside(at: dt.datetime, spans: list[tuple[dt.datetime, dt.datetime]], whole_seconds: bool = False) -> bool:
    """`at` certainly falls in one of the terms (with whole seconds, the second it names does, all of it)."""
    last = at + dt.timedelta(seconds=1) if whole_seconds else at
    return any(start <= at and last <= end for start, end in spans)


def parse(text: str) -> list[tuple[dt.datetime, str, str]]:
    """(time, event, the rest) of each decision line of an operator's log."""
    lines = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            lines.append((dt.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%f"), match[3], match[4]))
    return lines


def leadership(name: str, lines: list[tuple[dt.datetime, str, str]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """A replica's terms: each leader.acquired up to its leader.lost (or the end of the test)."""
    terms, start = [], None
    for at, event, _ in lines:
        if event == "leader.acquired":
            assert start is None, f"{name} acquired twice without losing: {lines}"
            start = at
        elif event == "leader.lost":
            assert start is not None, f"{name} lost what it did not hold"
            terms.append((start, at))
            start = None
        elif event == "operator.started" and start is None:
            raise AssertionError(f"{name} started acting without the Lease")
    if start is not None:
        terms.append((start, dt.datetime.max))
    return terms
