"""Adversarial cases for the folders headstart writes beside a fit (issue 24, "Trust, round three"): tracker logs
in a run folder, a feature cache or tracker folder inside the data, MLflow's files in the working folder, tracker
folders that cannot be written, exports into a run, and links out of a data folder.

Real CLI invocations and real tiny fits (the tiny BERT, random MobileNetV2 at 32 px).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import headstart
from headstart.training import engine
from headstart.workflows.advise import advise
from headstart.workflows.compare import compare
from headstart.data import load_data
from headstart.core.errors import DataError, RunError

from conftest import write_image_folder
from cli_harness import cli  # noqa: F401  (cli is a fixture)
from test_runs_and_cli import snapshot

class Crash(Exception):
    """Stands in for a crash right after an epoch's checkpoint was written."""


PARTIAL = ["--strategy", "partial", "--unfreeze", "1", "--epochs", "1", "--quiet"]


def scalars(folder: Path, tag: str) -> list[float]:
    """The values of ``tag`` in the TensorBoard event files of ``folder``, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [s.value for s in events.Scalars(tag)]


# ---- defect 1: --track tensorboard without --track-dir --------------------------------------------------

def test_tensorboard_in_the_run_folder_saves_the_run_and_overwrite_keeps_the_earlier_logs(cli, tmp_path, text_csv,
                                                                                         tiny_text_dir):
    run = tmp_path / "NEW"
    fit = ["fit", text_csv, "--model", tiny_text_dir, *PARTIAL, "--track", "tensorboard", "--out", run]
    result = cli(fit)
    assert result.exit_code == 0, result.output
    assert (run / "model" / "model.safetensors").is_file() and (run / "report.html").is_file()
    (first,) = (run / "tensorboard").iterdir()  # one folder per fit
    assert len(scalars(first, "val/accuracy")) == 1 and len(scalars(first, "final/val_accuracy")) == 1
    assert (first / "report.html").is_file()
    logs = snapshot(first)
    result = cli([*fit, "--overwrite"])
    assert result.exit_code == 0, result.output
    folders = sorted((run / "tensorboard").iterdir())
    assert len(folders) == 2 and snapshot(first) == logs  # the earlier fit's curves are kept, apart
    assert len(scalars(folders[-1], "val/accuracy")) == 1


def test_a_crashed_tensorboard_fit_resumes_from_the_cli(cli, tmp_path, text_csv, tiny_text_dir, monkeypatch):
    run = tmp_path / "run"
    real = engine.save_checkpoint

    def save_then_crash(folder, tensors, state):  # a crash right after the first epoch's checkpoint
        real(folder, tensors, state)
        raise Crash

    monkeypatch.setattr(engine, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        headstart.fit(str(text_csv), str(tiny_text_dir), "partial", out=str(run), unfreeze=1, epochs=2,
                      track="tensorboard", progress=False)
    monkeypatch.setattr(engine, "save_checkpoint", real)
    assert (run / "checkpoints").is_dir() and (run / "tensorboard").is_dir()
    logs = snapshot(run / "tensorboard")
    result = cli(["fit", "--resume", run, "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "model" / "model.safetensors").is_file() and not (run / "checkpoints").exists()
    assert snapshot(run / "tensorboard") == logs  # the logs of the stopped fit came through the save


def test_a_tensorboard_fit_that_failed_on_its_data_leaves_a_folder_the_next_fit_takes(cli, tmp_path, text_csv,
                                                                                     tiny_text_dir):
    run = tmp_path / "run"
    bad = cli(["fit", text_csv, "--model", tiny_text_dir, "--label-col", "nope", "--track", "tensorboard",
               "--out", run, "--quiet"])
    assert bad.exit_code == 2 and "nope" in bad.output, bad.output
    result = cli(["fit", text_csv, "--model", tiny_text_dir, "--track", "tensorboard", "--out", run, "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "model" / "headstart.json").is_file()


# ---- defect 3: --cache-dir and --track-dir inside the data folder ------------------------------------------

@pytest.fixture
def images(tmp_path) -> Path:
    return write_image_folder(tmp_path / "images", per_class=4)


@pytest.mark.parametrize("option", ["--cache-dir", "--track-dir"])
def test_fit_and_audit_refuse_a_cache_or_tracker_folder_inside_the_data(cli, tmp_path, images, option):
    before = snapshot(images)
    for verb, extra in (("fit", ["--track", "tensorboard,mlflow"]), ("audit", [])):
        if verb == "audit" and option == "--track-dir":
            continue  # audit has no trackers
        result = cli([verb, images, "--model", "random:mobilenetv2", "--image-size", "32", *extra,
                      option, images / "red" / "sub", "--out", tmp_path / verb, "--quiet"])
        assert result.exit_code == 2, result.output
        assert f"{option} {images / 'red' / 'sub'}" in result.output and "inside the data folder" in result.output
        assert "Traceback" not in result.output and not (tmp_path / verb).exists()
    assert snapshot(images) == before and not (images / "red" / "sub").exists()


def test_python_calls_refuse_a_cache_folder_that_is_the_data_folder(tmp_path, images, monkeypatch):
    before = snapshot(images)
    for call in (lambda **o: headstart.fit(str(images), "random:mobilenetv2", image_size=32, progress=False, **o),
                 lambda **o: compare(str(images), "random:mobilenetv2", ["linear"], image_size=32, progress=False,
                                     **o),
                 lambda **o: advise(str(images), ["random:mobilenetv2"], image_size=32, progress=False, **o)):
        with pytest.raises(RunError, match=r"--cache-dir .* \(cache_dir=.*\) is the data folder"):
            call(cache_dir=str(images))
    with pytest.raises(RunError, match=r"--track-dir .* is inside the data folder"):
        headstart.fit(str(images), "random:mobilenetv2", image_size=32, progress=False, track="tensorboard",
                      track_dir=str(images / "logs"))
    monkeypatch.setenv("HEADSTART_CACHE", str(images / "cache"))
    with pytest.raises(RunError, match="HEADSTART_CACHE=.* is inside the data folder"):
        headstart.fit(str(images), "random:mobilenetv2", image_size=32, progress=False)
    assert snapshot(images) == before


# ---- MLflow without --track-dir: nothing undocumented in the working folder --------------------------------

def test_mlflow_without_a_track_dir_writes_only_its_store_and_run_files_in_the_working_folder(
        tmp_path, text_csv, tiny_text_dir, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(tmp_path / "run"), track="mlflow",
                  progress=False)
    assert sorted(p.name for p in work.iterdir()) == ["mlartifacts", "mlflow.db"]  # no ./mlruns
    client = mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("headstart").experiment_id])
    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {"report.html", "config.json",
                                                                          "metrics.json"}
    assert list((work / "mlartifacts").rglob("report.html"))


# ---- defect 8 (trackers): a --track-dir that cannot be written ---------------------------------------------

@pytest.mark.parametrize("tracker", ["mlflow", "tensorboard"])
def test_a_track_dir_that_cannot_be_written_is_an_error_naming_it_before_training(cli, tmp_path, text_csv,
                                                                                 tiny_text_dir, tracker):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for track_dir, why in (("/proc/nope", "cannot write"), (a_file, "is a file, not a folder")):
        result = cli(["fit", text_csv, "--model", tiny_text_dir, "--track", tracker, "--track-dir", track_dir,
                      "--out", tmp_path / "run", "--quiet"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and result.output.startswith("error: --track-dir")
        assert f"--track-dir {track_dir}" in result.output and why in result.output
        assert not (tmp_path / "run").exists()  # refused before any training
    assert a_file.read_text() == "mine\n"


# ---- export --out inside the run --------------------------------------------------------------------------

def test_export_refuses_a_target_inside_the_run_or_any_headstart_folder(cli, tmp_path, text_csv, tiny_text_dir):
    run = tmp_path / "run"
    headstart.fit(str(text_csv), str(tiny_text_dir), "linear", out=str(run), progress=False)
    before = snapshot(run)
    for target in (run / "model" / "exp", run / "exp"):
        result = cli(["export", run, "--format", "hf", "--out", target])
        assert result.exit_code == 2, result.output
        assert f"--out {target} is inside the headstart run folder {run}" in result.output
    assert snapshot(run) == before and not (run / "exp").exists()


# ---- links out of a data folder ----------------------------------------------------------------------------

def test_links_that_leave_a_data_folder_are_refused_by_name_or_skipped(cli, tmp_path, images):
    elsewhere = write_image_folder(tmp_path / "elsewhere", per_class=1)
    link = images / "red" / "outside.png"
    os.symlink(elsewhere / "red" / "red_00.png", link)
    (images / "red" / "inside.png").symlink_to(images / "red" / "red_00.png")  # a link within: fine
    result = cli(["fit", images, "--model", "random:mobilenetv2", "--image-size", "32", "--out", tmp_path / "run",
                  "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"red/outside.png: this is a link to {elsewhere / 'red' / 'red_00.png'}" in result.output
    assert "outside the data folder" in result.output and "--skip-bad" in result.output
    splits = load_data(str(images), skip_bad=True)
    assert [s.origin for s in splits.skipped] == [str(link)]
    assert not any("outside.png" in origin for ds in (splits.train, splits.val) for origin in ds.origins)
    link.unlink()
    shutil.rmtree(images / "blue")
    (images / "blue").symlink_to(elsewhere / "blue", target_is_directory=True)  # a class folder that leaves
    with pytest.raises(DataError, match=r"blue: this is a link to .*elsewhere/blue, which is outside the data"):
        load_data(str(images))
