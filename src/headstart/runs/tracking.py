"""Experiment tracking: a fit's config, per-epoch history, final metrics and report to TensorBoard and/or MLflow.

Both work offline. TensorBoard writes event files under ``--track-dir`` (``DIR/NAME``); by default in the run
folder, one folder per fit (``OUT/tensorboard/TIME``: a fit saved again there, ``--overwrite`` included, adds its
own beside the earlier ones, which every save keeps), or in ``./tensorboard/NAME`` without one. MLflow logs to
``MLFLOW_TRACKING_URI`` when it is set, else to a SQLite store in ``--track-dir`` (``DIR/mlflow.db``, run files
under ``DIR/artifacts``), else in the working folder (``./mlflow.db``, run files under ``./mlartifacts``: never
MLflow's own ``./mlruns``). A ``--track-dir`` that cannot be written is refused before any work. The libraries
are imported only when a tracker is asked for; they are the ``track`` extra (``pip install headstart[track]``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from headstart.core.errors import ConfigError, option

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
    """One tracker per name, each logging under ``track_dir`` (see the module docstring for defaults).

    Every folder a tracker writes to is made (and checked writable) before any tracker opens."""
    names = parse_trackers(names)
    given = option("track_dir", str(track_dir)) if track_dir else None
    if given:
        log_folder(Path(track_dir), given)
    trackers: list[Tracker] = []
    for name in names:
        if name == "tensorboard":
            base = Path(track_dir) if track_dir else (run_dir / "tensorboard" if run_dir else Path("tensorboard"))
            folder = base / (run_name if not run_dir or track_dir else time.strftime("%Y%m%d-%H%M%S"))
            log_folder(folder, given or (f"--out {run_dir}" if run_dir else "the working folder"))
            trackers.append(TensorBoardTracker(folder))
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            artifacts = None
            if uri is None:  # a SQLite store with its run files beside it: in track_dir, else in the working folder
                folder = log_folder(Path(track_dir or ".").resolve(), given or "--track mlflow (./mlflow.db)")
                artifacts = (folder / ("artifacts" if track_dir else "mlartifacts")).as_uri()
                uri = f"sqlite:///{folder / 'mlflow.db'}"
            trackers.append(MLflowTracker(run_name, uri, artifacts))
    return trackers


def log_folder(folder: Path, given: str) -> Path:
    """``folder``, made if needed; a ConfigError naming ``given`` (the option that chose it) if it cannot be
    written."""
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{given}: {folder} is a file, not a folder, so the trackers cannot write their logs "
                              "there. Pass a --track-dir that is a folder (new or existing).")
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise ConfigError(f"{given}: the trackers cannot write their logs to {folder} ({exc.strerror or exc}). "
                          "Pass a --track-dir you can write to, or drop --track.") from None
    return folder


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
        self.log_dir = Path(self.log_dir)
        self.writer = self._open()

    def _open(self) -> Any:
        """A new writer (and event file) in ``log_dir``."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's writer needs the tensorboard package
            raise _missing("tensorboard", "tensorboard") from exc
        return SummaryWriter(str(self.log_dir))

    def start(self, config: dict[str, Any]) -> None:
        table = "\n".join(f"| {k} | {v} |" for k, v in flat_config(config).items())
        self.writer.add_text("config", "| option | value |\n|---|---|\n" + table, 0)
        self.writer.flush()

    def log_epoch(self, row: dict[str, Any]) -> None:
        for key in EPOCH_KEYS:
            if isinstance(row.get(key), (int, float)):
                split, _, name = key.partition("_")
                tag = f"{split}/{name}" if split in ("train", "val") else f"epoch/{key}"
                self.writer.add_scalar(tag, row[key], int(row["epoch"]))
        self.writer.flush()  # on disk after every epoch: a run's save copies the folder (runs.save_run)

    def finish(self, metrics: dict[str, Any], files: Sequence[Path] = ()) -> None:
        """The final metrics, in an event file of their own: the one written so far may have been copied into a
        newly saved run folder, its original removed."""
        self.writer.close()
        self.writer = self._open()
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
