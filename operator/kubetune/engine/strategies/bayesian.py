"""Bayesian optimisation: a Gaussian-process surrogate of the loss and log expected improvement.

How a suggestion is made, and why:

1. **Space-filling start.** The first `initial_design_size(space)` trials are
   points of one scrambled Sobol sequence (seeded by the job's seed, indexed by
   trial number, so parallel asks and a restored tuner get the same points).
   Its size grows with the number of hyperparameters, 2 d + 1 clipped to
   [5, 20]: enough to see each direction's trend before the model leads, few
   enough that the model starts within a typical 50-200 trial budget. The start
   goes on while fewer than half of it has results (many parallel trials, or
   failures) or while every loss is the same (a model of a constant says
   nothing; more space-filling does).
2. **Model.** Losses are warped (`kubetune._gp.warp`: robust to heavy tails and
   outliers); early-stopped trials (non-final losses) and failed trials (imputed
   at the worst warped loss, so the search moves away from what crashes) are
   included with extra noise, since they are weaker evidence. Hyperparameters
   are fitted by MAP on every suggestion; nothing is carried between calls,
   which is what makes `history()` restores exact (on the same numpy/BLAS
   build: floating-point differences between CPUs can change a later digit).
   **From `affine_from_dims` (16) hyperparameters up, a sequential ask sees
   the losses only centred and scaled**, not power-transformed (a far tail
   is still compressed: `warp_losses(power=False)`). A search's own progress
   skews its losses, most of them near the incumbent and the space-filling
   start far above, and the power transform fitted to that skew compresses
   hard (lambda about -1 by 100 results on Rosenbrock-30, -0.5 on Levy-30).
   That flattens the slope from the start down to the incumbent, which in
   20-30 dimensions is what leads the search. bench/bayesian_batch, seq200,
   median final regret over seeds 0-9, power transform / scaled (GPSampler):

       Levy-20   10.7 / 6.6    (5.36)     Ackley-20      5.51 / 16.9  (14.0)
       Levy-30   45   / 24.5   (15.9)     Rosenbrock-30  1.0e5 / 4.6e4 (1.9e4)

   Three of the four within 2x of GPSampler, against one. Ackley-20 ends near
   5 or near 17 on each seed and the median falls between (4 and 6 seeds near
   17); it stays within 2x. Over seeds 0-19, for both methods (2026-12-07):
   Levy-20 6.41 (6.7), Ackley-20 16.9 (12.7), Levy-30 27.6 (16.1),
   Rosenbrock-30 3.8e4 (1.7e4, 2.2x): still three of four, and four of four
   once the trust region may shrink (point 6). The far-tail compression is
   not reached on Rosenbrock-30 (a hard clip at 20 robust units gave the same
   ten runs to the digit). Screened and not kept (Rosenbrock-30
   / Levy-30): lambda at most 1, so the good end is never compressed, 1.0e5 /
   37; lambda at least 0, 3.7e4 / 39; scaled, without the trust region of
   point 6, 5.0e4; scaled, with the polish run to 400 iterations, 7.1e4;
   scaled, with a Thompson pick in the trust region on every 2nd trial number
   (TuRBO's own acquisition), 3.5e4 / 35; scaled, with a start of 10 points
   instead of 20, 4.1e4 / 18.2 (within the spread of 10 seeds, so the start is
   kept); scaled, with the lengthscale prior's median capped at the cube's
   side (where GPSampler's prior has its mode, in every dimension), seeds
   0-19: Rosenbrock-30 3.2e4 against 3.8e4 (at 60 evaluations, seeds 0-9,
   1.5e5 against 4.0e5: the start is where it helps), but Levy-20 10.0 against
   6.4, Levy-30 33.5 against 27.6 (past 2x) and Ackley-20 17.0 against 16.9,
   so the prior keeps growing with sqrt(d). In batches the power transform
   stays: scaled targets lost there (Levy-20 32 x 8, seeds 0/1: 13.0 / 25.7
   against 8.2 / 9.0; Rosenbrock-30 32 x 8 seed 0 5.6e4 against 1.8e4, 100 x 4
   4.8e4 against 1.3e4), and so does an ask for one trial while others run,
   which shares the batches' model (point 3). Below 16 hyperparameters nothing
   changes: bench/bayesian and bench/bayesian_scale are 2-6 dimensions.
3. **Scale.** Past `model_points` (200) results the GP is conditioned on a
   subset: the best half of that size (the region the search is refining) plus
   a uniform draw from the rest (the global shape); only the subset is encoded.
   Hyperparameters are fitted on at most `fit_points` (100) of those, picked
   the same way, from one short start instead of two once the subset is full.
   What is derived from every result (the set of configurations seen, the
   losses) is kept across asks and extended with what is new (`_History`),
   and the output warp chooses its power on at most 2,048 quantiles. So a
   suggestion costs about the same at 20,000 results as at 500 (1.1-1.3×,
   bench/bayesian_scale), in O(model_points^2) memory: no hang and no
   out-of-memory however long the job runs.
   For an ask with trials in flight (a batch, or one trial while others
   run), from 11 hyperparameters up both sizes grow with the dimension, to
   20 and 10 per hyperparameter (400 and 200 at 20, 600 and 300 at 30): a
   30-dimensional surface is not learnt from 100 points, and the cost still
   does not grow with the job's length. bench/bayesian_batch, median final
   regret, 200 / 100 against 20 and 10 per hyperparameter (seeds 0-9 unless
   said): 100 x 4 Levy-20 30.7 / 17.7, Rosenbrock-30 5.8e4 / 2.7e4; 32 x 8
   Levy-20 10.9 / 5.7, Rosenbrock-30 3.5e4 / 1.8e4. Growing only the model
   and not the fit did nothing (seeds 0-3: 100 x 4 Levy-20 34.2, Rosenbrock-
   30 4.1e4). Sequential asks keep 200 / 100: there growing was mixed,
   seq200 seeds 0-9, Levy-20 10.7 / 12.9, Ackley-20 5.51 / 11.5, Levy-30
   45 / 46, Rosenbrock-30 1.0e5 / 4.4e4 (in the trust region of point 6,
   which was tuned with the smaller fit). Up to 10 hyperparameters nothing
   changes.
   Small matrices gain nothing from BLAS threads and lose much to contention
   on a busy node, so every suggestion runs with one BLAS thread
   (`kubetune.engine.threads`), whatever the process's own setting.
4. **Trials in flight.** How the trials running (and, in a batch, its
   earlier picks) enter the acquisition depends on the ask:

   - **An ask for several trials** (`ask(n)`, n > 1) draws their values
     jointly from the posterior, 128 times (`kubetune._gp.pending`), and
     maximises EI averaged over the draws, each below min(incumbent, the
     draw's best): the Monte Carlo q-EI of {trials in flight, new pick} less
     its part that does not depend on the pick, with the pick's own value
     integrated exactly. It is what Optuna's GPSampler does for running
     trials. A pick next to the incumbent keeps its value in every draw
     where the trials in flight do not improve, which is most of them.
   - **An ask for one trial while others run** (how the operator fills a
     free slot) uses the kriging believer: each running trial enters as a
     noise-free fantasy at its posterior mean, and the incumbent is lowered
     to the best fantasy. The mean is unchanged but the uncertainty there
     collapses, so EI near a running trial vanishes and the pick goes
     elsewhere.

   Why each: bench/bayesian_batch (Thompson picks on, point 4c) and
   bench/bayesian (8 pending, one trial asked at a time), median final
   regret over seeds 0-9, drawn / believer, 2026-12-07:

       32 x 8:  Hartmann6 1.3e-5 / 2.6e-5      Levy-20 10.9 / 17.4
       8 pending: Branin 6.3e-7 / 2.4e-6       Hartmann6 0.067 / 0.055
                  Rosenbrock-4 3.64 / 3.27     Ackley-5 2.51 / 2.89
                  mixed 7.4e-7 / 2.0e-7        noisy Hartmann6 0.178 / 0.166

   Drawn wins both batch cells; one at a time it wins two of six and loses
   noisy Hartmann6 past 2x GPSampler's 0.084, so one-trial asks keep the
   believer.
4b. **Batch spacing.** Fantasies alone do not spread a large batch: EI stays
   high a hair away from a fantasy, so after a few picks the rest pack around
   the best region. Every pick therefore keeps at least `batch_spacing` (2%)
   of the unit cube's diagonal from every suggestion in flight (pending trials
   and this batch's earlier picks): candidates closer are dropped before the
   acquisition is maximised, and a polished point that climbed back inside
   goes behind those that kept their distance. Only when nothing that far
   away is left (a discrete space finer than the spacing, nearly exhausted)
   is a closer one taken. bench/bayesian_batch/spread.py, 200 random results,
   median of 3 seeds, suggestions with another within 2% of the diagonal /
   suggestions within 10% of it from the best result:

       ask(100) Hartmann6:  fantasies alone 37 / 2   spacing 2% 0 / 3   5% 0 / 2
       ask(100) Ackley-10:  fantasies alone 12 / 1   spacing 2% 0 / 0   5% 0 / 4
       ask(32)  Hartmann6:  fantasies alone  7 / 0   spacing 2% 0 / 1   5% 0 / 1

   A hard floor was chosen over local penalisation (González et al., 2016)
   and a Thompson-sampling batch because it is the only one of the three
   that guarantees the floor whatever the model believes, it changes nothing
   for a single ask with nothing in flight (the sequential results of
   bench/bayesian are unchanged), and it leaves the ranking inside the
   allowed region to EI, so the first pick is still the model's best guess,
   next to the incumbent when that is where EI points. It does not cost
   regret: bench/bayesian_batch, median final regret over seeds 0-4, spacing
   2% against fantasies alone (kubetune against kubetune-kb):

       32 x 8:   Hartmann6 6.0e-5 / 1.1e-4   Ackley-10 4.57 / 5.44
                 Levy-20 24.9 / 25.2         Rosenbrock-30 7.4e4 / 8.4e4
       100 x 4:  Hartmann6 0.036 / 0.071     Ackley-10 4.86 / 6.81
                 Levy-20 28.6 / 28.6         Rosenbrock-30 7.2e4 / 6.9e4

   Better or equal on 7 of 8; a 5% spacing did worse on the one seed of
   Hartmann6 100 x 4 it was tried on (0.068 against 0.021).
   (These figures are of 2026-12-02, when batches used the believer and no
   Thompson picks; the spacing applies to every pick of point 4c too.)
4c. **Thompson picks in a batch.** Every other pick of a batch (by trial
   number, so a restore agrees) is the lowest point of one joint draw of the
   posterior over 1,024 candidates (the same Sobol and local candidates, the
   same spacing), not the maximum of EI. A draw goes to each basin about as
   often as the model thinks the minimum may lie there, so a batch keeps
   looking for a better basin while its EI half refines the incumbent's: on
   Hartmann6 the search otherwise settles in the basin 0.119 above the
   minimum. bench/bayesian_batch, drawn fantasies, median final regret over
   seeds 0-9, none / every 4th / every 2nd pick:

       32 x 8:   Hartmann6 8.0e-4 / 5.9e-5 / 1.3e-5    Levy-20 13.9 / - / 10.9
       100 x 4:  Hartmann6 0.119 / - / 0.073

   Every 2nd it is. For one trial asked while 8 run (bench/bayesian
   Hartmann6) Thompson picks on every 2nd trial number did not help (0.062
   with the trust region of point 7, 0.064 without, against 0.055), so
   they are for batches only. Nor did confining the Thompson picks of a
   20-dimensional batch to the trust region (TuRBO's batch): Levy-20 100 x 4,
   seeds 0-3, model of 200 results (point 3), 31.9 against 34.5 (no Thompson
   picks: 29.1, within the spread of 4 seeds). Each Thompson pick costs one
   Cholesky factorisation of 1,024 x 1,024 (`thompson_pool`).
5. **Acquisition.** Log EI, maximised over Sobol and local candidates with
   L-BFGS-B polish (`kubetune._gp.optimize`). Integers are optimised relaxed
   and snapped to their cell; categoricals take each of their values. A pick
   equal to a configuration already observed, running or failed is skipped for
   the next best.
6. **Trust region, sequential asks from 16 hyperparameters up.** Over the whole
   cube, EI descends Rosenbrock-30's valley slowly. A sequential ask (one
   trial, none running) in a space of `trust_region_dims` (16) or more
   dimensions confines the candidates and the polish to a box around the
   incumbent, sides `length` times each column's lengthscale over their
   geometric mean (TuRBO, Eriksson et al., 2019). `length` follows TuRBO's
   rule (`TrustRegion`: 3 successes in a row double it up to 1.6,
   min(max(4, d), `trust_failures`) failures in a row halve it, below 2^-7
   it starts again at 0.8), replayed over the final results in the order
   they came, so it is a function of the history and restores stay exact.
   bench/bayesian_batch, seq200, median final regret over seeds 0-9,
   without / with the trust region (GPSampler):

       Rosenbrock-30  1.5e5 / 6.2e4 (1.9e4)    Ackley-20  16.9 / 10.7 (14.0)
       Levy-20         7.4 / 10.4   (5.4)      Levy-30    21.1 / 28.1 (15.9)

   Better on two, worse on the two Levy problems. Those are 2026-12-03
   figures: rerun on 2026-12-07 the same sequential path gives Rosenbrock-30
   1.0e5, Ackley-20 5.51, Levy-20 10.7 and Levy-30 45. Not a code change:
   the commit that stored them (82d8c49) gives today's figure here too
   (Levy-20 seed 0: 5.47, stored 16.6), so the machine's floating point
   differs and the runs diverge from there (bench/bayesian_batch). With
   the scaled losses of point 2 they are 4.6e4, 16.9, 6.6 and 24.5. In
   batches it lost everywhere it was tried (same seeds,
   box on every ask): Levy-20 32 x 8 23.5 / 29.7, 100 x 4 31.4 / 47.6,
   Rosenbrock-30 32 x 8 7.1e4 / 7.4e4, 100 x 4 7.0e4 / 3.0e5, hence
   sequential asks only. For batches nothing changes; below 16 dimensions
   neither does a sequential ask (bench/bayesian and bench/bayesian_scale
   are 2-6 dimensions), but see point 7 for one trial asked while others run.
   The tolerance: TuRBO's own is max(4, d), but in 20-30 dimensions d
   failures in a row never happen (a success every 10-20 results resets the
   count), so on Rosenbrock-30 the side stayed at 0.8 for all 200
   evaluations while the model's long early lengthscales kept every step
   small. At most 10 (`trust_failures`) lets it shrink. seq200, median final
   regret over seeds 0-19, tolerance d / 10 (GPSampler, 20 seeds),
   2026-12-07:

       Rosenbrock-30  3.8e4 / 2.45e4 (1.73e4)  Ackley-20  16.9 / 17.1 (12.7)
       Levy-20        6.41 / 7.98    (6.7)     Levy-30    27.6 / 20.2 (16.1)

   All four within 2x of GPSampler (1.42x the worst) against three; Levy-20
   loses a little, inside its spread (quartiles [6.1, 12.7] against
   [5.2, 12.3]). Batches never use the box, and below 11 hyperparameters
   the tolerance is what it was (so point 7's figures stand).
7. **One trial asked while others run, below 16 hyperparameters: the trust
   region, one pick in four over the whole space.** Fantasies and spacing
   empty the best region of expected improvement, and what is left of it
   lies in the far corners of the cube, where the model knows least: on
   Hartmann6 with 8 pending (seed 7), 28 of the last 50 evaluations landed
   where the function is flat (loss > -0.05), and runs that had found the
   global basin ended up to 5e-3 above its floor. Such an ask (`ask(1)`
   with trials running: how the operator fills a free slot) now picks in
   the trust region of point 6, except every `global_every`-th (4th) trial
   number, which searches the whole space as before, so the search can
   still leave a basin. A function of the trial number, so restores stay
   exact. bench/bayesian, 8 pending, regret@100, median over seeds 0-9,
   before / after (GPSampler):

       Branin     6.4e-6 / 2.4e-6 (4.1e-5)   Hartmann6        0.062 / 0.055 (1.6e-4)
       Rosenbrock-4 4.17 / 3.27   (125)      Ackley-5          3.86 / 2.89  (5.7)
       mixed      1.4e-7 / 2.0e-7 (9.3e-6)   noisy Hartmann6  0.151 / 0.166 (0.084)

   The Hartmann6 runs that find the global basin now end at 1e-5 to 3e-5
   (before 6e-5 to 5e-3); which runs find it does not change (seeds 0, 1,
   3, 5 and 6 miss it before and after), so its median barely moves. What did move them:
   making each whole-space pick keep 20% of the diagonal from the best
   result, on every 2nd trial number (`global_distance` 0.2,
   `global_every` 2): Hartmann6 1.6e-4 (6 of 10 found and refined), but
   noisy Hartmann6 0.182 (2.2x GPSampler), Ackley-5 4.52, Rosenbrock-4
   4.34, so it is a setting, off by default. Every 4th far: Hartmann6
   0.0039; every 3rd: 0.021; every 2nd at 30%: noisy Hartmann6 0.217. Far
   picks without the trust region: 0.027 (every 4th), 0.0063 (every 2nd:
   more runs find the basin, none refines it). Synchronous batches
   (`ask(n)`, n > 1) and sequential asks are unchanged: in batches the
   trust region with every 4th pick whole-space lost, seeds 0-9, before /
   after: Hartmann6 32 x 8 2.4e-4 / 0.060, 100 x 4 0.119 / 0.119,
   Ackley-10 32 x 8 4.28 / 6.06, 100 x 4 5.5 / 9.0 (9 seeds). At 16 and
   more dimensions nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.stats import qmc

from kubetune._gp import GP, fit, warp_losses
from kubetune._gp.acquisition import Acquisition, LogEI
from kubetune._gp.gp import robust_cholesky
from kubetune._gp.kernel import FloatArray
from kubetune._gp.optimize import candidates, maximize
from kubetune._gp.pending import PendingLogEI, normal_draws
from kubetune.api.spec import ParameterValue
from kubetune.engine.space import Kind, SearchSpace
from kubetune.engine.strategies.base import Config, Observation, SearchState, Strategy, batch_rng
from kubetune.engine.threads import engine_threads

SNAP_LIMIT = 10_000
"""Integer ranges up to this many values are snapped to their cells while optimising; wider ones act continuous."""


class Pending(Enum):
    """How an ask accounts for the trials in flight."""

    SAMPLED = "sampled"
    """Their values drawn jointly from the posterior; EI of the new pick averaged over the draws."""
    BELIEVER = "believer"
    """Kriging believer: each fantasised at its posterior mean, noise-free (before issue 16)."""


class Region(Enum):
    """Where one pick searches."""

    WHOLE = "whole"
    """The whole space."""
    TRUST = "trust"
    """The trust region around the incumbent (module docstring, points 6 and 7)."""
    FAR = "far"
    """The whole space less a ball around the best result (module docstring, point 7)."""
    THOMPSON = "thompson"
    """The minimum of one draw of the posterior over the candidates, not the maximum of EI."""


@dataclass(frozen=True)
class BayesianSettings:
    """Knobs of the Bayesian strategy; the defaults are what the benchmark in bench/bayesian measured."""

    model_points: int = 200
    """Most results the GP is conditioned on; past it, a subset (see the module docstring)."""
    fit_points: int = 100
    """Most results the hyperparameters are fitted on: the fit is the O(n^3)-per-iteration part."""
    model_points_per_dim: int = 20
    """From 11 hyperparameters up, an ask with trials in flight (a batch, or one while others run) grows
    `model_points` to this many per hyperparameter (module docstring, point 3)."""
    fit_points_per_dim: int = 10
    """And `fit_points` to this many per hyperparameter."""
    thompson_pool: int = 1024
    """Candidates a Thompson pick draws over."""
    global_candidates: int = 512
    """Sobol candidates over the whole space per pick."""
    local_candidates: int = 512
    """Perturbations of the best results per pick."""
    polish_starts: int = 5
    """Best candidates polished by L-BFGS-B."""
    nonfinal_noise: float = 0.1
    """Extra noise variance (in warped units) of an early-stopped or failed trial's value."""
    batch_spacing: float = 0.02
    """Least distance between two suggestions in flight (pending trials and this batch's picks), as a
    fraction of the unit cube's diagonal; 0 leaves the spreading to the fantasies alone."""
    trust_region_dims: int = 16
    """From this many hyperparameters up, a sequential ask (one trial, none running) confines candidates and
    polish to a trust region around the incumbent (see the module docstring); otherwise the whole space.
    A large value turns it off."""
    trust_failures: int = 10
    """The trust region halves after min(max(4, d), this) results in a row that do not improve: TuRBO's d
    alone never shrinks it in 20-30 dimensions (module docstring, point 6)."""
    global_every: int = 4
    """Below `trust_region_dims`, an ask for one trial while others run picks in the trust region, except
    every `global_every`-th trial number, which searches the whole space (module docstring, point 7);
    0 or 1: every such pick searches the whole space, as before."""
    global_distance: float = 0.0
    """If positive, those whole-space picks keep at least this fraction of the unit cube's diagonal from the
    best result. Off: it fixes Hartmann6 with 8 pending but costs noisy Hartmann6 (module docstring, point 7)."""
    affine_from_dims: int = 16
    """From this many hyperparameters up, a sequential ask (one trial, none running) sees the losses only
    centred and scaled, not power-transformed (module docstring, point 2). A large value keeps the power
    transform everywhere."""
    thompson_every: int = 2
    """In a batch (`ask(n)`, n > 1), every `thompson_every`-th pick is a Thompson sample; 0: none."""
    pending: Pending = Pending.BELIEVER
    """How the trials running enter the acquisition of an ask for one trial (module docstring, point 4)."""
    batch_pending: Pending = Pending.SAMPLED
    """How the trials in flight (running, and the batch's earlier picks) enter it in an ask for several."""


def initial_design_size(space: SearchSpace) -> int:
    """2 d + 1 in [5, 20], and never more than a discrete space holds."""
    n = min(max(2 * space.dims + 1, 5), 20)
    total = _discrete_size(space)
    return n if total is None else min(n, total)


def _discrete_size(space: SearchSpace) -> int | None:
    total = 1
    for p in space.parameters:
        if p.cardinality is None:
            return None
        total *= p.cardinality
    return total


class Codec:
    """Configurations to model rows and back: unit coordinates, with categoricals as value indices."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.n_choices = np.array([len(p.choices) if p.kind is Kind.CATEGORICAL else 0 for p in space.parameters])
        self.is_cat = self.n_choices > 0
        self._centres: dict[int, FloatArray] = {}
        for j, p in enumerate(space.parameters):
            if p.kind is Kind.INTEGER and p.cardinality is not None and p.cardinality <= SNAP_LIMIT:
                self._centres[j] = np.array([p.to_unit(v) for v in range(int(p.low), int(p.high) + 1)])

    def row(self, config: Mapping[str, Any]) -> FloatArray:
        u = self.space.encode(config)
        u[self.is_cat] = np.round(u[self.is_cat] * self.n_choices[self.is_cat] - 0.5)
        return u

    def rows(self, configs: Sequence[Mapping[str, Any]]) -> FloatArray:
        return np.array([self.row(c) for c in configs]).reshape(len(configs), self.space.dims)

    def config(self, row: FloatArray) -> dict[str, ParameterValue]:
        u = np.array(row, dtype=float)
        u[self.is_cat] = (u[self.is_cat] + 0.5) / self.n_choices[self.is_cat]
        return self.space.decode(u)

    def unit(self, rows: FloatArray) -> FloatArray:
        """Rows in the unit cube (categoricals at their cell centres): where batch spacing is measured."""
        u = np.array(rows, dtype=float, copy=True)
        u[:, self.is_cat] = (u[:, self.is_cat] + 0.5) / self.n_choices[self.is_cat]
        return u

    def snap(self, rows: FloatArray) -> FloatArray:
        """Integer columns moved to the centre of the nearest cell, so a row and its configuration agree."""
        rows = rows.copy()
        for j, centres in self._centres.items():
            idx = np.clip(np.searchsorted(centres, rows[:, j]), 1, len(centres) - 1)
            left, right = centres[idx - 1], centres[idx]
            rows[:, j] = (
                np.where(rows[:, j] - left < right - rows[:, j], left, right) if len(centres) > 1 else centres[0]
            )
        return rows


class BayesianStrategy(Strategy):
    """GP + log EI on the unit-cube encoding; see the module docstring for the design."""

    def __init__(self, space: SearchSpace, settings: BayesianSettings | None = None) -> None:
        self.space = space
        self.settings = settings or BayesianSettings()
        self.codec = Codec(space)
        self.n_init = initial_design_size(space)
        self._history = _History(space, self.n_init, min(max(4, space.dims), self.settings.trust_failures))

    def size(self) -> int | None:
        return _discrete_size(self.space)

    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        with engine_threads():
            return self._suggest(state, count, seed)

    def _suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        rng = batch_rng(seed, state)
        space = state.space
        self._history.update(state)
        taken = self._history.taken | {space.key(c) for c in state.pending}
        total = self.size()
        if total is not None and len(taken) >= total:
            return []  # every configuration of a discrete space is taken: no model to fit, nothing to pick
        model: _Model | None = None
        out: list[Config] = []
        for i in range(count):
            number = state.asked + i
            if model is None and number >= self.n_init:
                model = _Model.build(self, state, rng, count - i, count > 1)
            if model is None:
                config = self._space_filling(number, seed, taken, rng)
            else:
                config = model.pick(rng, taken, self._region(number, count, bool(state.pending)))
            if config is None:
                break  # a discrete space with every configuration taken
            taken.add(space.key(config))
            out.append(config)
        return out

    def _region(self, number: int, count: int, pending: bool) -> Region:
        """Where trial `number`, asked in a batch of `count`, is picked (module docstring, points 6 and 7).

        In a batch every `thompson_every`-th pick is a Thompson draw (point 4c). From `trust_region_dims`
        up, a sequential ask picks in the trust region. Below, an ask for one
        trial while others run picks there too, except every `global_every`-th trial number (far from
        the best result if `global_distance` is set). Everything else searches the whole space. A
        function of the trial number, not of a counter, so a restored tuner picks the same way.
        """
        settings = self.settings
        te = settings.thompson_every
        if te >= 1 and count > 1 and number % te == te - 1:
            return Region.THOMPSON
        if self.space.dims >= settings.trust_region_dims:
            return Region.TRUST if count == 1 and not pending else Region.WHOLE
        every = settings.global_every
        if count != 1 or not pending or every < 2:
            return Region.WHOLE
        if number % every != every - 1:
            return Region.TRUST
        return Region.FAR if settings.global_distance > 0 else Region.WHOLE

    def _space_filling(
        self, number: int, seed: int, taken: set[tuple[Any, ...]], rng: np.random.Generator
    ) -> Config | None:
        """Point `number` of the job's Sobol sequence, or the next one not taken yet, or else a random untaken one."""
        m = max(1, math.ceil(math.log2(number + 1 + 64)))
        sobol = qmc.Sobol(self.space.dims, scramble=True, seed=np.random.default_rng([seed, 0x5B01])).random_base2(m)
        for row in sobol[number:]:
            config = self.space.decode(row)
            if self.space.key(config) not in taken:
                return config
        return _random_untaken(self.space, rng, taken)


class _History:
    """What a suggestion derives from the results and failures, kept across asks and extended by what is new.

    The Tuner appends to one list of observations and one of failed
    configurations for the whole job. Rebuilding the set of seen configurations
    and the array of losses from them on every ask made its cost grow with the
    job's length (issue 16: 26 ms at 200 results, 109 ms at 20,000, half of it
    that set). Here only the entries added since the last ask are read. A state
    whose sequences are not the ones read last time, or not their extension
    (another caller, a restored tuner, Hyperband's rung views), is read afresh,
    so this is a cache and nothing more: the suggestions are those of a fresh
    strategy, and `history()` restores stay exact.
    """

    def __init__(self, space: SearchSpace, n_init: int = 0, fail_tolerance: int = 4) -> None:
        self.space = space
        self.n_init = n_init
        self.fail_tolerance = fail_tolerance
        self._reset()

    def _reset(self) -> None:
        self.taken: set[tuple[Any, ...]] = set()
        self._obs_src: Sequence[Observation] | None = None
        self._obs_last: Observation | None = None
        self._failed_src: Sequence[Mapping[str, Any]] | None = None
        self._failed_last: Mapping[str, Any] | None = None
        self.n_obs = 0
        self.n_failed = 0
        self._losses = np.empty(64)
        self._final = np.empty(64, dtype=bool)
        self.trust = TrustRegion()

    @staticmethod
    def _extends(src: Sequence[Any] | None, last: Any, done: int, seq: Sequence[Any]) -> bool:
        return seq is src and len(seq) >= done and (done == 0 or seq[done - 1] is last)

    def update(self, state: SearchState) -> None:
        obs, failed = state.observations, state.failed
        if not (
            self._extends(self._obs_src, self._obs_last, self.n_obs, obs)
            and self._extends(self._failed_src, self._failed_last, self.n_failed, failed)
        ):
            self._reset()
        key = self.space.key
        n = len(obs)
        if n > len(self._losses):
            size = max(n, 2 * len(self._losses))
            self._losses = np.resize(self._losses, size)
            self._final = np.resize(self._final, size)
        for i in range(self.n_obs, n):
            o = obs[i]
            self.taken.add(key(o.config))
            self._losses[i] = o.loss
            self._final[i] = o.final
            if o.final:
                self.trust.tell(o.loss, i >= self.n_init, self.fail_tolerance)
        for i in range(self.n_failed, len(failed)):
            self.taken.add(key(failed[i]))
        self._obs_src, self._failed_src = obs, failed
        self.n_obs, self.n_failed = n, len(failed)
        self._obs_last = obs[n - 1] if n else None
        self._failed_last = failed[-1] if len(failed) else None

    @property
    def losses(self) -> FloatArray:
        """(n_obs,) a view: valid until the next update."""
        return self._losses[: self.n_obs]

    @property
    def final(self) -> np.ndarray:
        return self._final[: self.n_obs]


TRUST_START = 0.8
TRUST_MIN = 0.5**7
TRUST_MAX = 1.6
TRUST_SUCCESSES = 3


@dataclass
class TrustRegion:
    """TuRBO's side-length rule (Eriksson et al., 2019), replayed over the results in the order they came.

    A result better than the best before it by 0.1% is a success, any other a failure; three successes in
    a row double the side (up to 1.6), `fail_tolerance` failures in a row halve it, and below 2^-7 it
    starts again at 0.8. Being a fold over the history, it is rebuilt exactly by a restore.
    """

    length: float = TRUST_START
    best: float = math.inf
    successes: int = 0
    failures: int = 0

    def tell(self, loss: float, counts: bool, fail_tolerance: int) -> None:
        if not math.isfinite(loss):
            return
        better = loss < self.best - 1e-3 * abs(self.best)
        self.best = min(self.best, loss)
        if not counts:
            return
        if better:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        if self.successes >= TRUST_SUCCESSES:
            self.length, self.successes = min(2.0 * self.length, TRUST_MAX), 0
        elif self.failures >= fail_tolerance:
            self.length, self.failures = self.length / 2.0, 0
            if self.length < TRUST_MIN:
                self.length = TRUST_START


def _random_untaken(space: SearchSpace, rng: np.random.Generator, taken: set[tuple[Any, ...]]) -> Config | None:
    for config in space.sample(rng, 256):
        if space.key(config) not in taken:
            return config
    total = _discrete_size(space)
    if total is not None and len(taken) < total:
        import itertools

        for values in itertools.product(*(p.grid_values() for p in space.parameters)):
            config = dict(zip(space.names, values, strict=True))
            if space.key(config) not in taken:
                return config
    return None


@dataclass
class _Model:
    """The posterior of one ask, updated with each pick of the batch as a fantasy."""

    strategy: BayesianStrategy
    gp: GP
    best: float
    centres: FloatArray
    in_flight: FloatArray
    """(k, d) unit-cube rows of the pending trials and of this batch's picks so far."""
    box: tuple[FloatArray, FloatArray]
    """Lower and upper bounds (model rows) of the trust region, for the picks confined to it."""
    mode: Pending
    """How the trials in flight enter the acquisition."""
    running: FloatArray
    """(k, d) model rows of the trials in flight, for `Pending.SAMPLED` (the GP holds them as fantasies
    for `Pending.BELIEVER`)."""
    draws: FloatArray
    """(SAMPLES, k + picks) standard normals: the joint draws of the values of the trials in flight."""

    @classmethod
    def build(
        cls,
        strategy: BayesianStrategy,
        state: SearchState,
        rng: np.random.Generator,
        picks: int = 1,
        batch: bool = False,
    ) -> _Model | None:
        settings, codec = strategy.settings, strategy.codec
        obs, failed, history = state.observations, state.failed, strategy._history
        if len(obs) < max(3, strategy.n_init // 2):
            return None
        # a sequential ask from `affine_from_dims` up sees the losses only scaled (module docstring, point 2)
        sequential = not batch and not state.pending
        y_obs = warp_losses(history.losses, power=not sequential or codec.space.dims < settings.affine_from_dims)
        if y_obs is None:
            return None
        y = np.concatenate([y_obs, np.full(len(failed), float(y_obs.max()))])
        extra = np.concatenate(
            [np.where(history.final, 0.0, settings.nonfinal_noise), np.full(len(failed), settings.nonfinal_noise)]
        )
        # grown with the dimension for asks with trials in flight (module docstring, point 3)
        grow = 0 if sequential else codec.space.dims
        keep = _subset(y, max(settings.model_points, settings.model_points_per_dim * grow), rng)
        # encoding is the O(n) Python part: only what is kept
        x = codec.rows([obs[i].config if i < len(obs) else failed[i - len(obs)] for i in keep])
        y, extra = y[keep], extra[keep]
        fit_idx = _subset(y, max(settings.fit_points, settings.fit_points_per_dim * grow), rng)
        hp = fit(x[fit_idx], y[fit_idx], codec.is_cat, extra[fit_idx])
        gp = GP(x, y, codec.is_cat, extra, hp)
        real = keep < len(obs)
        mu, _ = gp.predict(x[real])
        best = float(mu.min())
        order = np.argsort(y[real], kind="stable")[:5]
        centres = x[real][order]
        box = _trust_box(centres[0], gp.hp.log_ls, codec.is_cat, history.trust.length)
        mode = settings.batch_pending if batch else settings.pending
        running = np.empty((0, codec.space.dims))
        if state.pending:
            xp = codec.rows(list(state.pending))
            if mode is Pending.BELIEVER:
                mu_p = gp.predict(xp)[0]
                gp = gp.condition(xp, mu_p, _fantasy_extra(gp, len(xp)))
                best = min(best, float(mu_p.min()))  # as if observed: else EI there stays at the predicted gain
            else:
                running = xp
            in_flight = codec.unit(xp)
        else:
            in_flight = np.empty((0, codec.space.dims))
        draws = normal_draws(rng, len(running) + picks) if mode is Pending.SAMPLED else np.empty((0, 0))
        return cls(strategy, gp, best, centres, in_flight, box, mode, running, draws)

    def acquisition(self) -> Acquisition:
        """log EI, or with trials in flight under `Pending.SAMPLED`, its average over their joint draws."""
        if len(self.running) == 0:
            return LogEI(self.gp, self.best)
        return PendingLogEI(self.gp, self.best, self.running, self.draws)

    def pick(
        self, rng: np.random.Generator, taken: set[tuple[Any, ...]], region: Region = Region.WHOLE
    ) -> Config | None:
        """The next configuration, picked in `region`; then it becomes a fantasy for the picks after it."""
        settings, codec, space = self.strategy.settings, self.strategy.codec, self.strategy.space
        box = self.box if region is Region.TRUST else None
        away = settings.global_distance * math.sqrt(space.dims) if region is Region.FAR else 0.0
        pool = candidates(
            rng,
            settings.global_candidates,
            settings.local_candidates,
            self.centres,
            self.gp.hp.log_ls,
            codec.n_choices,
            box,
        )
        radius = settings.batch_spacing * math.sqrt(space.dims)
        if radius > 0 and len(self.in_flight):
            apart = self._apart(pool, radius)
            if apart.any():  # else a discrete space with nothing left that far away: take what there is
                pool = pool[apart]
        if away > 0:
            far = self._apart(pool, away, self.centres[:1])
            if far.any():  # else a discrete space with nothing that far left: the best of what there is
                pool = pool[far]
        if region is Region.THOMPSON:
            points = self._thompson(rng, pool)
        else:
            points, _ = maximize(self.acquisition(), pool, codec.n_choices, codec.snap, settings.polish_starts, box=box)
        if radius > 0 and len(self.in_flight):
            # polishing may climb back towards a pick in flight; those go behind the ones that kept their distance
            points = points[np.argsort(~self._apart(points, radius), kind="stable")]
        if away > 0:  # the same for a polish that climbed back towards the best result
            points = points[np.argsort(~self._apart(points, away, self.centres[:1]), kind="stable")]
        chosen: FloatArray | None = None
        config: Config | None = None
        for point in points:
            candidate = codec.config(point)
            if space.key(candidate) not in taken:
                chosen, config = point, candidate
                break
        if config is None:
            config = _random_untaken(space, rng, taken)
            if config is None:
                return None
            chosen = codec.row(config)
        assert chosen is not None
        z = chosen[None, :]
        if self.mode is Pending.BELIEVER:
            mu = self.gp.predict(z)[0]
            self.gp = self.gp.condition(z, mu, _fantasy_extra(self.gp, 1))
            self.best = min(self.best, float(mu[0]))
        else:
            self.running = np.vstack([self.running, z])
        self.in_flight = np.vstack([self.in_flight, codec.unit(z)])
        return config

    def _thompson(self, rng: np.random.Generator, pool: FloatArray) -> FloatArray:
        """`pool` (snapped) ordered by one joint draw of the posterior over it, lowest first."""
        pool = self.strategy.codec.snap(pool)[: self.strategy.settings.thompson_pool]
        gp = self.gp
        mu = gp.predict(pool)[0]
        v = solve_triangular(gp.chol, gp.cross(pool).T, lower=True, check_finite=False)
        cov = gp.kernel(pool, pool) - v.T @ v
        chol = robust_cholesky(cov + 1e-8 * gp.hp.amp * np.eye(len(pool)))
        draw = mu + chol @ rng.standard_normal(len(pool))
        return pool[np.argsort(draw, kind="stable")]

    def _apart(self, rows: FloatArray, radius: float, others: FloatArray | None = None) -> np.ndarray:
        """(m,) whether each row is at least `radius` (unit-cube distance) from every suggestion in flight,
        or from each of `others` (model rows) when given."""
        codec = self.strategy.codec
        u = codec.unit(rows)
        ref = self.in_flight if others is None else codec.unit(others)
        d2 = (u * u).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2.0 * u @ ref.T
        return np.asarray(d2.min(1) >= radius * radius, dtype=bool)


def _trust_box(
    centre: FloatArray, log_ls: FloatArray, is_cat: np.ndarray, length: float
) -> tuple[FloatArray, FloatArray]:
    """TuRBO's box: side `length` times each continuous column's lengthscale over their geometric mean."""
    cont = ~is_cat
    w = np.exp(log_ls - log_ls[cont].mean()) if cont.any() else np.ones_like(log_ls)
    half = 0.5 * length * w
    lo = np.where(cont, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(cont, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def _fantasy_extra(gp: GP, count: int) -> FloatArray:
    """Fantasies are noise-free: with the fitted noise left in, a noisy model would shrink the
    uncertainty at a pending point only a little and pick the same point again."""
    return np.full(count, 1e-6 * gp.hp.amp - gp.hp.noise)


def _subset(y: FloatArray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of at most `size` points: the best size/2 by y, then a uniform draw from the rest."""
    n = len(y)
    if n <= size:
        return np.arange(n)
    order = np.argsort(y, kind="stable")
    top, rest = order[: size // 2], order[size // 2 :]
    drawn = rng.choice(rest, size - len(top), replace=False)
    return np.sort(np.concatenate([top, drawn]))
