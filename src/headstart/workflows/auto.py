"""``fit --strategy auto``: the probe and the strategies ``advise`` recommends, the best kept on validation."""

from __future__ import annotations

import time
from typing import Any

from headstart.workflows.advise import advise_prepared
from headstart.backbones import Backbone
from headstart.workflows.budget import Budget
from headstart.core.config import FitConfig
from headstart.workflows.pipeline import FitResult, fit_prepared, for_strategy, prepare
from headstart.workflows.runtime import Runtime
from headstart.strategies import make_strategy
from headstart.tasks.base import check_select


def fit_auto(data: Any, model: str | Backbone, cfg: FitConfig, runtime: Runtime, val: Any = None,
             test: Any = None) -> FitResult:
    """Fit the probe and the advised candidates within ``cfg.budget``; keep the best by the task's select
    metric on validation (the cheaper one on a tie).

    The data and the backbone are loaded once, for the advice and the fits; the linear probe comes from the
    feature cache the advice filled, so checking it costs seconds.
    """
    start = time.perf_counter()
    splits, backbone = prepare(data, model, cfg, val, test)
    metric = check_select(splits.task, cfg.select_metric)
    advice = advise_prepared(splits, [backbone], cfg, runtime, cfg.budget)
    clock = Budget.parse(cfg.budget)
    linear = fit_prepared(splits, backbone, for_strategy(cfg, "linear"), make_strategy("linear"), runtime)
    fitted = {"linear": linear}
    for name in advice.recommendation["candidates"]:
        if clock.left() <= 0:
            break
        job = for_strategy(cfg, name)
        fitted[name] = fit_prepared(splits, backbone, job, make_strategy(name, **job.options),
                                    runtime.until(clock.deadline()))
    kept = linear
    for result in fitted.values():  # in the order fitted, cheapest first: a later one must validate better
        if result.metrics["val"][metric] > kept.metrics["val"][metric]:
            kept = result
    kept.info["auto"] = {
        "recommended": advice.recommendation["strategy"], "kept": kept.strategy, "advice": advice.to_dict(),
        "metric": metric, f"val_{metric}": {name: r.metrics["val"][metric] for name, r in fitted.items()},
        "seconds": {name: r.metrics["seconds"] for name, r in fitted.items()},
        "total_seconds": time.perf_counter() - start,  # the advice and every fit, the kept one included
    }
    return kept
