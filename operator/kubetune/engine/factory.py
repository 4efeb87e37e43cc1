"""Which strategy and scheduler a spec asks for; refusals for what is not built yet name the field.

One function builds both because some strategies are both: Hyperband's
proposals and its stopping decisions share the rung bookkeeping.

The Bayesian strategy is imported only when a spec asks for it: it brings
scipy.optimize and scipy.stats, about 1.5 s of CPU at every start of
`kubetune run` or the operator (2 cores, measured 2026-12-07), which Grid,
Random and plain Hyperband jobs never use.
"""

from __future__ import annotations

from kubetune.api.spec import EarlyStoppingType, HyperbandProposer, HyperParameterTuningJobSpec, Strategy
from kubetune.engine.early_stopping import MedianStoppingRule
from kubetune.engine.space import SearchSpace
from kubetune.engine.stopping import Scheduler
from kubetune.engine.strategies.base import Strategy as StrategyBase
from kubetune.engine.strategies.grid import GridStrategy
from kubetune.engine.strategies.hyperband import build_hyperband
from kubetune.engine.strategies.random import RandomStrategy
from kubetune.errors import SpecError


def build(spec: HyperParameterTuningJobSpec, space: SearchSpace) -> tuple[StrategyBase, Scheduler]:
    """The strategy that proposes configurations and the scheduler that stops trials, for this spec."""
    strategy: StrategyBase
    if spec.strategy is Strategy.GRID:
        strategy = GridStrategy(space)
    elif spec.strategy is Strategy.RANDOM:
        strategy = RandomStrategy()
    elif spec.strategy is Strategy.BAYESIAN:
        from kubetune.engine.strategies.bayesian import BayesianStrategy

        strategy = BayesianStrategy(space)
    elif spec.strategy is Strategy.HYPERBAND:
        return build_hyperband(spec, space, _hyperband_model(spec, space))
    else:
        raise SpecError(
            "spec.strategy", f"the {spec.strategy.value} strategy is not available in this version of kubetune yet"
        )
    if spec.training_job_early_stopping_type is EarlyStoppingType.AUTO:
        return strategy, MedianStoppingRule()
    return strategy, Scheduler()


def _hyperband_model(spec: HyperParameterTuningJobSpec, space: SearchSpace) -> StrategyBase | None:
    """The strategy Hyperband fits on its rungs (proposer Bayesian), or None for plain random proposals."""
    config = spec.strategy_config.hyperband_strategy_config if spec.strategy_config else None
    if config is None or config.proposer is HyperbandProposer.RANDOM:
        return None
    from kubetune.engine.strategies.bayesian import BayesianStrategy

    return BayesianStrategy(space)
