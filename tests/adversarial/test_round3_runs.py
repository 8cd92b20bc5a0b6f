"""Adversarial cases, round three (issue 24): the feature cache and the run folder's integrity.

`cache --clear` deletes only the cache's own files; a run, comparison or audit folder is written by one process
at a time (an OS lock, gone with its process); a run is saved whole, report.html included, or not at all; Ctrl-C
says what it stopped; a tampered checkpoint is refused with what to do. Real folders, real fits on tiny models,
the real CLI (in-process, or as a subprocess where a second process or a signal is the point).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import headstart
from headstart.training import engine
from cli_harness import ENV, cli  # noqa: F401  (cli is a fixture)

SRC = str(Path(headstart.__file__).parents[1])


def spawn(args: list, code: str = "") -> subprocess.Popen:
    """A separate headstart process: ``code`` runs first (e.g. a patch), then the CLI with ``args``."""
    script = f"import sys\n{code}\nfrom headstart.cli.app import main\nsys.argv = ['headstart', *sys.argv[1:]]\nmain()\n"
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), proc.communicate()[1] if proc.poll() is not None else f"no {path} in time"


def linear_fit(tiny_text_dir, text_csv, out: Path, *extra) -> list:
    return ["fit", text_csv, "--model", tiny_text_dir, "--out", out, "--quiet", *extra]


# ---- defect 2: cache --clear deletes only the cache's own files -------------------------------------------

@pytest.mark.parametrize("how", ["HEADSTART_CACHE", "--cache-dir"])
def test_cache_clear_deletes_only_its_own_shards_and_says_what_it_left(cli, tmp_path, monkeypatch, text_pairs,
                                                                       text_backbone, how):
    project = tmp_path / "project"
    headstart.fit(text_pairs, text_backbone, "linear", progress=False, cache_dir=str(project))
    shards = sorted(project.glob("features/*/*.safetensors"))
    assert shards
    mine = {project / "features/notes.txt": "my notes\n", project / "features" / shards[0].parent.name / "x.txt": "x",
            project / "features/own/0123456789abcdef.json": "{}", project / "todo.txt": "keep\n"}
    for path, text in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if how == "HEADSTART_CACHE":
        monkeypatch.setenv("HEADSTART_CACHE", str(project))
        result = cli(["cache", "--clear"])
    else:
        result = cli(["cache", "--clear", "--cache-dir", project])
    assert result.exit_code == 0, result.output
    assert all(path.read_text() == text for path, text in mine.items())
    assert not [p for p in shards if p.exists() or p.with_suffix(".json").exists()]
    assert "Left 3 files the cache did not write" in result.output and "features/notes.txt" in result.output
    assert f"Removed {2 * len(shards)} files of cached features" in result.output


# ---- defect 5: one process writes a folder; the lock dies with its process --------------------------------

def test_a_second_fit_to_a_folder_being_written_is_refused_up_front_and_a_kill_9_frees_it(cli, tmp_path, text_csv,
                                                                                           tiny_text_dir):
    run = tmp_path / "run"
    first = spawn(linear_fit(tiny_text_dir, text_csv, run, "--strategy", "full", "--epochs", "500", "--patience",
                             "500", "--batch-size", "4", "--cache-dir", tmp_path / "cache"))
    try:
        wait_for(run / "checkpoints/state.json", first)
        for extra in ([], ["--overwrite"]):
            second = cli(linear_fit(tiny_text_dir, text_csv, run, *extra))
            assert second.exit_code == 2, second.output
            assert f"{run} is in use by another headstart process (process {first.pid} on" in second.output
            assert "choose another --out" in second.output and "Traceback" not in second.output
        resumed = cli(["fit", "--resume", run, "--quiet"])
        assert resumed.exit_code == 2 and "is in use by another" in resumed.output, resumed.output
    finally:
        first.kill()  # kill -9: the OS drops its lock
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    again = cli(linear_fit(tiny_text_dir, text_csv, run, "--overwrite"))
    assert again.exit_code == 0, again.output
    assert (run / "report.html").is_file() and not (tmp_path / ".run.lock").exists()


@pytest.mark.parametrize("verb", ["compare", "audit"])
def test_compare_and_audit_refuse_a_folder_another_process_writes(cli, tmp_path, text_csv, tiny_text_dir, verb):
    out = tmp_path / "out"
    holder = spawn([], f"from headstart.runs.outdir import hold\nheld = hold({str(out)!r}, {verb!r})\nheld.__enter__()\n"
                       "print('held', flush=True)\nimport time\ntime.sleep(600)")
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        args = [verb, text_csv, "--model", tiny_text_dir, "--out", out, "--quiet"]
        refused = cli(args + (["--strategies", "linear"] if verb == "compare" else []))
        assert refused.exit_code == 2, refused.output
        assert f"{out} is in use by another headstart process (process {holder.pid} on" in refused.output
        assert not out.exists()
    finally:
        holder.kill()
        holder.communicate()
    done = cli(args + (["--strategies", "linear"] if verb == "compare" else []))
    assert done.exit_code == 0, done.output


# ---- defect 6: a run is saved whole, report.html included, or not at all ----------------------------------

def stop_in_the_report(*_args, **_kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_while_saving_leaves_no_half_run_and_the_same_command_then_works(cli, tmp_path, monkeypatch,
                                                                                  text_csv, tiny_text_dir):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:  # Ctrl-C while report.html is being written, the run's last file
        patch.setattr("headstart.report.render.render_report", stop_in_the_report)
        stopped = cli(linear_fit(tiny_text_dir, text_csv, run))
    assert stopped.exit_code == 130, stopped.output
    assert f"{run} was left as it was before" in stopped.output and not run.exists()
    assert not list(tmp_path.glob(".run*"))  # no staging folder, no lock file
    again = cli(linear_fit(tiny_text_dir, text_csv, run))
    assert again.exit_code == 0, again.output
    assert (run / "report.html").is_file() and f"Run</dt><dd>{run}" in (run / "report.html").read_text()


def test_ctrl_c_while_saving_a_fine_tune_keeps_its_epochs_for_resume(cli, tmp_path, monkeypatch, text_csv,
                                                                     tiny_text_dir):
    run = tmp_path / "run"
    args = linear_fit(tiny_text_dir, text_csv, run, "--strategy", "partial", "--epochs", "1", "--unfreeze", "1",
                      "--batch-size", "8")
    with monkeypatch.context() as patch:
        patch.setattr("headstart.report.render.render_report", stop_in_the_report)
        stopped = cli(args)
    assert stopped.exit_code == 130, stopped.output
    assert f"epoch 1 is saved in {run}; continue with `headstart fit --resume {run}`" in stopped.output
    assert not (run / "model").exists() and not (run / "report.html").exists()
    resumed = cli(["fit", "--resume", run, "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "report.html").is_file() and not (run / "checkpoints").exists()


def test_ctrl_c_just_after_the_save_says_the_run_was_saved(cli, tmp_path, monkeypatch, text_csv, tiny_text_dir):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:  # the trackers are told last, after the run folder was renamed in place
        patch.setattr("headstart.runs.tracking.Session.finish", stop_in_the_report)
        stopped = cli(linear_fit(tiny_text_dir, text_csv, run))
    assert stopped.exit_code == 130, stopped.output
    assert f"stopped after the run was saved: {run} holds it, complete" in stopped.output
    assert (run / "report.html").is_file() and cli(["predict", run, text_csv]).exit_code == 0


def test_a_kill_9_while_saving_never_leaves_a_run_that_counts_as_complete(cli, tmp_path, text_csv, tiny_text_dir):
    run = tmp_path / "run"
    kill = ("import os, signal, headstart.report.render as render\n"
            "render.render_report = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)")
    proc = spawn(linear_fit(tiny_text_dir, text_csv, run, "--cache-dir", tmp_path / "cache"), kill)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    assert not (run / "model").exists()
    predicted = cli(["predict", run, "--json"])
    assert predicted.exit_code == 2 and "not a headstart run directory" in predicted.output, predicted.output
    rerun = cli(linear_fit(tiny_text_dir, text_csv, run))
    assert rerun.exit_code == 2 and "already holds an unfinished run" in rerun.output, rerun.output
    resumed = cli(["fit", "--resume", run, "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "report.html").is_file() and (run / "model/headstart.json").is_file()


# ---- Ctrl-C during start-up says what it stopped ----------------------------------------------------------

@pytest.mark.parametrize("after", [0.7, 2.5])
def test_ctrl_c_during_start_up_says_nothing_was_written(tmp_path, text_csv, tiny_text_dir, after):
    run = tmp_path / "run"
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "headstart", *map(str, linear_fit(tiny_text_dir, text_csv, run))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted:" in err, err
    assert "nothing was" in err or "left as it was before" in err, err
    assert not run.exists()


# ---- a tampered or damaged checkpoint under --resume -------------------------------------------------------

class Crash(Exception):
    pass


@pytest.fixture
def two_of_six(text_csv, tiny_text_dir, tmp_path, monkeypatch) -> Path:
    """A 6-epoch partial fit of the tiny BERT stopped right after its second epoch's checkpoint."""
    real = engine.save_checkpoint

    def save_then_crash(folder, tensors, state):
        real(folder, tensors, state)
        if state["epoch"] == 2:
            raise Crash("simulated crash after epoch 2")

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(engine, "save_checkpoint", save_then_crash)
        with pytest.raises(Crash):
            headstart.fit(str(text_csv), str(tiny_text_dir), "partial", out=str(run), epochs=6, patience=6,
                          unfreeze=1, batch_size=8, progress=False)
    return run


@pytest.mark.parametrize("edit", [{"epoch": 99}, {"epoch": 0}, {"best_epoch": 5}])
def test_a_tampered_checkpoint_epoch_is_refused_not_finished(cli, two_of_six, edit):
    state = two_of_six / "checkpoints/state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), **edit}))
    result = cli(["fit", "--resume", two_of_six, "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"{state} says epoch" in result.output and "of a 6-epoch fit" in result.output
    assert "--overwrite" in result.output and not (two_of_six / "model").exists()


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"config": 5}', '{"config": {"epochs": 6, "nope": 1}}'])
def test_a_damaged_checkpoint_config_says_what_to_do(cli, two_of_six, damage):
    (two_of_six / "checkpoints/config.json").write_text(damage)
    result = cli(["fit", "--resume", two_of_six, "--quiet"])
    assert result.exit_code == 2, result.output
    assert "checkpoints/config.json" in result.output and "Traceback" not in result.output
    assert "fit again without --resume, into a new --out" in result.output
