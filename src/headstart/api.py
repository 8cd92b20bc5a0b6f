"""What users and the CLI call: fit, predict, evaluate, load_run, models, suggest, compare, advise, audit, export.

A facade: the work is in headstart.workflows.pipeline (loading, fitting, scoring, saving), headstart.workflows.runtime (device,
precision, cache, deadline, checkpoints) and headstart.workflows.auto (``--strategy auto``). Nothing below imports it.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Sequence


from headstart.training import distributed
from headstart.training.engine import Callback
from headstart.workflows.auto import fit_auto
from headstart.backbones import Backbone, available_models
from headstart.data import Dataset, load_labelled
from headstart.data.items import Gate
from headstart.data.load import as_task
from headstart.data.targets import TaskChoice
from headstart.core.errors import DataError
from headstart.label.suggest import Suggestions, suggest
from headstart.runs.outdir import hold
from headstart.runs.overlap import overlap_with_run
from headstart.workflows.pipeline import FitResult, check_folders, config_for, fit_data, resume_fit
from headstart.runs.folder import Predictor, check_out, load_predictor
from headstart.workflows.runtime import Runtime
from headstart.runs.tracking import Session
from headstart.runs.export import Exported
from headstart.runs.export import export as export_run
from headstart.runs.outdir import check_writable
from headstart.strategies import make_strategy
from headstart.strategies.declared import COMPARED
from headstart.tasks.kinds import kind
from headstart.workflows import advise as advising
from headstart.workflows import audit as auditing
from headstart.workflows import compare as comparing

__all__ = ["FitResult", "Suggestions", "advise", "audit", "compare", "evaluate", "export", "fit", "load_run", "models",
           "predict", "suggest"]


def fit(data: Any = None, model: str | Backbone = "minilm-l6", strategy: str = "linear", *, val: Any = None,
        test: Any = None, out: str | Path | None = None, overwrite: bool = False, progress: bool = True,
        resume: str | Path | None = None, callbacks: Sequence[Callback] = (), **options: Any) -> FitResult:
    """Adapt a pretrained ``model`` to labelled ``data`` with ``strategy`` (linear, partial, full, lp-ft, lora, auto).

    ``data`` is an image folder, a table file, a DataFrame or an ``(items, labels)`` pair; ``options``
    are FitConfig fields (``epochs=5``, ``image_size=96``, ``shots=8``...). With ``out`` the run
    directory (and its report.html) is written; fine-tuning saves its state there after every epoch.

    ``resume=RUN`` continues a fit that was stopped (killed, crashed) after its last saved epoch, with the
    config and data recorded in RUN, and ends as the uninterrupted run would have. Nothing else is needed
    when the data came from files; in-memory data (a DataFrame, an ``(items, labels)`` pair) must be
    passed again, and must give the same split. ``model`` may be passed again as a Backbone object.

    ``callbacks`` (headstart.Callback subclasses) run in the training loop of every strategy that trains with it
    (partial, full, lp-ft, lora, contrastive), after each batch and epoch, after its own.

    Under ``accelerate launch`` or ``torchrun`` every process calls ``fit`` alike; the work is shared
    (see headstart.training.distributed) and only the main process writes ``out`` and shows progress.
    """
    if resume is not None:
        with run_lock(resume):
            return resume_fit(Path(resume), data, model, strategy, val, test, progress, options, callbacks)
    with run_lock(out, (data, val, test)):
        return _fit_new(data, model, strategy, val, test, out, overwrite, progress, options, callbacks)


def run_lock(out: str | Path | None, inputs: tuple = ()) -> AbstractContextManager:
    """The lock of the run folder ``out`` (see headstart.core.locks), held by the main process from the checks to the
    save: a second fit to the same folder is refused before any work. The process group is not formed yet: the
    launcher's rank says which process is the main one."""
    if out is None or distributed.launch_rank() != 0:
        return nullcontext()
    return hold(Path(out), "run", inputs)


def _fit_new(data: Any, model: str | Backbone, strategy: str, val: Any, test: Any, out: str | Path | None,
             overwrite: bool, progress: bool, options: dict, callbacks: Sequence[Callback] = ()) -> FitResult:
    """``fit`` of a new run (``out`` already locked)."""
    cfg = config_for(model, strategy, options)
    check_folders(cfg, (data, val, test))
    runtime = Runtime.from_config(cfg, progress).calling(callbacks)
    if out is not None and distributed.is_main():
        check_out(Path(out), overwrite, inputs=(data, val, test))  # before any work: never train for nothing
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(out).name if out is not None else f"{Path(cfg.model).name}-{cfg.strategy}-{stamp}"
    tracking = Session.open(cfg.track if distributed.is_main() else (), cfg.to_dict(), name,
                            None if out is None else Path(out), cfg.track_dir)
    runtime = runtime.listening(tracking.log_epoch if tracking.trackers else None)
    try:
        if strategy != "auto":
            strat = make_strategy(strategy, **cfg.strategy_options())
            fitted = fit_data(data, model, strat, cfg, runtime, val, test, None if out is None else Path(out),
                              overwrite)
        else:
            fitted = fit_auto(data, model, cfg, runtime, val, test)
            if out is not None:
                fitted.save(out, overwrite, progress=runtime.progress)
                distributed.barrier()  # every process returns once the run is written
    except BaseException:  # an error or Ctrl-C: the trackers' runs end as failed, then it goes on up
        tracking.fail()
        raise
    tracking.finish(fitted.metrics, fitted.run_dir)
    return fitted


def load_run(run: str | Path) -> Predictor:
    """The trained model of a run directory, ready to predict (offline, no training data needed)."""
    return load_predictor(Path(run))


def predict(run: str | Path, inputs: Any, device: str = "auto", **source_options: Any) -> list[dict]:
    """Labels and class probabilities for ``inputs`` from a saved run."""
    return load_run(run).predict(inputs, device=device, **source_options)


def evaluate(run: str | Path, data: Any, device: str = "auto", **source_options: Any) -> dict:
    """The run's task metrics on labelled ``data`` (single-label: accuracy, macro-F1, per-class scores and
    confusion matrix; multi-label: micro/macro-F1, mAP at the run's thresholds; regression: MAE, RMSE, R²...)."""
    predictor = load_run(run)
    ds = data if isinstance(data, Dataset) else load_labelled(data, **{"run_columns": predictor.columns,
                                                                         **source_options})
    predictor.check_modality(ds, str(data) if isinstance(data, (str, os.PathLike)) else "the data given")
    task = predictor.task
    ds = as_task(ds, TaskChoice(task.name, "the run's", getattr(task, "sep", None)),
                 Gate(bool(source_options.get("skip_bad"))))
    if kind(task.name).has_classes:
        seen = set(predictor.classes)
        unseen = sorted({name for label in ds.labels for name in (label if isinstance(label, tuple) else (label,))}
                        - seen)
        if unseen:
            raise DataError(f"{data}: labels {unseen} were not in the run's training classes {predictor.classes}. "
                            "Remove those items or retrain with them.")
    metrics = {"task": task.name, **task.metrics(predictor.outputs(ds, device), ds.labels)}
    if ds.skipped:
        metrics["skipped"] = [{"input": s.origin, "reason": s.reason} for s in ds.skipped]
    metrics.update(overlap_with_run(Path(run), ds))  # evaluation items the run was fitted or selected on
    return metrics


def models() -> list[dict]:
    """Backbones that load on this machine now, offline, and where they come from."""
    return available_models()


def compare(data: Any, model: str | Backbone = "minilm-l6", strategies: Sequence[str] = COMPARED, *,
            out: str | Path | None = None, overwrite: bool = False, **options: Any) -> comparing.Comparison:
    """Fit each of ``strategies`` on the same split of ``data`` with ``model`` and measure them side by side.

    ``options`` are ``fit``'s (FitConfig fields and the strategies' own options) and ``budget``, ``seeds``,
    ``folds``, ``val``, ``test``, ``progress`` (see headstart.workflows.compare.compare). With ``out`` the
    comparison (comparison.json, report.html, one run per strategy) is saved there, refused before any work
    when ``out`` holds something else and ``overwrite`` is not given.
    """
    if out is None:
        return comparing.compare(data, model, strategies, **options)
    inputs = (data, options.get("val"), options.get("test"))
    with hold(Path(out), "comparison", inputs):  # a second compare to OUT is refused up front
        check_writable(Path(out), "comparison", overwrite, inputs=inputs)  # before any work
        result = comparing.compare(data, model, strategies, **options)
        result.save(out, overwrite)
    return result


def advise(data: Any, models: Sequence[str | Backbone] = ("minilm-l6",), **options: Any) -> advising.Advice:
    """Rank candidate backbones ``models`` on ``data`` (LogME, H-score, a cross-validated probe) and recommend a
    model and strategy with reasons in numbers; ``options``: ``budget``, ``val``, ``test``, ``progress`` and
    FitConfig fields (see headstart.workflows.advise.advise)."""
    return advising.advise(data, models, **options)


def audit(data: Any, model: str | Backbone = "minilm-l6", **options: Any) -> auditing.AuditReport:
    """Duplicates, leakage, likely label errors, outliers, imbalance and weak slices of labelled ``data``, on
    ``model``'s frozen features; ``options``: ``out``, ``group_col``, ``folds``... and FitConfig fields (see
    headstart.workflows.audit.audit)."""
    return auditing.audit(data, model, **options)


def export(run: str | Path, format: str, out: str | Path | None = None, samples: Any = None) -> Exported:
    """Export the model of ``run`` as ``format`` (onnx, hf, timm) into ``out`` (default: ``RUN-FORMAT``), checked
    against the run's own predictions on ``samples`` before it is written; never overwrites a folder."""
    return export_run(run, format, out, samples=samples)
