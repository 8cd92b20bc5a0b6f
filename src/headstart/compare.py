"""compare: every strategy on the same data, split and backbone, measured side by side.

Transfer learning and fine-tuning differ in training scope, data requirements, computational cost,
adaptability and risk of overfitting. ``compare`` turns each into a number on the user's data:
trainable parameters, a learning curve, wall time and peak memory, validation/test accuracy with
intervals, and the train-minus-validation gap. Small data sets are repeated over seeds or folds.
A time budget is respected: a fit that would not finish in it is skipped or stopped, and says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from headstart.api import FitResult, config_for, fit_prepared, prepare
from headstart.backbones import Backbone
from headstart.budget import Budget
from headstart.config import FitConfig
from headstart.data import DataSplits, Dataset
from headstart.data.split import carve
from headstart.errors import ConfigError
from headstart.report import ReportData, read_run, render_report
from headstart.outdir import check_writable, write_marker
from headstart.runs import write_json_atomic
from headstart.strategies import STRATEGIES, make_strategy

DEFAULT_STRATEGIES = ("linear", "partial", "full", "lp-ft")
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SMALL_DATA = 500  # below this many training examples, repeat and report intervals
DEFAULT_REPEATS = 3


@dataclass
class Comparison:
    """Per-strategy rows (means with 95% intervals), learning curves, and the fits behind them."""

    model: str
    data: str
    classes: list[str]
    rows: list[dict]
    learning_curve: dict[str, list[dict]]
    repeats: int
    repeat_kind: str  # "seeds" or "folds"
    shots: int | None
    budget_s: float | None
    seconds: float
    fits: dict[str, FitResult] = field(default_factory=dict, repr=False)  # first repeat of each strategy

    def best(self) -> str | None:
        """The strategy with the highest mean validation accuracy (fewer trainable parameters on ties)."""
        done = [r for r in self.rows if r["status"] != "skipped"]
        if not done:
            return None
        return max(done, key=lambda r: (r["val_accuracy"]["mean"], -r["trainable_params"]))["strategy"]

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write ``out/comparison.json`` and each strategy's first fit as a run under ``out/runs/``."""
        out = Path(out)
        check_writable(out, "comparison", overwrite)
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "comparison")
        runs = []
        for strategy, result in self.fits.items():
            run_dir = result.save(out / "runs" / strategy, overwrite=True)
            runs.append(read_run(run_dir))
        write_json_atomic(out / "comparison.json", self.to_dict())
        notes = [f"Few-shot: {self.shots} training examples per class."] if self.shots else []
        notes.append(f"Each strategy ran {self.repeats} time(s) over {self.repeat_kind}; intervals are 95%.")
        report = ReportData(title=f"Transfer learning vs fine-tuning: {self.model}", subtitle=self.data,
                            runs=runs, comparison=self.to_dict(), recommendation=self.recommendation(), notes=notes)
        tmp = out / f".report.html.tmp-{os.getpid()}"
        tmp.write_text(render_report(report), encoding="utf-8")
        os.replace(tmp, out / "report.html")
        return out

    def recommendation(self) -> dict | None:
        """The strategy to use, preferring the cheaper one when the difference is within noise."""
        done = {r["strategy"]: r for r in self.rows if r["status"] != "skipped"}
        best = self.best()
        if best is None:
            return None
        b = done[best]
        reasons = [f"{best} has the best validation accuracy: {b['val_accuracy']['mean']:.3f} "
                   f"(95% CI {b['val_accuracy']['ci95'][0]:.3f}-{b['val_accuracy']['ci95'][1]:.3f})."]
        lin = done.get("linear")
        if lin and best != "linear":
            gain = b["val_accuracy"]["mean"] - lin["val_accuracy"]["mean"]
            cost = b["seconds"] / max(lin["seconds"], 1e-9)
            if b["val_accuracy"]["ci95"][0] <= lin["val_accuracy"]["mean"]:
                reasons.append(f"Its gain over linear ({gain:+.3f}) is within the interval, and linear is "
                               f"{cost:.1f}x cheaper to train with {lin['trainable_share']:.2%} of the parameters "
                               "trainable: prefer linear.")
                best, b = "linear", lin
            else:
                reasons.append(f"It beats linear by {gain:+.3f} beyond the interval, for {cost:.1f}x the training "
                               f"time and {b['trainable_share']:.1%} of the parameters trainable.")
        reasons.append(f"Train-minus-validation gap: {b['gap']['mean']:+.3f}.")
        return {"strategy": best, "reasons": reasons,
                "numbers": {"val_accuracy": b["val_accuracy"]["mean"], "seconds": b["seconds"],
                            "trainable_params": b["trainable_params"], "gap": b["gap"]["mean"]}}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (what comparison.json and the report hold)."""
        return {"model": self.model, "data": self.data, "recommendation": self.recommendation(), "classes": self.classes, "rows": self.rows,
                "learning_curve": self.learning_curve, "repeats": self.repeats, "repeat_kind": self.repeat_kind,
                "shots": self.shots, "budget_s": self.budget_s, "seconds": self.seconds}


def compare(data: Any, model: str | Backbone = "minilm-l6", strategies: Sequence[str] = DEFAULT_STRATEGIES, *,
            budget: str | float | None = None, seeds: int | None = None, folds: int | None = None,
            curve: Sequence[float] = CURVE_FRACTIONS, val: Any = None, test: Any = None,
            progress: bool = True, **options: Any) -> Comparison:
    """Fit each strategy on the same split; repeat over seeds or folds when data is small.

    ``budget`` ("15m", "90s", or seconds) caps the whole comparison. Fits run most informative first:
    every strategy once on all the data, then the repeats, then the learning-curve points.
    """
    start = time.perf_counter()
    if seeds and folds:
        raise ConfigError("Pass --seeds or --folds, not both.")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"Unknown strategies {unknown}; choose from: {', '.join(STRATEGIES)}.")
    clock = Budget.parse(budget)  # loading the data and the model counts too
    cfg = config_for(model, "linear", options)
    splits, backbone = prepare(data, model, cfg, val, test)
    repeats, kind = _repeats(len(splits.train), seeds, folds)
    if kind == "folds" and "val" not in splits.split.get("carved", []):
        raise ConfigError("--folds needs the validation set to be carved from the training data; "
                          "you passed --val, so use --seeds instead.")
    runs: dict[tuple[str, int, float], FitResult | dict] = {}
    for strategy, repeat, fraction in _plan(strategies, repeats, curve):
        estimate = clock.estimate(strategy, fraction)
        if not clock.allows(estimate):
            runs[(strategy, repeat, fraction)] = {"skipped": clock.skip_reason(estimate)}
            continue
        job_splits = _subsample(_resplit(splits, repeat, kind, repeats, cfg), fraction, cfg.seed + repeat)
        job_cfg = replace(cfg, strategy=strategy, seed=cfg.seed + repeat)
        strat = make_strategy(strategy, **_options_for(strategy, cfg))
        result = fit_prepared(job_splits, backbone, job_cfg, strat, progress, deadline=clock.deadline())
        clock.record(strategy, fraction, result.metrics["seconds"])
        runs[(strategy, repeat, fraction)] = result
    rows = [_row(s, [runs[(s, r, 1.0)] for r in range(repeats)]) for s in strategies]
    curves = {s: _curve_points(s, runs, repeats, curve) for s in strategies}
    for row in rows:  # say which learning-curve points the budget left out
        missed = [f"{f:.0%}" for f in sorted(curve) if f < 1.0 and isinstance(runs.get((row["strategy"], 0, f)), dict)]
        if missed and row["status"] != "skipped":
            note = f"learning-curve points skipped by the budget: {', '.join(missed)}"
            row["reason"] = "; ".join(filter(None, [row["reason"], note]))
    fits = {s: runs[(s, 0, 1.0)] for s in strategies if isinstance(runs[(s, 0, 1.0)], FitResult)}
    return Comparison(backbone.name, _describe(data), splits.classes, rows, curves, repeats, kind, cfg.shots, clock.total,
                      time.perf_counter() - start, fits)


def _describe(data: Any) -> str:
    """How to name the data in reports: its path, or what kind of object it was."""
    return str(data) if isinstance(data, (str, Path)) else f"in-memory {type(data).__name__}"


def _repeats(n_train: int, seeds: int | None, folds: int | None) -> tuple[int, str]:
    if folds:
        if folds < 2:
            raise ConfigError("--folds must be at least 2.")
        return folds, "folds"
    if seeds:
        return seeds, "seeds"
    return (DEFAULT_REPEATS if n_train < SMALL_DATA else 1), "seeds"


def _plan(strategies: Sequence[str], repeats: int, curve: Sequence[float]) -> list[tuple[str, int, float]]:
    """Most informative first: each strategy once on all data, then repeats, then curve points."""
    order = sorted(strategies, key=lambda s: s != "linear")  # the cheap baseline first
    plan = [(s, 0, 1.0) for s in order]
    plan += [(s, r, 1.0) for r in range(1, repeats) for s in order]
    plan += [(s, 0, f) for f in sorted(curve) if f < 1.0 for s in order]
    return plan


def _options_for(strategy: str, cfg: FitConfig) -> dict:
    """The config's strategy options that this strategy takes (e.g. no ``unfreeze`` for linear)."""
    known = {f.name for f in fields(STRATEGIES[strategy])}
    return {k: v for k, v in cfg.strategy_options().items() if k in known}


def _resplit(splits: DataSplits, repeat: int, kind: str, repeats: int, cfg: FitConfig) -> DataSplits:
    """Repeat 0 is the saved split; later repeats re-carve validation (new seed, or the next fold)."""
    if repeat == 0 or "val" not in splits.split.get("carved", []):
        return splits
    pool = _concat(splits.train, splits.val)
    if kind == "folds":
        folder = StratifiedKFold(n_splits=repeats, shuffle=True, random_state=cfg.seed)
        train_idx, val_idx = list(folder.split(np.zeros(len(pool)), pool.labels))[repeat]
    else:
        fraction = len(splits.val) / len(pool)
        train_idx, val_idx, _ = carve(pool.labels, fraction, None, cfg.seed + repeat)
    return replace(splits, train=pool.subset(train_idx), val=pool.subset(val_idx))


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(a.items + b.items, a.labels + b.labels, a.modality, a.origins + b.origins)


def _subsample(splits: DataSplits, fraction: float, seed: int) -> DataSplits:
    """``fraction`` of the training data, stratified, at least one example per class."""
    if fraction >= 1.0:
        return splits
    labels = splits.train.labels
    counts = {c: labels.count(c) for c in set(labels)}
    keep: list[int] = []
    for c, n in sorted(counts.items()):
        members = [i for i, y in enumerate(labels) if y == c]
        rng = np.random.default_rng(seed)
        keep += [int(i) for i in rng.permutation(members)[:max(1, round(fraction * n))]]
    return replace(splits, train=splits.train.subset(sorted(keep)))


def mean_ci(values: Sequence[float], single_ci: Sequence[float] | None = None) -> dict:
    """Mean and 95% t-interval over repeats; one value falls back to its own (Wilson) interval."""
    values = [float(v) for v in values]
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "ci95": list(single_ci) if single_ci else [mean, mean], "n": len(values)}
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return {"mean": mean, "ci95": [max(0.0, mean - half), min(1.0, mean + half)], "n": len(values)}


def _row(strategy: str, results: list) -> dict:
    done = [r for r in results if isinstance(r, FitResult)]
    if not done:
        reason = next((r["skipped"] for r in results if isinstance(r, dict)), "not run")
        return {"strategy": strategy, "status": "skipped", "reason": reason, "trainable_params": 0,
                "val_accuracy": {"mean": float("nan"), "ci95": [float("nan")] * 2, "n": 0}}
    m0 = done[0].metrics
    stopped = [r for r in done if r.info.get("stopped") == "budget"]
    test = [r.metrics["test"] for r in done if "test" in r.metrics]
    skipped = len(results) - len(done)
    reasons = (["stopped early by the time budget"] if stopped else []) + (
        [f"{skipped} of {len(results)} repeats skipped: {results[-1]['skipped']}"] if skipped else [])
    return {
        "strategy": strategy,
        "status": "stopped" if stopped or skipped else "ok",
        "reason": "; ".join(reasons),
        "repeats_done": len(done),
        "trainable_params": m0["trainable_params"], "total_params": m0["total_params"],
        "trainable_share": m0["trainable_share"],
        "seconds": float(np.mean([r.metrics["seconds"] for r in done])),
        "peak_rss_mb": max(r.metrics["peak_rss_mb"] for r in done),
        "val_accuracy": mean_ci([r.metrics["val"]["accuracy"] for r in done], m0["val"]["accuracy_ci95"]),
        "val_macro_f1": mean_ci([r.metrics["val"]["macro_f1"] for r in done]),
        "test_accuracy": mean_ci([t["accuracy"] for t in test], test[0]["accuracy_ci95"]) if test else None,
        "test_macro_f1": mean_ci([t["macro_f1"] for t in test]) if test else None,
        "gap": mean_ci([r.metrics["overfit_gap"] for r in done]),
        "gap_by_epoch": [{"epoch": h["epoch"], "gap": h["train_accuracy"] - h["val_accuracy"]}
                         for h in done[0].history if "train_accuracy" in h],
    }


def _curve_points(strategy: str, runs: dict, repeats: int, curve: Sequence[float]) -> list[dict]:
    points = []
    for fraction in sorted(curve):
        reps = range(repeats) if fraction >= 1.0 else range(1)
        done = [runs[(strategy, r, fraction)] for r in reps if isinstance(runs.get((strategy, r, fraction)), FitResult)]
        if done:
            points.append({"fraction": fraction, "n": done[0].metrics["train"]["n"],
                           "accuracy": mean_ci([d.metrics["val"]["accuracy"] for d in done])})
    return points
