"""Multi-label and regression on real data that ships in packages, against the trivial baselines.

- NRC Word-Emotion lexicon (nrclex 4.1.0): 6,468 English words, each with 1 to 10 of 10 affect labels.
- VADER lexicon (vadersentiment 3.3.2): 7,520 words, emoticons and slang, each with the mean valence (-4..4) ten
  people gave it.

MiniLM-L6's frozen features and the task's linear probe. Figures seen on this machine (1,500 sampled rows each,
20% test): NRC test micro-F1 0.545 against the best constant label set's 0.424; VADER test R² 0.52, Spearman 0.73,
against 0 for predicting the training mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import headstart
from headstart.data import nrc_emotions_jsonl, vader_valence_csv
from headstart.core.metrics import f1

pytestmark = pytest.mark.integration
ROWS = 1500


@pytest.fixture(scope="module")
def nrc(tmp_path_factory) -> pd.DataFrame:
    path = nrc_emotions_jsonl(tmp_path_factory.mktemp("nrc") / "nrc.jsonl")
    return pd.read_json(path, lines=True).sample(ROWS, random_state=0)


@pytest.fixture(scope="module")
def vader(tmp_path_factory) -> pd.DataFrame:
    path = vader_valence_csv(tmp_path_factory.mktemp("vader") / "vader.csv")
    return pd.read_csv(path, keep_default_na=False).sample(ROWS, random_state=0)


def best_constant_micro_f1(train: list[tuple], test: list[tuple], classes: list[str]) -> float:
    """Predict-the-prior for micro-F1: one label set for every item, the most frequent training labels (as many
    as maximise training micro-F1), scored on test."""
    def matrix(labels):
        return np.array([[c in names for c in classes] for names in labels])

    y_train, y_test = matrix(train), matrix(test)
    order = np.argsort(-y_train.mean(0))
    best_k = max(range(1, len(classes) + 1),
                 key=lambda k: f1(y_train, np.broadcast_to(np.isin(np.arange(len(classes)), order[:k]), y_train.shape)))
    chosen = np.isin(np.arange(len(classes)), order[:best_k])
    return f1(y_test, np.broadcast_to(chosen, y_test.shape))


def test_nrc_emotions_multi_label_beats_the_prior_and_its_thresholds_beat_a_half(nrc, tmp_path):
    result = headstart.fit(nrc, model="minilm-l6", strategy="linear", label_col="labels", test_fraction=0.2,
                           out=tmp_path / "nrc", progress=False)
    m = result.metrics
    assert m["task"] == "multi-label" and len(result.classes) == 10
    split = headstart.runs.folder.read_json(tmp_path / "nrc", "split.json")
    by_origin = dict(zip([f"DataFrame row {i}" for i in range(len(nrc))], map(tuple, nrc["labels"])))
    train = [by_origin[o] for o in split["train_origins"]]
    test = [by_origin[o] for o in split["test_origins"]]
    baseline = best_constant_micro_f1(train, test, result.classes)
    print(f"NRC: test micro-F1 {m['test']['micro_f1']:.3f} {m['test']['micro_f1_ci95']}, mAP {m['test']['map']:.3f}, "
          f"constant-set baseline {baseline:.3f}; val micro-F1 at 0.5 {m['thresholds']['val_micro_f1_at_0.5']:.3f}, "
          f"tuned {m['thresholds']['val_micro_f1_tuned']:.3f}")
    assert m["test"]["micro_f1"] > baseline + 0.08
    assert m["test"]["micro_f1_ci95"][0] > baseline
    assert m["thresholds"]["val_micro_f1_tuned"] > m["thresholds"]["val_micro_f1_at_0.5"]
    assert m["test"]["map"] > 0.4  # a random ranking's mAP is the labels' mean prevalence, about 0.2


def test_vader_valence_regression_beats_the_training_mean(vader, tmp_path):
    result = headstart.fit(vader, model="minilm-l6", strategy="linear", label_col="valence", test_fraction=0.2,
                           out=tmp_path / "vader", progress=False)
    test = result.metrics["test"]
    print(f"VADER: test R² {test['r2']:.3f} {test['r2_ci95']}, Spearman {test['spearman']:.3f}, MAE {test['mae']:.3f} "
          f"against the training mean's MAE {test['train_mean_baseline_mae']:.3f} and R² "
          f"{test['train_mean_baseline_r2']:.3f}")
    assert result.metrics["task"] == "regression"
    assert test["r2"] > test["train_mean_baseline_r2"] + 0.3 and test["r2_ci95"][0] > 0.2
    assert test["spearman"] > 0.55
    assert test["mae"] < 0.8 * test["train_mean_baseline_mae"]
    happy, awful = (row["value"] for row in result.predict(["wonderful", "horrible"]))
    assert happy > 1 > -1 > awful  # in the raters' own units, -4..4
