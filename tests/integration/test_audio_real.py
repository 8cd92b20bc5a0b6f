"""The packaged sound-effects CNN (aisfx-cnn) on synthesised speech commands: 8 spoken words, 24 takes each, in
espeak-ng voices, speeds and pitches with sox noise and gain (tests/audio_synth.py, seeded)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import headstart
from headstart.runs.export import export

pytestmark = pytest.mark.integration
WORDS, TAKES = 8, 24


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    from audio_synth import synth_speech_commands, tools_missing

    if tools_missing():
        pytest.skip(f"{', '.join(tools_missing())} not installed (apt-get install espeak-ng sox)")
    return synth_speech_commands(tmp_path_factory.mktemp("commands") / "words", per_class=TAKES, seed=1)


def test_pretrained_sound_features_beat_random_ones_and_chance(commands):
    accuracy, seconds = {}, {}
    for model in ("aisfx-cnn", "random:aisfx-cnn"):
        start = time.perf_counter()
        result = headstart.fit(str(commands), model, "linear", progress=False, test_fraction=0.25, seed=0)
        seconds[model] = time.perf_counter() - start
        accuracy[model] = result.metrics["test"]["accuracy"]
    chance = 1 / WORDS
    print(f"\naudio linear, {WORDS} words x {TAKES}: test accuracy pretrained {accuracy['aisfx-cnn']:.3f} "
          f"({seconds['aisfx-cnn']:.1f} s), random {accuracy['random:aisfx-cnn']:.3f} "
          f"({seconds['random:aisfx-cnn']:.1f} s), chance {chance:.3f}")
    assert accuracy["aisfx-cnn"] >= accuracy["random:aisfx-cnn"] + 0.15
    assert accuracy["aisfx-cnn"] >= 5 * chance


def test_fine_tuning_runs_then_predicts_alike_after_reload_and_onnx(commands, tmp_path):
    torch.manual_seed(0)
    start = time.perf_counter()
    result = headstart.fit(str(commands), "aisfx-cnn", "lp-ft", out=str(tmp_path / "run"), progress=False,
                           test_fraction=0.25, seed=0, epochs=4, unfreeze=2)
    took = time.perf_counter() - start
    print(f"\naudio lp-ft (2 groups, 4 epochs): test accuracy {result.metrics['test']['accuracy']:.3f}, "
          f"probe {result.metrics.get('probe_val_accuracy', float('nan'))}, {took:.1f} s")
    assert result.metrics["test"]["accuracy"] >= 0.5
    inputs = str(commands / "left")
    before = result.predict(inputs)
    after = headstart.load_run(str(tmp_path / "run")).predict(inputs)
    assert [r["label"] for r in before] == [r["label"] for r in after]
    assert np.allclose([list(r["probabilities"].values()) for r in before],
                       [list(r["probabilities"].values()) for r in after], atol=1e-5)
    exported = export(str(tmp_path / "run"), "onnx", str(tmp_path / "onnx"))
    assert exported.max_abs_diff <= 1e-4

    import onnxruntime

    run = headstart.load_run(str(tmp_path / "run"))
    data = headstart.load_items(inputs)
    waves, _ = run.backbone.preprocessing.collate(False)([(item, 0) for item in data.items])
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    onnx_labels = session.run(None, {"waveform": waves.numpy()})[0].argmax(1)
    assert [run.classes[i] for i in onnx_labels] == [r["label"] for r in after]
