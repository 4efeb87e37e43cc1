"""Run a tuner against precomputed learning curves with simulated parallel workers.

Time is simulated, not measured: each trial's epochs take a duration drawn
from the seed and the trial's number (0.5 to 1.5 units, the same for every
method), and events are processed in time order. A worker that frees up asks
for a new trial at that instant, so a method that can refill slots at once is
rewarded exactly as it would be in a cluster. Resource is the number of epochs
trained, by all trials together, including the epochs of trials later
stopped and of trials cut off when the budget ran out.

The quality at any moment is the best value among the trials that have ended
so far, a stopped trial counting with its last report: what the tuning job's
status would show as its best trial.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from problems import Problem


@dataclass(frozen=True)
class Run:
    """What one method spent and found: the trace of improvements and the totals."""

    resource: list[int]
    time: list[float]
    best: list[float]
    total_resource: int
    total_time: float
    trials: int

    def best_at(self, resource: float) -> float:
        """Best value found within `resource` epochs (-inf before the first trial ended)."""
        found = [b for r, b in zip(self.resource, self.best, strict=True) if r <= resource]
        return found[-1] if found else -math.inf

    def resource_to_reach(self, target: float) -> float:
        """Epochs spent when the best first reached `target` (inf if it never did)."""
        return next((r for r, b in zip(self.resource, self.best, strict=True) if b >= target), math.inf)

    def time_to_reach(self, target: float) -> float:
        return next((t for t, b in zip(self.time, self.best, strict=True) if b >= target), math.inf)

    @property
    def final(self) -> float:
        return self.best[-1] if self.best else -math.inf

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Driver(Protocol):
    """The four calls the simulator makes, whatever the library."""

    def ask(self, count: int) -> list[tuple[Any, dict[str, Any]]]: ...
    def report(self, key: Any, epoch: int, value: float) -> bool: ...
    def tell(self, key: Any, value: float) -> None: ...


def epoch_duration(seed: int, number: int) -> float:
    return 0.5 + float(np.random.default_rng([seed, number, 7]).random())


def simulate(
    driver: Driver, problem: Problem, workers: int, seed: int, max_trials: int, max_resource: float = math.inf
) -> Run:
    heap: list[tuple[float, int, int, int]] = []  # (time, sequence, slot, epoch)
    active: dict[int, tuple[Any, np.ndarray, float]] = {}
    counter = {"started": 0, "sequence": 0}
    resource, now, best = 0, 0.0, -math.inf
    trace: tuple[list[int], list[float], list[float]] = ([], [], [])

    def push(at: float, slot: int, epoch: int) -> None:
        counter["sequence"] += 1
        heapq.heappush(heap, (at, counter["sequence"], slot, epoch))

    def fill(at: float) -> None:
        free = min(workers - len(active), max_trials - counter["started"])
        if free <= 0:
            return
        for key, config in driver.ask(free):
            counter["started"] += 1
            slot = counter["started"]
            duration = epoch_duration(seed, slot)
            active[slot] = (key, problem.curve(config), duration)
            push(at + duration, slot, 1)

    fill(0.0)
    while heap and resource < max_resource:
        now, _, slot, epoch = heapq.heappop(heap)
        key, curve, duration = active[slot]
        value = float(curve[epoch - 1])
        resource += 1
        ended = driver.report(key, epoch, value)
        if not ended and epoch == problem.max_epochs:
            driver.tell(key, value)
            ended = True
        if not ended:
            push(now + duration, slot, epoch + 1)
            continue
        del active[slot]
        if value > best:
            best = value
            trace[0].append(resource)
            trace[1].append(now)
            trace[2].append(best)
        fill(now)
    return Run(*trace, total_resource=resource, total_time=now, trials=counter["started"])
