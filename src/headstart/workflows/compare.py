"""compare: every strategy on the same data, split and backbone, measured side by side.

Transfer learning and fine-tuning differ in training scope, data requirements, computational cost,
adaptability and risk of overfitting. ``compare`` turns each into a number on the user's data:
trainable parameters, a learning curve, wall time and peak memory, validation/test scores with
intervals, and the train-minus-validation gap. Small data sets are repeated over seeds or folds.
A time budget is respected: a fit that would not finish in it is skipped or stopped, and says so.

Scores are the task's (``headstart.tasks``): each row holds ``val_<metric>`` and ``test_<metric>`` for the
task's main metric (accuracy, micro-F1, R²), a second one (macro-F1, mAP, MAE) and the select metric; the
learning curves and the gap use the main metric, the recommendation the select metric (``--select-metric``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from headstart.workflows.advise import measure_step_seconds
from headstart.backbones import Backbone
from headstart.workflows.budget import FORWARD_PER_STEP, Budget, CostModel
from headstart.core.config import FitConfig, split_options
from headstart.data import DataSplits, Dataset
from headstart.data.split import carve, strata
from headstart.core.errors import ConfigError
from headstart.core.fileio import write_json, write_text
from headstart.tasks.kinds import METRIC_NAMES
from headstart.tasks.kinds import kind as task_kind
from headstart.core.metrics import clearly_above, metric_range
from headstart.report import ReportData, read_run, render_report
from headstart.runs.outdir import check_writable
from headstart.core.fileio import write_marker
from headstart.workflows.pipeline import FitResult, check_folders, config_for, fit_prepared, for_strategy, prepare
from headstart.workflows.runtime import Runtime
from headstart.strategies import STRATEGIES, make_strategy
from headstart.strategies.declared import COMPARED
from headstart.strategies.options import check_option_names, option_values
from headstart.tasks.base import check_select

DEFAULT_STRATEGIES = COMPARED
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SMALL_DATA = 500  # below this many training examples, repeat and report intervals
SMALL_VAL = 100  # or below this many validation items: one split's accuracy is too noisy to rank on
DEFAULT_REPEATS = 3
SAVE_SECONDS = 1.0  # kept back from a budget per strategy: saving its run and plotting it in the report
OVERFIT_GAP = 0.1  # a fine-tune that lost with this train-minus-validation gap, having fit its training data
# at least as well as the probe scores on validation, is called overfitting


@dataclass
class Job:
    """One fit of the plan: a strategy, on one repeat's split, with a fraction of its training data."""

    strategy: str
    repeat: int
    fraction: float
    planned: bool = True  # the up-front plan expected it to fit in the budget
    planned_estimate: float | None = None  # seconds, estimated before anything ran
    estimate: float | None = None  # seconds, estimated at its turn (after the fits before it were measured)
    status: str = "planned"  # then "done", "stopped" (by the budget) or "skipped"
    reason: str = ""
    seconds: float | None = None
    epochs: int | None = None  # epochs trained (fine-tuning)
    result: FitResult | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, int, float]:
        return self.strategy, self.repeat, self.fraction

    def to_dict(self) -> dict[str, Any]:
        """What comparison.json records of it."""
        return {"strategy": self.strategy, "repeat": self.repeat, "fraction": self.fraction, "planned": self.planned,
                "planned_estimate_s": self.planned_estimate, "estimate_s": self.estimate, "status": self.status,
                "reason": self.reason, "seconds": self.seconds, "epochs": self.epochs}


@dataclass
class Comparison:
    """Per-strategy rows (means with 95% intervals), learning curves, the plan, and the fits behind them."""

    model: str
    data: str
    classes: list[str]
    rows: list[dict]
    learning_curve: dict[str, list[dict]]
    repeats: int  # planned per strategy; each row's ``repeats_done`` says how many ran
    repeat_kind: str  # "seeds" or "folds"
    shots: int | None
    budget_s: float | None
    seconds: float
    plan: list[dict] = field(default_factory=list)  # every fit considered, in the order it was considered
    fits: dict[str, FitResult] = field(default_factory=dict, repr=False)  # first repeat of each strategy
    task: str = "single-label"
    main_metric: str = "accuracy"  # the learning curves, the gap and the rows' first columns
    select_metric: str = "accuracy"  # what the recommendation optimises (``--select-metric``)

    @property
    def metrics(self) -> list[str]:
        """The metrics each row holds (``val_<name>``, ``test_<name>``): main, second, select."""
        return row_metrics(self.task, self.main_metric, self.select_metric)

    def best(self) -> str | None:
        """The strategy with the highest mean validation select metric (fewer trainable parameters on ties)."""
        done = [r for r in self.rows if r["status"] != "skipped"]
        if not done:
            return None
        key = f"val_{self.select_metric}"
        return max(done, key=lambda r: (r[key]["mean"], -r["trainable_params"]))["strategy"]

    def ran(self) -> str:
        """What ran, per strategy: "linear: 3 seeds, full: 1 of 3 seeds, lora: skipped"."""
        return ", ".join(f"{r['strategy']}: " + (
            "skipped" if r["status"] == "skipped" else repeat_count(r["repeats_done"], self.repeats, self.repeat_kind))
            for r in self.rows)

    def warnings(self) -> list[str]:
        """Fine-tuned strategies that ended below the frozen probe beyond the interval, in words."""
        return [r["warning"] for r in self.rows if r.get("warning")]

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
        write_json(out / "comparison.json", self.to_dict())
        notes = [f"Few-shot: {self.shots} training examples per class."] if self.shots else []
        report = ReportData(title=f"Transfer learning vs fine-tuning: {self.model}", subtitle=self.data,
                            runs=runs, comparison=self.to_dict(), recommendation=self.recommendation(), notes=notes)
        write_text(out / "report.html", render_report(report))
        return out

    def recommendation(self) -> dict | None:
        """The strategy to use, preferring the cheaper one when the difference is within noise."""
        done = {r["strategy"]: r for r in self.rows if r["status"] != "skipped"}
        best = self.best()
        if best is None:
            return None
        b, key, said = done[best], f"val_{self.select_metric}", METRIC_NAMES[self.select_metric]
        reasons = [f"{best} has the best validation {said}: {b[key]['mean']:.3f} "
                   f"(95% CI {b[key]['ci95'][0]:.3f}-{b[key]['ci95'][1]:.3f})."]
        lin = done.get("linear")
        if lin and best != "linear":
            gain = b[key]["mean"] - lin[key]["mean"]
            cost = b["seconds"] / max(lin["seconds"], 1e-9)
            if b[key]["ci95"][0] <= lin[key]["mean"]:
                reasons.append(f"Its gain over linear ({gain:+.3f}) is within the interval, and linear is "
                               f"{cost:.1f}x cheaper to train with {lin['trainable_share']:.2%} of the parameters "
                               "trainable: prefer linear.")
                best, b = "linear", lin
            else:
                reasons.append(f"It beats linear by {gain:+.3f} beyond the interval, for {cost:.1f}x the training "
                               f"time and {b['trainable_share']:.1%} of the parameters trainable.")
        gap = "" if self.main_metric == "accuracy" else f" ({METRIC_NAMES[self.main_metric]})"
        reasons.append(f"Train-minus-validation gap{gap}: {b['gap']['mean']:+.3f}.")
        return {"strategy": best, "metric": self.select_metric, "reasons": reasons,
                "numbers": {key: b[key]["mean"], "seconds": b["seconds"],
                            "trainable_params": b["trainable_params"], "gap": b["gap"]["mean"]}}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (what comparison.json and the report hold)."""
        return {"model": self.model, "data": self.data, "recommendation": self.recommendation(),
                "task": self.task, "main_metric": self.main_metric, "select_metric": self.select_metric,
                "metrics": self.metrics, "classes": self.classes, "rows": self.rows,
                "learning_curve": self.learning_curve,
                "repeats_planned": self.repeats, "repeat_kind": self.repeat_kind, "ran": self.ran(),
                "warnings": self.warnings(), "shots": self.shots, "budget_s": self.budget_s,
                "seconds": self.seconds, "plan": self.plan}


def compare(data: Any, model: str | Backbone = "minilm-l6", strategies: Sequence[str] = DEFAULT_STRATEGIES, *,
            budget: str | float | None = None, seeds: int | None = None, folds: int | None = None,
            curve: Sequence[float] = CURVE_FRACTIONS, val: Any = None, test: Any = None,
            progress: bool = True, **options: Any) -> Comparison:
    """Fit each strategy on the same split; repeat over seeds or folds when data is small.

    ``budget`` ("15m", "90s", or seconds) caps the whole comparison, loading and saving included. Cheap
    fits come first: linear, its repeats and its learning-curve points (cached features). Then one
    training step is measured, and the fine-tuning strategies are planned by estimated cost: each once,
    then their repeats, then their curve points. A fit runs only when its estimate fits in the time
    left, and a running fine-tune stops training at a deadline that leaves time to score it. ``task``,
    ``label_sep`` and ``select_metric`` (in ``options``) say what the labels are and what to recommend on.

    The budget counts from this call (the CLI's interpreter start and imports come before it). It can be
    overrun by the batch under way at a deadline and by misestimating the scoring after it (a few seconds;
    tests allow 15 s on a shared 2-core machine), and by the first linear fit, which runs whenever any
    time is left: its feature extraction cannot be stopped part-way and every other fit needs it.
    """
    start = time.perf_counter()
    if seeds and folds:
        raise ConfigError("Pass --seeds or --folds, not both.")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"Unknown strategies {unknown}; choose from: {', '.join(STRATEGIES)}.")
    clock = Budget.parse(budget)  # loading the data and the model counts too
    shared, own = split_options(options)
    check_option_names(own, {s: STRATEGIES[s] for s in strategies}, f"compare of {', '.join(strategies)}",
                       STRATEGIES)
    cfg = config_for(model, "linear", shared)
    check_folders(cfg, (data, val, test))
    splits, backbone = prepare(data, model, cfg, val, test)
    task = splits.task
    main, select = check_select(task, "auto"), check_select(task, cfg.select_metric)
    runtime = Runtime.from_config(cfg, progress)
    repeats, kind = _repeats(len(splits.train), len(splits.val), seeds, folds)
    if kind == "folds" and "val" not in splits.split.get("carved", []):
        raise ConfigError("--folds needs the validation set to be carved from the training data; "
                          "you passed --val, so use --seeds instead.")
    strats = {s: make_strategy(s, **for_strategy(cfg, s, own).options) for s in strategies}
    if clock.total is not None:
        clock.reserve = SAVE_SECONDS * len(strategies)
    run = partial(_run, splits=splits, backbone=backbone, cfg=cfg, strats=strats, repeats=(kind, repeats),
                  clock=clock, runtime=runtime)
    jobs = _run_plan(strategies, repeats, curve, clock, run,
                     partial(_measure_costs, backbone, splits, cfg, strats, runtime.device))
    by_key = {job.key: job for job in jobs}
    metrics = row_metrics(task, main, select)
    rows = _rows(strategies, by_key, repeats, kind, curve, cfg.epochs, metrics)
    curves = {s: _curve_points(s, by_key, repeats, curve, main) for s in strategies}
    fits = {}  # the first repeat of each strategy that ran
    for s in strategies:
        ran = [by_key[(s, r, 1.0)].result for r in range(repeats) if by_key[(s, r, 1.0)].result is not None]
        if ran:
            fits[s] = ran[0]
    return Comparison(backbone.name, _describe(data), splits.classes, rows, curves, repeats, kind, cfg.shots,
                      clock.total, time.perf_counter() - start, [j.to_dict() for j in jobs], fits, task, main, select)


def row_metrics(task: str, main: str, select: str) -> list[str]:
    """The metrics a comparison row holds, in order: the task's main one, a second one, the select one."""
    return list(dict.fromkeys((main, task_kind(task).second_metric, select)))


def _run_plan(strategies: Sequence[str], repeats: int, curve: Sequence[float], clock: Budget, run: Callable,
              measure: Callable[[], CostModel | None]) -> list[Job]:
    """Linear's fits first (cached features, cheap), then the fine-tuning fits, planned on a measured step."""
    jobs = _plan([s for s in strategies if s == "linear"], repeats, curve)
    _forecast(jobs, clock, None)
    _run_in_turn(jobs, clock, None, run)
    tuned = [s for s in strategies if s != "linear"]
    costs = measure() if tuned and clock.total is not None and clock.left() > 0 else None
    tuned_jobs = _plan(tuned, repeats, curve, costs)
    _forecast(tuned_jobs, clock, costs)
    _run_in_turn(tuned_jobs, clock, costs, run)
    return jobs + tuned_jobs


def _rows(strategies: Sequence[str], jobs: dict[tuple, Job], repeats: int, kind: str, curve: Sequence[float],
          epochs: int, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> list[dict]:
    """One row per strategy, naming the learning-curve points the budget left out and any loss to the probe;
    ``metrics`` are those the rows hold (the first is the task's main one)."""
    rows = [_row(s, [jobs[(s, r, 1.0)] for r in range(repeats)], kind, epochs, metrics) for s in strategies]
    for row in rows:
        missed = [jobs[(row["strategy"], 0, f)] for f in sorted(curve) if f < 1.0]
        missed = [j for j in missed if j.status == "skipped"]
        if missed and row["status"] != "skipped":
            note = (f"learning-curve points skipped: {', '.join(f'{j.fraction:.0%}' for j in missed)} "
                    f"({missed[0].reason})")
            row["reason"] = "; ".join(filter(None, [row["reason"], note]))
    _lost_to_probe(rows, metrics[0])
    return rows


def _describe(data: Any) -> str:
    """How to name the data in reports: its path, or what kind of object it was."""
    return str(data) if isinstance(data, (str, Path)) else f"in-memory {type(data).__name__}"


def _repeats(n_train: int, n_val: int, seeds: int | None, folds: int | None) -> tuple[int, str]:
    """Repeats planned per strategy: as asked, else 3 seeds on small data (one validation split is noise)."""
    if folds:
        if folds < 2:
            raise ConfigError("--folds must be at least 2.")
        return folds, "folds"
    if seeds:
        return seeds, "seeds"
    return (DEFAULT_REPEATS if n_train < SMALL_DATA or n_val < SMALL_VAL else 1), "seeds"


def _plan(strategies: Sequence[str], repeats: int, curve: Sequence[float],
          costs: CostModel | None = None) -> list[Job]:
    """Cheapest first (by ``costs``, when given): each strategy once on all the data, then its repeats, then
    its learning-curve points. ``compare`` plans linear (cached features) first, then the fine-tuning."""
    points = [f for f in sorted(curve) if f < 1.0]
    order = sorted(strategies, key=costs.fit) if costs is not None else list(strategies)
    jobs = [Job(s, 0, 1.0) for s in order]
    jobs += [Job(s, r, 1.0) for r in range(1, repeats) for s in order]
    return jobs + [Job(s, 0, f) for f in points for s in order]


def _measure_costs(backbone: Backbone, splits: DataSplits, cfg: FitConfig, strats: dict,
                   device: torch.device) -> CostModel:
    """A cost model from one measured training step per depth the fine-tuning strategies train."""
    depths = {s: getattr(strat, "unfreeze", None) for s, strat in strats.items() if s != "linear"}  # None: all
    names = {d: "all" if d is None else f"last {d}" for d in [*depths.values(), None]}
    step = measure_step_seconds(backbone, splits, cfg.batch(), device,
                                {name: d for d, name in names.items()})
    return CostModel(len(splits.train), len(splits.val), len(splits.test or []), cfg.batch(), cfg.epochs,
                     {s: step[names[d]] for s, d in depths.items()},
                     forward=step["all"] * FORWARD_PER_STEP / cfg.batch())


def _estimate(job: Job, clock: Budget, costs: CostModel | None, cached: bool | None = None) -> float | None:
    """Seconds ``job`` should take (None: unknown). Linear: its last fit scaled to the data (the first is
    unknown: it runs when any time is left); fine-tuning: the cost model, plus extraction for lp-ft's probe
    when no linear fit has cached the features."""
    if job.strategy == "linear":
        return clock.estimate("linear", job.fraction)
    if costs is None:
        return None
    cached = "linear" in clock.measured if cached is None else cached
    return costs.fit(job.strategy, job.fraction, extraction=job.strategy == "lp-ft" and not cached)


def _forecast(jobs: list[Job], clock: Budget, costs: CostModel | None) -> None:
    """The plan before these jobs run: which should fit in the budget, in order, on first estimates.

    Each job is decided again at its turn, on estimates corrected by the fits measured before it.
    """
    left = clock.left()
    for job in jobs:
        job.planned_estimate = _estimate(job, clock, costs)
        job.planned = left > 0 and (job.planned_estimate or 0.0) <= left
        if job.planned:
            left -= job.planned_estimate or 0.0


def _run_in_turn(jobs: list[Job], clock: Budget, costs: CostModel | None, run: Callable) -> None:
    """Each job in order, when its estimate (corrected by the fits measured so far) fits in the time left."""
    for job in jobs:
        job.estimate = _estimate(job, clock, costs)
        if clock.allows(job.estimate):
            run(job, costs=costs)
        else:
            job.status, job.reason = "skipped", clock.skip_reason(job.estimate)


def _run(job: Job, *, splits: DataSplits, backbone: Backbone, cfg: FitConfig, strats: dict, repeats: tuple[str, int],
         clock: Budget, costs: CostModel | None, runtime: Runtime) -> None:
    """Fit ``job`` (a fine-tune stops at the deadline that leaves time to score it); record what it cost."""
    kind, n = repeats
    job_splits = _subsample(_resplit(splits, job.repeat, kind, n, cfg), job.fraction, cfg.seed + job.repeat)
    job_cfg = replace(cfg, strategy=job.strategy, seed=cfg.seed + job.repeat,
                      options=option_values(strats[job.strategy]))
    finish = costs.finish(job.fraction) if costs is not None and job.strategy != "linear" else 0.0
    result = fit_prepared(job_splits, backbone, job_cfg, strats[job.strategy], runtime.until(clock.deadline(finish)))
    epochs = [h["epoch"] for h in result.history if "epoch" in h]
    job.result, job.seconds, job.epochs = result, result.metrics["seconds"], max(epochs, default=None)
    job.status = "stopped" if result.info.get("stopped") == "budget" else "done"
    clock.record(job.strategy, job.fraction, job.seconds)
    if costs is not None and job.strategy != "linear":
        costs.calibrate(job.strategy, job.fraction, job.epochs or cfg.epochs, job.seconds)


def _resplit(splits: DataSplits, repeat: int, kind: str, repeats: int, cfg: FitConfig) -> DataSplits:
    """Repeat 0 is the saved split; later repeats re-carve validation (new seed, or the next fold), stratified
    as the split was (``data.split.strata``: class, rarest label, or target quantile bin)."""
    if repeat == 0 or "val" not in splits.split.get("carved", []):
        return splits
    pool = _concat(splits.train, splits.val)
    groups = strata(splits.task, pool.labels)
    if kind == "folds":
        counts = {g: groups.count(g) for g in set(groups)}  # a stratum smaller than the folds joins the rest
        groups = [g if counts[g] >= repeats else "(rare)" for g in groups]
        folder = StratifiedKFold(n_splits=repeats, shuffle=True, random_state=cfg.seed)
        train_idx, val_idx = list(folder.split(np.zeros(len(pool)), groups))[repeat]
    else:
        fraction = len(splits.val) / len(pool)
        train_idx, val_idx, _ = carve(tuple(groups), fraction, None, cfg.seed + repeat)
    return replace(splits, train=pool.subset(train_idx), val=pool.subset(val_idx))


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(a.items + b.items, a.labels + b.labels, a.modality, a.origins + b.origins)


def _subsample(splits: DataSplits, fraction: float, seed: int) -> DataSplits:
    """``fraction`` of the training data, stratified (``data.split.strata``), at least one example per stratum."""
    if fraction >= 1.0:
        return splits
    labels = strata(splits.task, splits.train.labels)
    counts = {c: labels.count(c) for c in set(labels)}
    keep: list[int] = []
    for c, n in sorted(counts.items()):
        members = [i for i, y in enumerate(labels) if y == c]
        rng = np.random.default_rng(seed)
        keep += [int(i) for i in rng.permutation(members)[:max(1, round(fraction * n))]]
    return replace(splits, train=splits.train.subset(sorted(keep)))


def mean_ci(values: Sequence[float], single_ci: Sequence[float] | None = None,
            bounds: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Mean and 95% t-interval over repeats, clipped to the metric's ``bounds``; one value falls back to its
    own interval (Wilson, bootstrap) when it has one."""
    values = [float(v) for v in values]
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "ci95": list(single_ci) if single_ci else [mean, mean], "n": len(values)}
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return {"mean": mean, "ci95": [max(bounds[0], mean - half), min(bounds[1], mean + half)], "n": len(values)}


def _stat(metric: str, scores: list[dict]) -> dict:
    """``metric``'s mean and interval over the repeats' scores of one split (``metrics.json``'s ``val``...)."""
    return mean_ci([m[metric] for m in scores], scores[0].get(f"{metric}_ci95"), metric_range(metric))


def repeat_count(done: int, planned: int, kind: str) -> str:
    """"3 seeds", "1 seed", "1 of 3 seeds": how many of the planned repeats ran."""
    unit = kind if planned != 1 else kind.rstrip("s")
    return f"{done} {unit}" if done == planned else f"{done} of {planned} {unit}"


def _row(strategy: str, jobs: list[Job], kind: str, epochs: int,
         metrics: Sequence[str] = ("accuracy", "macro_f1")) -> dict:
    """One strategy's row from its full-data fits (one per repeat), with a status that says what happened:
    ``val_<metric>`` and ``test_<metric>`` of each of ``metrics`` (the first is the task's main one, of the gap)."""
    ran = [j for j in jobs if j.result is not None]
    if not ran:
        reason = next((j.reason for j in jobs if j.reason), "not run")
        return {"strategy": strategy, "status": "skipped", "status_text": f"skipped ({reason})", "reason": reason,
                "repeats_done": 0, "repeats_planned": len(jobs), "trainable_params": 0,
                **{f"val_{m}": {"mean": float("nan"), "ci95": [float("nan")] * 2, "n": 0} for m in metrics}}
    done = [j.result for j in ran]
    m0 = done[0].metrics
    stopped = [j for j in ran if j.status == "stopped"]
    skipped = [j for j in jobs if j.status == "skipped"]
    status_text = "done"
    if stopped:
        status_text = f"stopped at epoch {stopped[0].epochs} of {epochs} (budget)"
        if len(ran) > 1:
            status_text = f"{repeat_count(len(stopped), len(ran), kind)} {status_text}"
    reasons = [f"{repeat_count(len(skipped), len(jobs), kind)} skipped: {skipped[0].reason}"] if skipped else []
    test = [r.metrics["test"] for r in done if "test" in r.metrics]
    main = metrics[0]
    return {
        "strategy": strategy,
        "status": "stopped" if stopped else "done",
        "status_text": status_text,
        "reason": "; ".join(reasons),
        "repeats_done": len(ran), "repeats_planned": len(jobs),
        "trainable_params": m0["trainable_params"], "total_params": m0["total_params"],
        "trainable_share": m0["trainable_share"],
        "seconds": float(np.mean([r.metrics["seconds"] for r in done])),
        "peak_rss_mb": max(r.metrics["peak_rss_mb"] for r in done),
        **{f"val_{m}": _stat(m, [r.metrics["val"] for r in done]) for m in metrics},
        **{f"test_{m}": _stat(m, test) if test else None for m in metrics},
        "gap": mean_ci([r.metrics["overfit_gap"] for r in done], bounds=(-np.inf, np.inf)),
        "gap_by_epoch": [{"epoch": h["epoch"], "gap": h[f"train_{main}"] - h[f"val_{main}"]}
                         for h in done[0].history if f"train_{main}" in h and f"val_{main}" in h],
    }


def _lost_to_probe(rows: list[dict], metric: str = "accuracy") -> None:
    """Add a ``warning`` to each fine-tuned row whose validation ``metric`` (the task's main one, as the gap)
    ends below the linear probe's by more than its 95% interval (its upper bound is below the probe's mean),
    saying by how much and why."""
    probe = next((r for r in rows if r["strategy"] == "linear" and r["status"] != "skipped"), None)
    if probe is None:
        return
    key = f"val_{metric}"
    said = "" if metric == "accuracy" else f" {METRIC_NAMES[metric]}"
    base = probe[key]["mean"]
    for row in rows:
        acc = row[key]
        if row["strategy"] == "linear" or row["status"] == "skipped" or not clearly_above(base, acc["ci95"][1]):
            continue
        gap = row["gap"]["mean"]
        train = acc["mean"] + gap
        why = (f"likely overfitting (train-val gap {gap:+.2f})" if gap >= OVERFIT_GAP and train >= base else
               f"not overfitting: it reached only {train:.3f} on its own training data (too few steps or a poor "
               "learning rate)")
        if row["status"] == "stopped":
            why += f"; it was {row['status_text']}"
        row["warning"] = (f"fine-tuning lost to the frozen probe: {row['strategy']} ends "
                          f"{100 * (base - acc['mean']):.1f} points below linear on validation{said} "
                          f"({acc['mean']:.3f} vs {base:.3f}, beyond its 95% interval); {why}.")


def _curve_points(strategy: str, jobs: dict[tuple, Job], repeats: int, curve: Sequence[float],
                  metric: str = "accuracy") -> list[dict]:
    """The learning curve: per fraction of the training data, the validation ``metric`` (the task's main one)."""
    points = []
    for fraction in sorted(curve):
        reps = range(repeats) if fraction >= 1.0 else range(1)
        done = [jobs[(strategy, r, fraction)].result for r in reps if (strategy, r, fraction) in jobs]
        done = [d for d in done if d is not None]
        if done:
            points.append({"fraction": fraction, "n": done[0].metrics["train"]["n"],
                           metric: mean_ci([d.metrics["val"][metric] for d in done], bounds=metric_range(metric))})
    return points
