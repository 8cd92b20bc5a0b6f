"""The fit pipeline below the public API: load and check, fit a strategy, score, cost, record, save.

``api.fit`` and ``compare``, ``advise``, ``audit`` and ``auto`` all walk it: ``prepare`` loads the data and the
backbone, ``fit_prepared`` fits one strategy on them under a Runtime (see headstart.workflows.runtime) and returns a
FitResult with its metrics, costs and the config that ran.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from headstart.training import checkpoints, distributed
from headstart.backbones import Backbone, ImagePreprocessing, load_backbone
from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.core.config import FitConfig
from headstart.data import DataSplits, Skipped, load_data
from headstart.data.checks import cheap_checks
from headstart.data.dataset import modality_article, modality_plural
from headstart.data.audio import choose_clip_seconds
from headstart.data.resolution import MIN_SIZE, choose_image_size, native_size
from headstart.data.shots import keep_shots
from headstart.training.devices import peak_memory_mb, reset_peak_memory
from headstart.training.engine import diverged, predict_logits
from headstart.core.errors import ConfigError, DataError, Diverged, RunError, brief
from headstart.core.metrics import clearly_above
from headstart.report.notebook import fit_result_html, fit_result_repr
from headstart.report.previews import GALLERY_SIZE, gallery
from headstart.runs.outdir import guard_folders
from headstart.core.progress import spinner
from headstart.runs.folder import Predictor, check_out, item_columns, save_run
from headstart.workflows.runtime import Runtime
from headstart.strategies import STRATEGIES, FitContext, Strategy, StrategyResult, make_strategy
from headstart.strategies.options import option_fields, option_values
from headstart.tasks.kinds import kind

# Options a strategy may leave to the fit (None), recorded as chosen: option -> its key in the strategy's info.
RESOLVED_OPTIONS = {"unfreeze": "unfrozen_groups", "lr": "lr", "head_lr": "head_lr", "lr_decay": "lr_decay"}


@dataclass
class FitResult:
    """What a fit produced: metrics, history, the trained predictor, and where the run was saved."""

    strategy: str
    model: str
    classes: list[str]
    metrics: dict
    history: list[dict]
    info: dict
    predictor: Predictor
    config: FitConfig
    split: dict
    skipped: list[Skipped] = field(default_factory=list)
    run_dir: Path | None = None
    data: dict | None = None  # where the data came from (checkpoints.data_record), saved in config.json

    def __post_init__(self) -> None:
        if not self.predictor.columns:  # predict(df) reads the columns this fit read
            self.predictor.columns = item_columns(self.config.to_dict())

    def __repr__(self) -> str:
        return fit_result_repr(self)

    def _repr_html_(self) -> str:
        return fit_result_html(self)

    def predict(self, inputs: Any, **options) -> list[dict]:
        """Labels and class probabilities for new inputs (files, a folder, a table, a datasets.Dataset, texts).

        A table or DataFrame is read by this fit's column names when it has them; on a text model a string
        that names no file is one text to classify.
        """
        return self.predictor.predict(inputs, **options)

    def save(self, out: str | Path, overwrite: bool = False, progress: bool = False) -> Path:
        """Write the run directory (config, split, history, metrics, model) and its report.html (a spinner on a
        terminal with ``progress``).

        Under a multi-process launch only the main process writes; the others just note where it goes.
        """
        if not distributed.is_main():
            self.run_dir = Path(out)
            return self.run_dir
        config = {"config": self.config.to_dict(), **({"data": self.data} if self.data is not None else {})}
        records = {"config.json": config, "split.json": self.split, "metrics.json": self.metrics}
        with spinner(f"saving the run to {out}", progress):
            self.run_dir = save_run(Path(out), self.predictor, records, self.history, overwrite)
        return self.run_dir


def config_for(model: str | Backbone, strategy: Any, options: dict) -> FitConfig:
    """The FitConfig of a call, with the model and strategy named."""
    name = model.name if isinstance(model, Backbone) else model
    return FitConfig.of(**options, model=name, strategy=strategy if isinstance(strategy, str) else strategy.name)


def check_folders(cfg: FitConfig, inputs: Iterable[Any]) -> None:
    """RunError, before any work, when the feature cache (``cache_dir``, else ``$HEADSTART_CACHE``) or the trackers'
    ``track_dir`` is or lies inside a data folder in ``inputs`` (see headstart.runs.outdir.guard_folders)."""
    env = None if cfg.cache_dir else os.environ.get("HEADSTART_CACHE")
    guard_folders({"cache_dir": cfg.cache_dir, "HEADSTART_CACHE": env, "track_dir": cfg.track_dir}, inputs)


def for_strategy(cfg: FitConfig, strategy: str, options: dict[str, Any] | None = None) -> FitConfig:
    """``cfg`` for one of the strategies a call fits (``auto``'s candidates, ``compare``'s rows), with the
    options (default: ``cfg``'s) that this strategy takes."""
    taken = option_fields(STRATEGIES[strategy])
    given = cfg.options if options is None else options
    return replace(cfg, strategy=strategy, options={k: v for k, v in given.items() if k in taken})


def fit_data(data: Any, model: str | Backbone, strat: Strategy, cfg: FitConfig, runtime: Runtime, val: Any = None,
             test: Any = None, out: Path | None = None, overwrite: bool = False) -> FitResult:
    """Load ``data`` and ``model``, say what was chosen and what looks wrong, fit ``strat``; with ``out``,
    fine-tuning keeps its state there after every epoch and the run is saved there."""
    splits, backbone = prepare(data, model, cfg, val, test, frozen=getattr(strat, "frozen_backbone", False))
    chose_size = cfg.image_size is None
    cfg = replace(cfg, **input_size(backbone))  # recorded as chosen (from the data when not given)
    if runtime.progress and isinstance(backbone.preprocessing, ImagePreprocessing) and chose_size:
        print(f"note: {image_size_note(splits, backbone)}", file=sys.stderr)
    if runtime.progress and (not kind(splits.task).one_per_item or "numbers" in task_reason(splits)):
        print(f"note: {task_note(splits)}", file=sys.stderr)  # the usual case, one class per item, goes unsaid
    if distributed.is_main():  # unlike progress and notes, warnings print whatever --quiet (progress=False) says
        for warning in cheap_checks(splits, fine_tuning=not getattr(strat, "frozen_backbone", False)):
            print(f"warning: {warning}", file=sys.stderr)
    if out is None:
        return fit_prepared(splits, backbone, cfg, strat, runtime)
    record = checkpoints.data_record(data, val, test)
    return _fit_checkpointed(out, splits, backbone, cfg, strat, runtime, record, overwrite)


def _fit_checkpointed(run: Path, splits: DataSplits, backbone: Backbone, cfg: FitConfig, strat: Strategy,
                      runtime: Runtime, record: dict, overwrite: bool) -> FitResult:
    """Fit and save into ``run``, which holds this fit's config, split and per-epoch state meanwhile.

    A failure before any epoch was saved (or of a fit with no epochs, like ``linear``), or a diverged one, removes
    what ``start_run`` created, so only resumable runs are left behind.
    """
    created = []
    if distributed.is_main():
        created = checkpoints.start_run(run, cfg.to_dict(), record, splits.split, overwrite)
    distributed.barrier()  # no process looks for a checkpoint before the main one has (re)started the run
    try:
        fitted = fit_prepared(splits, backbone, cfg, strat, runtime.checkpointed(checkpoints.checkpoint_dir(run)))
        fitted.data = record
        fitted.save(run, overwrite=True, progress=runtime.progress)  # run holds this fit's own unfinished records, which the save replaces
    except BaseException as exc:  # a diverged fit would diverge again if resumed: its epochs go too
        if distributed.is_main() and checkpoints.is_unfinished(run) and (
                checkpoints.saved_epoch(run) == 0 or isinstance(exc, Diverged)):
            checkpoints.discard(created)
        raise
    distributed.barrier()  # every process returns once the run is written
    return fitted


def resume_fit(run: Path, data: Any, model: Any, strategy: Any, val: Any, test: Any, progress: bool,
               options: dict, callbacks: Sequence = ()) -> FitResult:
    """``fit(resume=RUN)``: rebuild config, data, backbone and split from RUN; training continues (with the user's
    training-loop ``callbacks``)."""
    check_out(run, resume=True)
    if options:
        raise ConfigError(f"resume={str(run)!r} takes its options from {run}/checkpoints/config.json; "
                          f"do not pass {', '.join(sorted(options))}. Start a new run to change them.")
    cfg, sources = _saved_config(run)
    runtime = Runtime.from_config(cfg, progress).calling(callbacks)  # every process reads RUN: a shared file system
    for given, saved, what in ((model, cfg.model, "model"), (strategy, cfg.strategy, "strategy")):
        name = given.name if isinstance(given, Backbone) else given
        if name not in (saved, "minilm-l6" if what == "model" else "linear"):
            raise ConfigError(f"{run} is a {saved!r} {what} run; resume continues it as it was "
                              f"(got {what}={name!r}). Start a new run to change it.")
    data, val, test = (checkpoints.resolve_source(sources.get(role), given, role, run)
                       for role, given in (("train", data), ("val", val), ("test", test)))
    if data is None:
        raise RunError(f"{run}/checkpoints/config.json does not say where the data came from; pass it again.")
    strat = make_strategy(cfg.strategy, **cfg.strategy_options())
    backbone_in = model if isinstance(model, Backbone) and model.name == cfg.model else cfg.model
    splits, backbone = prepare(data, backbone_in, cfg, val, test)
    checkpoints.check_split(run, checkpoints.read_record(run, "split.json"), splits.split, sources.get("cwd", ""))
    fitted = fit_prepared(splits, backbone, cfg, strat, runtime.checkpointed(checkpoints.checkpoint_dir(run)))
    fitted.data = sources
    fitted.save(run, overwrite=True, progress=runtime.progress)
    distributed.barrier()
    return fitted


def _saved_config(run: Path) -> tuple[FitConfig, dict]:
    """The FitConfig an unfinished run started with, and where its data came from (``checkpoints/config.json``)."""
    record = checkpoints.read_record(run, "config.json")
    try:
        return FitConfig.from_dict(record["config"]), record.get("data") or {}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"{checkpoints.checkpoint_dir(run) / 'config.json'} does not hold the fit's options "
                       f"({brief(exc)}). {checkpoints.unusable(run)}") from None


def prepare(data: Any, model: str | Backbone, cfg: FitConfig, val: Any = None,
            test: Any = None, frozen: bool = False) -> tuple[DataSplits, Backbone]:
    """Load and check the data (keeping ``cfg.shots`` per class when set) and the backbone; ``frozen``: only
    cached features will be used (``linear``), so images are fed at the weights' own size."""
    splits = load_data(data, val=val, test=test, text_col=cfg.text_col, label_col=cfg.label_col,
                       image_col=cfg.image_col, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                       seed=cfg.seed, skip_bad=cfg.skip_bad, task=cfg.task, label_sep=cfg.label_sep)
    if cfg.shots:
        splits = keep_shots(splits, cfg.shots, cfg.seed)
    if isinstance(model, Backbone):
        backbone = model
    else:
        with torch.random.fork_rng(devices=[]):  # random (random:NAME) weights: from the fit's seed, every process
            torch.manual_seed(cfg.seed)
            backbone = load_backbone(cfg.model, weights=cfg.weights, image_size=cfg.image_size,
                                     max_length=cfg.max_length)
    if backbone.modality != splits.train.modality:
        wanted = splits.train.modality
        raise DataError(f"The data holds {modality_plural(wanted)} but {backbone.name!r} is "
                        f"{modality_article(backbone.modality)} model. Pick {modality_article(wanted)} model "
                        "(see `headstart models`).")
    if not isinstance(model, Backbone):  # the input size from the data, unless given
        if cfg.image_size is None and isinstance(backbone.preprocessing, ImagePreprocessing):
            size = choose_image_size(native_size(splits.train), backbone.preprocessing.size, frozen)
            backbone.preprocessing = backbone.preprocessing.with_size(size)
        if isinstance(backbone.preprocessing, AudioPreprocessing):
            seconds = cfg.clip_seconds or choose_clip_seconds(list(splits.train.items))
            backbone.preprocessing = backbone.preprocessing.with_clip(seconds)
    return splits, backbone


def fit_prepared(splits: DataSplits, backbone: Backbone, cfg: FitConfig, strat: Strategy,
                 runtime: Runtime) -> FitResult:
    """Fit an already loaded data set and backbone under ``runtime``: what ``fit``, ``compare`` and ``auto`` share.

    ``runtime.deadline`` stops fine-tuning early, keeping the best epoch; ``runtime.checkpoint`` (a folder) keeps
    fine-tuning's state after every epoch and resumes from the one it holds.
    """
    start, forwarded = time.perf_counter(), runtime.cache.forwarded
    reset_peak_memory()
    ctx = runtime.context(cfg, splits, backbone)
    result = strat.fit(backbone, splits, ctx)
    precision = ctx.extraction.precision if result.frozen_backbone else ctx.train_precision
    predictor = Predictor(result.model, _with_module(backbone, result.model.backbone), ctx.task.classes, precision,
                          task=ctx.task)
    with spinner("scoring train, validation and test sets", ctx.progress):
        metrics = _metrics(result, backbone, splits, ctx, predictor, cfg)
    metrics.update(_costs(result, start, ctx, runtime.cache.forwarded - forwarded))
    metrics["data_warnings"] = cheap_checks(splits, fine_tuning=not result.frozen_backbone)  # duplicates, leakage...
    metrics["strategy_info"] = result.info
    metrics["balance"] = {**ctx.balance, "select_metric": ctx.task.select_metric}
    if not result.frozen_backbone:
        metrics.update(_against_probe(result, backbone, splits, ctx, metrics["val"]))
        for warning in metrics["warnings"]:
            if ctx.progress:
                print(f"warning: {warning}", file=sys.stderr)
    return FitResult(strat.name, cfg.model, ctx.task.classes, metrics, result.history, result.info, predictor,
                     resolved_config(cfg, backbone, strat, result.info), splits.split, list(splits.skipped))


def _against_probe(result: StrategyResult, backbone: Backbone, splits: DataSplits, ctx: FitContext,
                   val: dict) -> dict:
    """The frozen linear probe's validation score (the task's main metric) beside a fine-tuned model's, and a
    warning in words when fine-tuning ended below it by more than its own 95% interval. The probe reuses cached
    features."""
    main = ctx.task.main_metric
    probe = result.info.get("probe", {}).get(f"val_{main}")
    if probe is None:
        with torch.random.fork_rng(devices=[]):
            fitted = make_strategy("linear").fit(backbone, splits, replace(ctx, progress=False))
        probe = max(c[f"val_{main}"] for c in fitted.history)
    lo, hi = val[f"{main}_ci95"]
    warnings = []
    if clearly_above(probe, hi):
        warnings.append(f"fine-tuning lost to the frozen probe: {probe - val[main]:.3f} {main} on validation "
                        f"({val[main]:.3f} against {probe:.3f}, beyond the 95% interval {lo:.3f}-{hi:.3f}); "
                        "likely overfitting or a learning rate too high for this data. Use --strategy linear, or "
                        "see `headstart compare`.")
    return {f"probe_val_{main}": probe, "warnings": warnings}


def input_size(backbone: Backbone) -> dict[str, int]:
    """``{"image_size": px}``, ``{"max_length": tokens}`` or ``{"clip_seconds": s}``: the size inputs are fed at."""
    prep = backbone.preprocessing
    if isinstance(prep, AudioPreprocessing):
        return {"clip_seconds": prep.clip_seconds}
    return {"image_size": prep.size} if isinstance(prep, ImagePreprocessing) else {"max_length": prep.max_length}


def task_reason(splits: DataSplits) -> str:
    """Why the labels were read as they were (``split.json``'s ``task`` record), or an empty string."""
    return str((splits.split.get("task") or {}).get("reason", ""))


def task_note(splits: DataSplits) -> str:
    """The task fitted and why (``split.json``'s ``task`` record), with how to change it."""
    record = splits.split.get("task") or {"task": splits.task, "reason": "asked for"}
    what = kind(record["task"]).describe(len(splits.classes))
    change = "" if "--task" in record["reason"] else "; --task changes it"
    return f"task: {record['task']} ({what}): {record['reason']}{change}."


def image_size_note(splits: DataSplits, backbone: Backbone) -> str:
    """Why images are fed at their size: the data's native size against the backbone's pretrained one."""
    native = native_size(splits.train)
    if native is not None and backbone.preprocessing.size != choose_image_size(native, backbone.preprocessing.size):
        return (f"images are fed at the weights' own {backbone.preprocessing.size} px (median short side "
                f"{native} px): a frozen backbone's features are extracted once; --image-size changes it.")
    return (f"images are fed at {backbone.preprocessing.size} px, chosen from their median short side of "
            f"{native} px (twice that, at least {MIN_SIZE} px, at most the weights' own size); "
            "--image-size changes it.")


def resolved_config(cfg: FitConfig, backbone: Backbone, strat: Strategy, info: dict) -> FitConfig:
    """``cfg`` with every value the fit chose filled in (input size, learning rates, depth, BatchNorm policy),
    so that config.json says what ran and the run can be rebuilt from it."""
    values: dict[str, Any] = input_size(backbone)
    options = option_values(strat)  # every option, defaults included
    for name, key in RESOLVED_OPTIONS.items():
        if name in options and info.get(key) is not None:
            options[name] = info[key]
    values["options"] = options
    if info.get("bn"):
        values["bn"] = info["bn"]
    if info.get("augment") is not None:  # the family's default where the fit left it open
        values["augment"] = info["augment"]
    if info.get("balance"):  # auto's choice (and the probe's weights in place of a sampler), as what ran
        values["balance"] = info["balance"]
    values["batch_size"] = info.get("batch_size") or cfg.batch()  # as given, else the strategy's default
    if info.get("lr_range"):  # the rates found are recorded as given: a rerun from this config uses them
        values["find_lr"] = False
    return replace(cfg, **values)


def _with_module(backbone: Backbone, module: torch.nn.Module) -> Backbone:
    """The same backbone surface around the (possibly fine-tuned) module that predicts."""
    return Backbone(backbone.name, backbone.modality, module, backbone.feature_dim, backbone.group_matcher,
                    backbone.preprocessing, backbone.arch, backbone.source, backbone.weights_id)


def _metrics(result: StrategyResult, backbone: Backbone, splits: DataSplits, ctx: FitContext,
             predictor: Predictor, cfg: FitConfig) -> dict:
    """Train, validation and test metrics of the task, the train-minus-validation gap of its main metric, and
    what the task learns on validation after fitting (``Task.finish``: the calibration temperature, the
    multi-label thresholds, the regression units), folded into the model's head or kept with it here.

    A frozen backbone is scored from cached features, with no forward pass.
    """
    task = ctx.task
    outputs = _split_logits(result, backbone, splits, ctx, predictor)
    out: dict[str, Any] = {"task": task.name, "main_metric": task.main_metric,
                           **task.finish(result.model, outputs, ctx.targets, cfg.calibrate)}
    datasets = {"train": splits.train, "val": splits.val, "test": splits.test}
    for name, split_outputs in outputs.items():
        finished = task.adjust(split_outputs)
        out[name] = task.metrics(finished, datasets[name].labels)
        if name == "train":  # the report plots validation and test predictions (regression), not training ones
            out[name].pop("predictions", None)
        if name == "val":  # the report's gallery: the worst mistakes, with previews
            out["misclassified"] = gallery(splits.val, task.mistakes(splits.val.labels, finished, GALLERY_SIZE))
    out["overfit_gap"] = out["train"][task.main_metric] - out["val"][task.main_metric]
    return out


def _split_logits(result: StrategyResult, backbone: Backbone, splits: DataSplits, ctx: FitContext,
                  predictor: Predictor) -> dict[str, np.ndarray]:
    """The model's logits on train, validation and (when there is one) test, by split name; ``diverged`` if any
    is not finite (every strategy's model is checked here, before it can be saved)."""
    out = {}
    for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if ds is None:
            continue
        if result.frozen_backbone:
            feats = torch.from_numpy(ctx.cache.features(backbone, ds, ctx.extraction))
            with torch.no_grad():
                out[name] = result.model.head(feats).numpy()
        else:
            model = result.model.to(ctx.device)
            out[name] = distributed.sharded_rows(lambda part: predict_logits(  # each process scores its share
                model, predictor.backbone, part, ctx.device, predictor.precision, ctx.settings.batch_size * 2), ds)
            result.model.cpu()
    broken = [name for name, logits in out.items() if not np.isfinite(logits).all()]
    if broken:
        raise diverged(f"the fitted model's outputs on the {' and '.join(broken)} items are not finite")
    return out


def _costs(result: StrategyResult, start: float, ctx: FitContext, forwarded: int) -> dict:
    """Trainable and total parameters, time, memory, items forwarded through the backbone, device, precisions."""
    total = sum(p.numel() for p in result.model.parameters())
    costs = {"trainable_params": result.trainable_params, "total_params": total,
             "trainable_share": result.trainable_params / total, "seconds": time.perf_counter() - start,
             "peak_rss_mb": peak_memory_mb(), "backbone_forward_items": forwarded,
             "device": str(ctx.device), "train_precision": ctx.train_precision,
             "feature_precision": ctx.extraction.precision}
    if distributed.world_size() > 1:
        costs["processes"] = distributed.world_size()  # time and memory above are the main process's
    if ctx.device.type == "cuda":
        costs["peak_gpu_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
    return costs
