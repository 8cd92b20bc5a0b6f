"""Flags made from declarations: FitConfig's fields and the strategies' options become the flags of fit, compare,
advise and audit, typed, with no second list to keep in step; a strategy option cannot shadow a shared one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

import headstart
from headstart.core import fields
from headstart.core.fields import FitFields, setting, shared_names
from headstart.strategies import STRATEGIES, Linear, register_strategy
from headstart.strategies.declared import DECLARED
from headstart.strategies.options import option, option_fields

from adversarial.cli_harness import cli, refused  # noqa: F401 (a fixture)


@dataclass(frozen=True)
class Wider(FitFields):
    """FitConfig's fields and one more, declared the way every field is."""

    ema_decay: float = setting(0.0, "Exponential moving average of the weights (0 = off).", "training")


@dataclass(frozen=True)
class Widest(Linear):
    """A throwaway strategy: the linear probe with one option more."""

    name: ClassVar[str] = "widest"
    temperature: float = option(1.0, "Softmax temperature of the throwaway head.")


@pytest.fixture
def throwaway(monkeypatch):
    """A FitConfig field and a registered strategy's option, each declared in one place; gone after the test."""
    monkeypatch.setattr(fields, "FitFields", Wider)
    monkeypatch.setitem(STRATEGIES, Widest.name, Widest)  # register_strategy replaces these; teardown removes them
    monkeypatch.setitem(DECLARED, Widest.name, Widest)
    register_strategy(Widest)


@pytest.mark.parametrize("verb", ["fit", "compare"])
def test_a_new_field_and_a_new_strategy_option_are_flags_of_fit_and_compare(cli, throwaway, verb):
    shown = cli([verb, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "--ema-decay <float> Exponential moving average of the weights (0 = off)." in shown.output
    assert "--temperature <float> widest: Softmax temperature of the throwaway head." in shown.output


def test_without_them_the_flags_are_not_there(cli):
    shown = cli(["fit", "--help"])
    assert "--ema-decay" not in shown.output and "--temperature" not in shown.output


def test_compare_takes_every_option_of_fit_but_its_own_budget_tracking_and_the_pool(cli):
    fit, compare = (cli([verb, "--help"]).output for verb in ("fit", "compare"))
    flags = [f"--{name.replace('_', '-')}" for name in shared_names() | {"lr", "head_lr", "unfreeze", "cs", "rank"}
             if name not in ("strategy", "budget", "track", "track_dir", "unlabelled")]
    assert all(flag in fit and flag in compare for flag in flags), [f for f in flags if f not in compare]
    assert "--lr RATE partial / full / lp-ft / lora / contrastive: Learning rate" in compare


def test_no_strategy_option_shares_a_name_with_a_shared_option():
    for name, cls in {**DECLARED, **STRATEGIES}.items():
        assert not set(option_fields(cls)) & shared_names(), name


def test_registering_a_strategy_whose_option_shadows_a_shared_one_is_refused():
    @dataclass(frozen=True)
    class Shadowing(Linear):
        name: ClassVar[str] = "shadowing"
        batch_size: int = option(16, "Texts per step.")

    with pytest.raises(headstart.ConfigError, match="declares the option.*batch_size.*FitConfig's fields"):
        register_strategy(Shadowing)
    assert "shadowing" not in STRATEGIES and "shadowing" not in DECLARED


def test_batch_size_reaches_contrastive_and_config_json_records_it(cli, text_csv, tiny_text_dir, tmp_path):
    """`fit --strategy contrastive --batch-size 4` trained with 16 texts a step, and config.json said 16."""
    runs = {}
    for name, extra in (("four", ["--batch-size", "4"]), ("default", [])):
        out = tmp_path / name
        done = cli(["fit", text_csv, "--model", tiny_text_dir, "--strategy", "contrastive", "--steps", "6",
                    "--out", out, "-q", *extra])
        assert done.exit_code == 0, done.output
        runs[name] = (json.loads((out / "config.json").read_text())["config"],
                      json.loads((out / "metrics.json").read_text())["strategy_info"])
    config, info = runs["four"]
    assert config["batch_size"] == 4 and info["batch_size"] == 4 and info["pairs"] == 6 * 6  # 6 pairs of 4 texts
    config, info = runs["default"]  # contrastive's own default: 16 texts a step; 24 texts are 16 + 8, 3 times
    assert config["batch_size"] == 16 and info["steps"] == 6 and info["pairs"] == 3 * (120 + 28)


def test_values_arrive_typed_and_a_bad_one_names_its_flag(cli, text_csv, tiny_text_dir, tmp_path):
    refused(cli(["fit", text_csv, "--model", tiny_text_dir, "--cs", "0.1,x", "--out", tmp_path / "r"]),
            "--cs 0.1,x: 'x' is not a number")
    wrong = cli(["fit", text_csv, "--model", tiny_text_dir, "--epochs", "two", "--out", tmp_path / "r"])
    assert wrong.exit_code == 2 and "Invalid value for '--epochs'" in wrong.output  # click's usage error


def test_the_declared_choices_are_those_fitconfig_accepts():
    """A field's ``choices`` (shown with its flag) are the values its check takes, no more and no fewer."""
    from headstart.core.choices import BALANCE_MODES, PRECISIONS, REGRESSION_LOSSES
    from headstart.core.config import BN_POLICIES
    from headstart.data.targets import TASK_CHOICES

    declared = {name: set(f.metadata["choices"]) for name, f in fields.shared_fields().items() if f.metadata["choices"]}
    assert declared == {"bn": set(BN_POLICIES), "task": set(TASK_CHOICES), "regression_loss": set(REGRESSION_LOSSES),
                        "balance": set(BALANCE_MODES), "precision": set(PRECISIONS)}
