"""--config FILE: options from TOML or JSON (a run's config.json too), flags winning, errors naming the key."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from headstart.cli.app import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


def fit(args: list, expect: int = 0):
    result = CliRunner().invoke(app, ["fit", *map(str, args)], env=ENV)
    assert result.exit_code == expect, result.output
    return result


def run_config(run) -> dict:
    return json.loads((run / "config.json").read_text())


def test_a_toml_file_sets_options_and_flags_on_the_command_line_win(text_csv, tiny_text_dir, tmp_path):
    (tmp_path / "fit.toml").write_text(
        f'model = "{tiny_text_dir}"\nstrategy = "partial"\nepochs = 2\nbatch-size = 8\nseed = 3\n'
        f'cache_dir = "{tmp_path / "cache"}"\n[fit]\nunfreeze = 1\nlr = 0.002\n')
    fit([text_csv, "--config", tmp_path / "fit.toml", "--seed", 5, "--out", tmp_path / "run", "--quiet"])
    config = run_config(tmp_path / "run")["config"]
    assert (config["strategy"], config["epochs"], config["batch_size"]) == ("partial", 2, 8)
    assert config["options"]["unfreeze"] == 1 and config["options"]["lr"] == 0.002
    assert config["seed"] == 5  # the flag, not the file's 3


def test_a_runs_config_json_fits_the_same_run_again(text_csv, tiny_text_dir, tmp_path):
    fit([text_csv, "--model", tiny_text_dir, "--strategy", "lora", "--epochs", 1, "--batch-size", 8, "--rank", 2,
         "--dropout", 0.2, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "first", "--quiet"])
    fit(["--config", tmp_path / "first" / "config.json", "--out", tmp_path / "again", "--quiet"])  # DATA from it
    first, again = run_config(tmp_path / "first"), run_config(tmp_path / "again")
    assert again["config"] == first["config"] and again["data"]["train"] == first["data"]["train"]
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["val"]["accuracy"] == pytest.approx(
        json.loads((tmp_path / "first" / "metrics.json").read_text())["val"]["accuracy"])


@pytest.mark.parametrize("content, name, message", [
    ("epochz = 3\n", "fit.toml", r"fit.toml: 'epochz' is not an option of `headstart fit`; its options are .*epochs"),
    ("epochs = [\n", "fit.toml", r"fit.toml: not valid TOML"),
    ('{"epochs": 2,}', "fit.json", r"fit.json: not valid JSON \(name it .toml for TOML\)"),
    ("[1, 2]", "fit.json", r"fit.json: must hold a table of options, not a list"),
])
def test_a_bad_config_file_is_named_with_what_is_wrong(text_csv, tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    result = subprocess.run([sys.executable, "-m", "headstart", "fit", str(text_csv), "--config", str(tmp_path / name)],
                            capture_output=True, text=True, env={**ENV, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stdout == ""
    assert re.search(message, " ".join(result.stderr.split())), result.stderr


def test_compare_advise_and_audit_take_a_config_file_too(text_csv, tmp_path):
    (tmp_path / "c.toml").write_text("[compare]\nseedz = 2\n")
    result = CliRunner().invoke(app, ["compare", str(text_csv), "--config", str(tmp_path / "c.toml")], env=ENV)
    assert result.exit_code != 0 and "'seedz' is not an option of `headstart compare`" in str(result.exception)
    for verb in ("advise", "audit"):
        (tmp_path / f"{verb}.toml").write_text("nonsense = 1\n")
        result = CliRunner().invoke(app, [verb, str(text_csv), "--config", str(tmp_path / f"{verb}.toml")], env=ENV)
        assert f"'nonsense' is not an option of `headstart {verb}`" in str(result.exception)
