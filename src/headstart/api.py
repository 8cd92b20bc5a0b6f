"""What users and the CLI call: fit, predict, evaluate, load_run, models."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from headstart import checkpoints, distributed
from headstart.audit import cheap_checks
from headstart.backbones import Backbone, ImagePreprocessing, available_models, load_backbone
from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.config import FitConfig
from headstart.data import DataSplits, Dataset, Skipped, load_data, load_labelled
from headstart.data.audio import choose_clip_seconds
from headstart.data.resolution import MIN_SIZE, choose_image_size, native_size
from headstart.devices import (extraction_batch, peak_memory_mb, reset_peak_memory, resolve_device, resolve_precision,
                               resolve_workers)
from headstart.engine import predict_logits
from headstart.errors import ConfigError, DataError, RunError
from headstart.features import Extraction, FeatureCache
from headstart.metrics import classification_metrics
from headstart.report import render_run_report
from headstart.runs import Predictor, check_out, load_predictor, read_json, save_run
from headstart.strategies import FitContext, Strategy, StrategyResult, make_strategy


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


    def predict(self, inputs: Any, **options) -> list[dict]:
        """Labels and class probabilities for new inputs (files, a folder, a table, texts)."""
        return self.predictor.predict(inputs, **options)

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write the run directory (config, split, history, metrics, model) and its report.html.

        Under a multi-process launch only the main process writes; the others just note where it goes.
        """
        if not distributed.is_main():
            self.run_dir = Path(out)
            return self.run_dir
        config = {"config": self.config.to_dict(), **({"data": self.data} if self.data is not None else {})}
        records = {"config.json": config, "split.json": self.split, "metrics.json": self.metrics}
        self.run_dir = save_run(Path(out), self.predictor, records, self.history, overwrite)
        render_run_report(self.run_dir)
        return self.run_dir


def fit(data: Any = None, model: str | Backbone = "minilm-l6", strategy: str = "linear", *, val: Any = None,
        test: Any = None, out: str | Path | None = None, overwrite: bool = False, progress: bool = True,
        resume: str | Path | None = None, **options: Any) -> FitResult:
    """Adapt a pretrained ``model`` to labelled ``data`` with ``strategy`` (linear, partial, full, lp-ft, lora, auto).

    ``data`` is an image folder, a table file, a DataFrame or an ``(items, labels)`` pair; ``options``
    are FitConfig fields (``epochs=5``, ``image_size=96``, ``shots=8``...). With ``out`` the run
    directory (and its report.html) is written; fine-tuning saves its state there after every epoch.

    ``resume=RUN`` continues a fit that was stopped (killed, crashed) after its last saved epoch, with the
    config and data recorded in RUN, and ends as the uninterrupted run would have. Nothing else is needed
    when the data came from files; in-memory data (a DataFrame, an ``(items, labels)`` pair) must be
    passed again, and must give the same split. ``model`` may be passed again as a Backbone object.

    Under ``accelerate launch`` or ``torchrun`` every process calls ``fit`` alike; the work is shared
    (see headstart.distributed) and only the main process writes ``out`` and shows progress.
    """
    if resume is not None:
        return _resume(Path(resume), data, model, strategy, val, test, progress, options)
    cfg = config_for(model, strategy, options)
    distributed.setup(resolve_device(cfg.device))
    progress = progress and distributed.is_main()
    if out is not None and distributed.is_main():
        check_out(Path(out), overwrite, inputs=(data, val, test))  # before any work: never train for nothing
    if strategy == "auto":
        from headstart.advise import fit_auto  # advise builds on this module

        fitted = fit_auto(data, model, val=val, test=test, progress=progress, **options)
    else:
        strat = make_strategy(strategy, **cfg.strategy_options())
        splits, backbone = prepare(data, model, cfg, val, test)
        cfg = replace(cfg, **input_size(backbone))  # recorded as chosen (from the data when not given)
        if progress and backbone.modality == "image" and options.get("image_size") is None:
            print(f"note: {image_size_note(splits, backbone)}", file=sys.stderr)
        if progress:
            for warning in cheap_checks(splits):
                print(f"warning: {warning}", file=sys.stderr)
        if out is None:
            fitted = fit_prepared(splits, backbone, cfg, strat, progress)
        else:
            record = checkpoints.data_record(data, val, test)
            return _fit_checkpointed(Path(out), splits, backbone, cfg, strat, progress, record, overwrite)
    if out is not None:
        fitted.save(out, overwrite)
        distributed.barrier()  # every process returns once the run is written
    return fitted


def _fit_checkpointed(run: Path, splits: DataSplits, backbone: Backbone, cfg: FitConfig, strat: Strategy,
                      progress: bool, record: dict, overwrite: bool) -> FitResult:
    """Fit and save into ``run``, which holds this fit's config, split and per-epoch state meanwhile.

    A failure before any epoch was saved (or of a fit with no epochs, like ``linear``) removes what
    ``start_run`` created, so only resumable runs are left behind.
    """
    created = []
    if distributed.is_main():
        created = checkpoints.start_run(run, cfg.to_dict(), record, splits.split, overwrite)
    distributed.barrier()  # no process looks for a checkpoint before the main one has (re)started the run
    try:
        fitted = fit_prepared(splits, backbone, cfg, strat, progress, checkpoint=checkpoints.checkpoint_dir(run))
        fitted.data = record
        fitted.save(run, overwrite=True)  # run holds this fit's own unfinished records, which the save replaces
    except BaseException:
        if distributed.is_main() and checkpoints.is_unfinished(run) and checkpoints.saved_epoch(run) == 0:
            checkpoints.discard(created)
        raise
    distributed.barrier()  # every process returns once the run is written
    return fitted


def _resume(run: Path, data: Any, model: Any, strategy: Any, val: Any, test: Any, progress: bool,
            options: dict) -> FitResult:
    """``fit(resume=RUN)``: rebuild config, data, backbone and split from RUN; training continues."""
    check_out(run, resume=True)
    if options:
        raise ConfigError(f"resume={str(run)!r} takes its options from {run}/checkpoints/config.json; "
                          f"do not pass {', '.join(sorted(options))}. Start a new run to change them.")
    record = checkpoints.read_record(run, "config.json")
    cfg = FitConfig.from_dict(record["config"])
    distributed.setup(resolve_device(cfg.device))  # every process reads RUN: it must be on a shared file system
    progress = progress and distributed.is_main()
    for given, saved, what in ((model, cfg.model, "model"), (strategy, cfg.strategy, "strategy")):
        name = given.name if isinstance(given, Backbone) else given
        if name not in (saved, "minilm-l6" if what == "model" else "linear"):
            raise ConfigError(f"{run} is a {saved!r} {what} run; resume continues it as it was "
                              f"(got {what}={name!r}). Start a new run to change it.")
    sources = record.get("data") or {}
    data, val, test = (checkpoints.resolve_source(sources.get(role), given, role, run)
                       for role, given in (("train", data), ("val", val), ("test", test)))
    if data is None:
        raise RunError(f"{run}/checkpoints/config.json does not say where the data came from; pass it again.")
    strat = make_strategy(cfg.strategy, **cfg.strategy_options())
    backbone_in = model if isinstance(model, Backbone) and model.name == cfg.model else cfg.model
    splits, backbone = prepare(data, backbone_in, cfg, val, test)
    checkpoints.check_split(run, checkpoints.read_record(run, "split.json"), splits.split, sources.get("cwd", ""))
    fitted = fit_prepared(splits, backbone, cfg, strat, progress, checkpoint=checkpoints.checkpoint_dir(run))
    fitted.data = sources
    fitted.save(run, overwrite=True)
    distributed.barrier()
    return fitted


def config_for(model: str | Backbone, strategy: Any, options: dict) -> FitConfig:
    """The FitConfig of a call, with the model and strategy named."""
    name = model.name if isinstance(model, Backbone) else model
    return FitConfig(model=name, strategy=strategy if isinstance(strategy, str) else strategy.name, **options)


def prepare(data: Any, model: str | Backbone, cfg: FitConfig, val: Any = None,
            test: Any = None) -> tuple[DataSplits, Backbone]:
    """Load and check the data (keeping ``cfg.shots`` per class when set) and the backbone."""
    splits = load_data(data, val=val, test=test, text_col=cfg.text_col, label_col=cfg.label_col,
                       image_col=cfg.image_col, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                       seed=cfg.seed, skip_bad=cfg.skip_bad)
    if cfg.shots:
        splits = keep_shots(splits, cfg.shots, cfg.seed)
    if isinstance(model, Backbone):
        backbone = model
    else:
        with torch.random.fork_rng(devices=[]):  # random (random:NAME) weights: from the fit's seed, every process
            torch.manual_seed(cfg.seed)
            backbone = load_backbone(cfg.model, weights=cfg.weights, image_size=cfg.image_size,
                                     max_length=cfg.max_length)
        if cfg.image_size is None and isinstance(backbone.preprocessing, ImagePreprocessing):  # from the data
            size = choose_image_size(native_size(splits.train), backbone.preprocessing.size)
            backbone.preprocessing = backbone.preprocessing.with_size(size)
        if isinstance(backbone.preprocessing, AudioPreprocessing) and splits.train.modality == "audio":
            seconds = cfg.clip_seconds or choose_clip_seconds(list(splits.train.items))
            backbone.preprocessing = backbone.preprocessing.with_clip(seconds)
    if backbone.modality != splits.train.modality:
        wanted = splits.train.modality
        raise DataError(f"The data holds {wanted} items but {backbone.name!r} is a {backbone.modality} model. "
                        f"Pick {'an' if wanted == 'image' else 'a'} {wanted} model (see `headstart models`).")
    return splits, backbone


def keep_shots(splits: DataSplits, shots: int, seed: int) -> DataSplits:
    """Keep ``shots`` training examples per class (seeded); validation and test stay whole.

    A class with fewer keeps all of its own; ``split["shots_short"]`` records such classes with their sizes
    (``audit.cheap_checks`` turns that into a warning).
    """
    idx = subsample_per_class(splits.train.labels, shots, seed)
    names, sizes = np.unique(np.asarray(splits.train.labels, dtype=object), return_counts=True)
    short = {str(c): int(n) for c, n in zip(names, sizes) if n < shots}
    split = {**splits.split, "shots": shots, "train_origins": [splits.train.origins[i] for i in idx],
             **({"shots_short": short} if short else {})}
    return replace(splits, train=splits.train.subset(idx), split=split)


def subsample_per_class(labels: Sequence[str], per_class: int, seed: int) -> list[int]:
    """Indices of at most ``per_class`` items of each class, drawn with ``seed``, in original order."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        keep += list(rng.permutation(members)[:per_class])
    return sorted(int(i) for i in keep)


def fit_prepared(splits: DataSplits, backbone: Backbone, cfg: FitConfig, strat: Strategy,
                 progress: bool = True, deadline: float | None = None,
                 checkpoint: str | Path | None = None) -> FitResult:
    """Fit an already loaded data set and backbone: what ``fit`` and ``compare`` share.

    ``deadline`` (a ``time.perf_counter()`` value) stops fine-tuning early, keeping the best epoch.
    ``checkpoint`` (a folder) keeps fine-tuning's state after every epoch and resumes from the one it holds.
    """
    start = time.perf_counter()
    reset_peak_memory()
    ctx = _context(cfg, splits, backbone, progress)
    ctx.settings = replace(ctx.settings, deadline=deadline, checkpoint=str(checkpoint) if checkpoint else None)
    result = strat.fit(backbone, splits, ctx)
    precision = ctx.extraction.precision if result.frozen_backbone else ctx.train_precision
    predictor = Predictor(result.model, _with_module(backbone, result.model.backbone), splits.classes, precision)
    metrics = _metrics(result, backbone, splits, ctx, predictor)
    metrics.update(_costs(result, start, ctx))
    metrics["data_warnings"] = cheap_checks(splits)  # duplicates, leakage, imbalance, tiny classes
    metrics["strategy_info"] = result.info
    if not result.frozen_backbone:
        metrics.update(_against_probe(result, backbone, splits, ctx, metrics["val"]))
        for warning in metrics["warnings"]:
            if progress:
                print(f"warning: {warning}", file=sys.stderr)
    return FitResult(strat.name, cfg.model, splits.classes, metrics, result.history, result.info, predictor,
                     resolved_config(cfg, backbone, strat, result.info), splits.split, list(splits.skipped))


def _against_probe(result: StrategyResult, backbone: Backbone, splits: DataSplits, ctx: FitContext,
                   val: dict) -> dict:
    """The frozen linear probe's validation accuracy beside a fine-tuned model's, and a warning in words when
    fine-tuning ended below it by more than its own 95% interval. The probe reuses cached features."""
    probe = result.info.get("probe", {}).get("val_accuracy")
    if probe is None:
        with torch.random.fork_rng(devices=[]):
            fitted = make_strategy("linear").fit(backbone, splits, replace(ctx, progress=False))
        probe = max(c["val_accuracy"] for c in fitted.history)
    lo, hi = val["accuracy_ci95"]
    warnings = []
    if probe > hi:
        warnings.append(f"fine-tuning lost to the frozen probe: {100 * (probe - val['accuracy']):.1f} points on "
                        f"validation ({val['accuracy']:.3f} against {probe:.3f}, beyond the 95% interval "
                        f"{lo:.3f}-{hi:.3f}); likely overfitting or a learning rate too high for this data. "
                        "Use --strategy linear, or see `headstart compare`.")
    return {"probe_val_accuracy": probe, "warnings": warnings}


def input_size(backbone: Backbone) -> dict[str, int]:
    """``{"image_size": px}``, ``{"max_length": tokens}`` or ``{"clip_seconds": s}``: the size inputs are fed at."""
    prep = backbone.preprocessing
    if isinstance(prep, AudioPreprocessing):
        return {"clip_seconds": prep.clip_seconds}
    return {"image_size": prep.size} if isinstance(prep, ImagePreprocessing) else {"max_length": prep.max_length}


def image_size_note(splits: DataSplits, backbone: Backbone) -> str:
    """Why images are fed at their size: the data's native size against the backbone's pretrained one."""
    return (f"images are fed at {backbone.preprocessing.size} px, chosen from their median short side of "
            f"{native_size(splits.train)} px (twice that, at least {MIN_SIZE} px, at most the weights' own size); "
            "--image-size changes it.")


def resolved_config(cfg: FitConfig, backbone: Backbone, strat: Strategy, info: dict) -> FitConfig:
    """``cfg`` with every value the fit chose filled in (input size, learning rates, depth, BatchNorm policy),
    so that config.json says what ran and the run can be rebuilt from it."""
    values = input_size(backbone)
    taken = {f.name for f in fields(strat)} if is_dataclass(strat) else set()
    for name in cfg.strategy_options():
        value = info.get("unfrozen_groups" if name == "unfreeze" else name, getattr(strat, name, None))
        if name in taken and value is not None:
            values[name] = value
    if info.get("bn"):
        values["bn"] = info["bn"]
    if info.get("batch_size"):
        values["batch_size"] = info["batch_size"]
    if info.get("lr_range"):  # the rates found are recorded as given: a rerun from this config uses them
        values["find_lr"] = False
    return replace(cfg, **values)


def _context(cfg: FitConfig, splits: DataSplits, backbone: Backbone, progress: bool) -> FitContext:
    device = resolve_device(cfg.device)
    distributed.setup(device)  # a no-op without a launcher, or when fit() has set it up already
    progress = progress and distributed.is_main()
    index = {c: i for i, c in enumerate(splits.classes)}
    targets = {name: np.array([index[y] for y in ds.labels], dtype=np.int64)
               for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)) if ds is not None}
    workers = resolve_workers(cfg.num_workers, device, backbone.modality)
    extraction = Extraction(device, resolve_precision(cfg.precision, device), batch_size=extraction_batch(device),
                            num_workers=workers, progress=progress)
    train_precision = resolve_precision(cfg.precision, device, training=True, depthwise=backbone.depthwise)
    settings = replace(cfg.train_settings(), num_workers=workers)
    return FitContext(targets, FeatureCache(cfg.cache_dir), extraction, device, train_precision, settings, progress)


def _with_module(backbone: Backbone, module: torch.nn.Module) -> Backbone:
    """The same backbone surface around the (possibly fine-tuned) module that predicts."""
    return Backbone(backbone.name, backbone.modality, module, backbone.feature_dim, backbone.group_matcher,
                    backbone.preprocessing, backbone.arch, backbone.source, backbone.weights_id)


def _metrics(result: StrategyResult, backbone: Backbone, splits: DataSplits, ctx: FitContext,
             predictor: Predictor) -> dict:
    """Train, validation and test metrics and the train-minus-validation accuracy gap.

    A frozen backbone is scored from cached features, with no forward pass.
    """
    out = {}
    for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if ds is None:
            continue
        if result.frozen_backbone:
            feats = torch.from_numpy(ctx.cache.features(backbone, ds, ctx.extraction))
            with torch.no_grad():
                logits = result.model.head(feats).numpy()
        else:
            model = result.model.to(ctx.device)
            logits = distributed.sharded_rows(lambda part: predict_logits(  # each process scores its share
                model, predictor.backbone, part, ctx.device, predictor.precision, ctx.settings.batch_size * 2), ds)
            result.model.cpu()
        out[name] = classification_metrics(ctx.targets[name], logits.argmax(1), splits.classes)
    out["overfit_gap"] = out["train"]["accuracy"] - out["val"]["accuracy"]
    return out


def _costs(result: StrategyResult, start: float, ctx: FitContext) -> dict:
    total = sum(p.numel() for p in result.model.parameters())
    costs = {"trainable_params": result.trainable_params, "total_params": total,
             "trainable_share": result.trainable_params / total, "seconds": time.perf_counter() - start,
             "peak_rss_mb": peak_memory_mb(), "backbone_forward_items": ctx.cache.forwarded,
             "device": str(ctx.device), "train_precision": ctx.train_precision,
             "feature_precision": ctx.extraction.precision}
    if distributed.world_size() > 1:
        costs["processes"] = distributed.world_size()  # time and memory above are the main process's
    if ctx.device.type == "cuda":
        costs["peak_gpu_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
    return costs


def load_run(run: str | Path) -> Predictor:
    """The trained model of a run directory, ready to predict (offline, no training data needed)."""
    return load_predictor(Path(run))


def predict(run: str | Path, inputs: Any, device: str = "auto", **source_options: Any) -> list[dict]:
    """Labels and class probabilities for ``inputs`` from a saved run."""
    return load_run(run).predict(inputs, device=device, **source_options)


def evaluate(run: str | Path, data: Any, device: str = "auto", **source_options: Any) -> dict:
    """Accuracy, macro-F1, per-class scores and confusion matrix of a saved run on labelled ``data``."""
    predictor = load_run(run)
    ds = data if isinstance(data, Dataset) else load_labelled(data, **source_options)
    index = {c: i for i, c in enumerate(predictor.classes)}
    unseen = sorted(set(ds.labels) - set(index))
    if unseen:
        raise DataError(f"{data}: labels {unseen} were not in the run's training classes {predictor.classes}. "
                        "Remove those items or retrain with them.")
    probs = predictor.probabilities(ds, device)
    y = np.array([index[label] for label in ds.labels])
    metrics = classification_metrics(y, probs.argmax(1), predictor.classes)
    if ds.skipped:
        metrics["skipped"] = [{"input": s.origin, "reason": s.reason} for s in ds.skipped]
    return metrics


def run_summary(run: str | Path) -> dict:
    """The saved config and metrics of a run directory."""
    return {"config": read_json(Path(run), "config.json"), "metrics": read_json(Path(run), "metrics.json")}


def models() -> list[dict]:
    """Backbones that load on this machine now, offline, and where they come from."""
    return available_models()
