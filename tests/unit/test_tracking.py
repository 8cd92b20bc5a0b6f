"""--track: what a fit logs to TensorBoard and MLflow, read back with the libraries' own readers."""

from __future__ import annotations

import json

import pytest

from headstart.core.errors import ConfigError
from headstart.runs.tracking import MLflowTracker, TensorBoardTracker, open_trackers, parse_trackers

CONFIG = {"model": "minilm-l6", "strategy": "partial", "lr": None, "epochs": 3, "cs": [0.1, 1.0]}
HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5 + e / 10, "val_loss": 1.2 / e,
            "val_accuracy": 0.4 + e / 10, "seconds": 2.0} for e in (1, 2, 3)]
METRICS = {"val": {"accuracy": 0.7, "macro_f1": 0.65}, "test": {"accuracy": 0.68, "macro_f1": 0.6},
           "seconds": 6.5, "trainable_params": 1000, "total_params": 5000}


def _log(tracker, report):
    tracker.start(CONFIG)
    for row in HISTORY:
        tracker.log_epoch(row)
    tracker.finish(METRICS, [report])


def test_tensorboard_events_hold_the_epochs_the_final_metrics_and_the_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    _log(TensorBoardTracker(tmp_path / "tb"), report)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    val = events.Scalars("val/accuracy")
    assert [s.step for s in val] == [1, 2, 3] and [s.value for s in val] == pytest.approx([0.5, 0.6, 0.7])
    assert [s.value for s in events.Scalars("train/loss")] == pytest.approx([1.0, 0.5, 1 / 3])
    assert events.Scalars("final/test_accuracy")[0].value == pytest.approx(0.68)
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| strategy | partial |" in config and "| lr | none |" in config
    assert (tmp_path / "tb" / "report.html").read_text() == "<html>report</html>"


def test_mlflow_run_holds_params_epoch_metrics_and_the_report(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    tracker = MLflowTracker("pets-partial", uri, (tmp_path / "artifacts").as_uri())
    _log(tracker, report)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.run_name == "pets-partial" and run.info.status == "FINISHED"
    assert run.data.params["strategy"] == "partial" and run.data.params["cs"] == "[0.1, 1.0]"
    history = client.get_metric_history(tracker.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3] and [m.value for m in history] == pytest.approx([0.5, 0.6, 0.7])
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(0.68)
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["report.html"]


def test_unknown_trackers_are_named_with_the_choices():
    assert parse_trackers("TensorBoard, mlflow,tensorboard") == ("tensorboard", "mlflow")
    with pytest.raises(ConfigError, match=r"--track wandb: unknown tracker; use one or more of tensorboard, mlflow"):
        parse_trackers(["wandb"])


def test_tensorboard_logs_into_the_run_folder_by_default(tmp_path):
    (tracker,) = open_trackers(["tensorboard"], "pets", run_dir=tmp_path / "run")
    assert tracker.log_dir.parent == tmp_path / "run" / "tensorboard"  # one folder per fit: OUT/tensorboard/TIME
    tracker.finish({})
    (elsewhere,) = open_trackers(["tensorboard"], "pets", run_dir=tmp_path / "run", track_dir=tmp_path / "tb")
    assert elsewhere.log_dir == tmp_path / "tb" / "pets"
    elsewhere.finish({})


def test_a_fit_tracked_by_both_logs_its_epochs_metrics_and_report(image_folder, tmp_path, monkeypatch):
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import headstart

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the working folder: MLflow's default place for run files
    result = headstart.fit(image_folder, "random:mobilenetv2", "partial", image_size=32, epochs=2, batch_size=8,
                           hflip=False, progress=False, cache_dir=str(tmp_path / "cache"), out=tmp_path / "run",
                           track="tensorboard,mlflow", track_dir=str(tmp_path / "track"))
    epochs = [row for row in result.history if row.get("epoch", 0) >= 1]
    events = EventAccumulator(str(tmp_path / "track" / "run"))
    events.Reload()
    assert [s.value for s in events.Scalars("val/accuracy")] == pytest.approx([r["val_accuracy"] for r in epochs])
    assert events.Scalars("final/val_accuracy")[0].value == pytest.approx(result.metrics["val"]["accuracy"])
    assert (tmp_path / "track" / "run" / "report.html").is_file()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'track' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("headstart").experiment_id])
    assert run.info.run_name == "run" and run.data.params["strategy"] == "partial"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")] == pytest.approx(
        [r["train_loss"] for r in epochs])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"report.html", "config.json", "metrics.json"}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["track"] == ["tensorboard", "mlflow"]
    assert list((tmp_path / "elsewhere").iterdir()) == []  # nothing in the working folder: all under track_dir


def test_a_fit_that_fails_ends_its_mlflow_run_as_failed(tmp_path, monkeypatch):
    import mlflow

    import headstart
    from headstart.core.errors import DataError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(DataError, match="no such file"):
        headstart.fit(str(tmp_path / "missing.csv"), "minilm-l6", track="mlflow", track_dir=str(tmp_path / "t"),
                      progress=False)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 't' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("headstart").experiment_id])
    assert run.info.status == "FAILED"
