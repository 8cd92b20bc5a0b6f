"""Experiment tracking: a fit's config, per-epoch history, final metrics and report to TensorBoard and/or MLflow.

Both work offline. TensorBoard writes event files under ``--track-dir`` (default: ``tensorboard/`` in the run
folder, or ``./tensorboard/NAME`` without one); MLflow logs to ``MLFLOW_TRACKING_URI`` when it is set, else to
``--track-dir`` as a SQLite store (``sqlite:///DIR/mlflow.db``, run files under ``DIR/artifacts``), else to
MLflow's own default (``mlflow.db`` and ``mlruns/`` in the working folder). The libraries are imported only when a tracker is asked for; they are the ``track``
extra (``pip install headstart[track]``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from headstart.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow")
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_micro_f1", "val_r2", "seconds",
              "l2sp_penalty")


class Tracker(Protocol):
    """What a fit reports to: its settings once, a row per epoch, then the final metrics and files."""

    def start(self, config: dict[str, Any]) -> None: ...

    def log_epoch(self, row: dict[str, Any]) -> None: ...

    def finish(self, metrics: dict[str, Any], files: Sequence[Path] = ()) -> None: ...

    def fail(self) -> None: ...


def parse_trackers(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` or a list of names -> validated tuple; a clear error for an unknown name."""
    if not names:
        return ()
    items = names.split(",") if isinstance(names, str) else list(names)
    out = tuple(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    unknown = [n for n in out if n not in TRACKERS]
    if unknown:
        raise ConfigError(f"--track {','.join(unknown)}: unknown tracker; use one or more of "
                          f"{', '.join(TRACKERS)} (e.g. --track tensorboard,mlflow).")
    return out


def open_trackers(names: Sequence[str], run_name: str, run_dir: Path | None = None,
                  track_dir: Path | None = None) -> list[Tracker]:
    """One tracker per name, each logging under ``track_dir`` (see the module docstring for defaults)."""
    trackers: list[Tracker] = []
    for name in parse_trackers(names):
        if name == "tensorboard":
            base = Path(track_dir) if track_dir else (run_dir / "tensorboard" if run_dir else Path("tensorboard"))
            trackers.append(TensorBoardTracker(base / run_name if not run_dir or track_dir else base))
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            artifacts = None
            if uri is None and track_dir:  # the store and the run files both inside track_dir
                folder = Path(track_dir).resolve()
                folder.mkdir(parents=True, exist_ok=True)
                uri, artifacts = f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()
            trackers.append(MLflowTracker(run_name, uri, artifacts))
    return trackers


def flat_config(config: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Config values the trackers take (scalars; lists and dicts as JSON, None as "none")."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        if value is None:
            out[key] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=str, sort_keys=True)
    return out


def final_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of metrics.json: each task's scores per split (accuracy and macro-F1; micro-F1 and
    mAP; R², Spearman and MAE), time, memory, parameters."""
    out = {}
    for split in ("train", "val", "test"):
        for key in ("accuracy", "macro_f1", "micro_f1", "map", "r2", "spearman", "mae"):
            value = (metrics.get(split) or {}).get(key)
            if isinstance(value, (int, float)):
                out[f"{split}_{key}"] = float(value)
    for key in ("seconds", "peak_rss_mb", "trainable_params", "total_params"):
        if isinstance(metrics.get(key), (int, float)):
            out[key] = float(metrics[key])
    return out


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """These loggers at WARNING while the block runs; their levels are restored after."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _missing(library: str, tracker: str) -> ConfigError:
    return ConfigError(f"--track {tracker} needs the {library} package, which is not installed: "
                       "pip install 'headstart[track]' (or drop --track).")


@dataclass
class TensorBoardTracker:
    """Scalars under ``train/``, ``val/`` and ``final/``; the config as text; report.html copied beside the events."""

    log_dir: Path

    def __post_init__(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's writer needs the tensorboard package
            raise _missing("tensorboard", "tensorboard") from exc
        self.log_dir = Path(self.log_dir)
        self.writer = SummaryWriter(str(self.log_dir))

    def start(self, config: dict[str, Any]) -> None:
        table = "\n".join(f"| {k} | {v} |" for k, v in flat_config(config).items())
        self.writer.add_text("config", "| option | value |\n|---|---|\n" + table, 0)

    def log_epoch(self, row: dict[str, Any]) -> None:
        for key in EPOCH_KEYS:
            if isinstance(row.get(key), (int, float)):
                split, _, name = key.partition("_")
                tag = f"{split}/{name}" if split in ("train", "val") else f"epoch/{key}"
                self.writer.add_scalar(tag, row[key], int(row["epoch"]))

    def finish(self, metrics: dict[str, Any], files: Sequence[Path] = ()) -> None:
        for key, value in final_scalars(metrics).items():
            self.writer.add_scalar(f"final/{key}", value, 0)
        self.writer.close()
        for file in files:
            if Path(file).is_file():
                shutil.copy2(file, self.log_dir / Path(file).name)

    def fail(self) -> None:
        """The fit stopped with an error or was interrupted: the events written so far stay."""
        self.writer.close()


@dataclass
class MLflowTracker:
    """An MLflow run: config as params, per-epoch metrics with the epoch as step, final metrics, files as artifacts."""

    run_name: str
    tracking_uri: str | None = None
    artifact_location: str | None = None  # where a new "headstart" experiment keeps run files (MLflow: ./mlruns)

    def __post_init__(self):
        try:
            import mlflow
        except ImportError as exc:
            raise _missing("mlflow", "mlflow") from exc
        with _quiet_loggers("mlflow", "alembic"):  # "Creating initial MLflow database tables..." on a new store
            self.client = mlflow.MlflowClient(self.tracking_uri)
            experiment = self.client.get_experiment_by_name("headstart")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
                "headstart", artifact_location=self.artifact_location)
            self.run = self.client.create_run(experiment_id, run_name=self.run_name)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def start(self, config: dict[str, Any]) -> None:
        for key, value in flat_config(config).items():
            self.client.log_param(self.run_id, key, str(value)[:6000])

    def log_epoch(self, row: dict[str, Any]) -> None:
        for key in EPOCH_KEYS:
            if isinstance(row.get(key), (int, float)):
                self.client.log_metric(self.run_id, key, float(row[key]), step=int(row["epoch"]))

    def finish(self, metrics: dict[str, Any], files: Sequence[Path] = ()) -> None:
        for key, value in final_scalars(metrics).items():
            self.client.log_metric(self.run_id, f"final_{key}", value)
        for file in files:
            if Path(file).is_file():
                self.client.log_artifact(self.run_id, str(file))
        self.client.set_terminated(self.run_id)

    def fail(self) -> None:
        """The fit stopped with an error or was interrupted: the MLflow run ends as FAILED."""
        self.client.set_terminated(self.run_id, status="FAILED")


@dataclass
class Session:
    """The trackers of one fit: ``log_epoch`` for the training loop, ``finish`` once the run is saved."""

    trackers: list[Tracker]

    @classmethod
    def open(cls, names: Sequence[str], config: dict[str, Any], run_name: str, run_dir: Path | None = None,
             track_dir: str | Path | None = None) -> "Session":
        """Open a tracker per name and log ``config`` to each (no trackers: a session that does nothing)."""
        session = cls(open_trackers(names, run_name, run_dir, Path(track_dir) if track_dir else None))
        for tracker in session.trackers:
            tracker.start(config)
        return session

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One epoch's history row, to every tracker."""
        for tracker in self.trackers:
            tracker.log_epoch(row)

    def fail(self) -> None:
        """End every tracker's run as failed (the fit raised or was interrupted)."""
        for tracker in self.trackers:
            tracker.fail()

    def finish(self, metrics: dict[str, Any], run_dir: Path | None = None) -> None:
        """The final metrics, and the run's report.html, config.json and metrics.json when it was saved."""
        files = [run_dir / name for name in ("report.html", "config.json", "metrics.json")] if run_dir else []
        for tracker in self.trackers:
            tracker.finish(metrics, files)
