"""headstart.Classifier through scikit-learn's cross_val_score on real packaged data: MiniLM on BBC News."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score

import headstart
from headstart.data import bbc_news_folder, load_labelled

pytestmark = pytest.mark.integration


def test_cross_val_score_on_200_bbc_articles(tmp_path):
    data = load_labelled(bbc_news_folder())
    rng = np.random.default_rng(0)
    picked = [i for c in data.classes for i in rng.permutation([j for j, y in enumerate(data.labels) if y == c])[:40]]
    texts = [data.items[i] for i in picked]
    codes = np.array([data.classes.index(data.labels[i]) for i in picked])  # integer labels, 0..4
    clf = headstart.Classifier(model="minilm-l6", strategy="linear", cache_dir=str(tmp_path / "cache"))
    scores = cross_val_score(clf, texts, codes, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert scores.shape == (5,) and scores.mean() >= 0.85, scores
    fitted = clf.fit(texts, codes)
    assert fitted.classes_.tolist() == [0, 1, 2, 3, 4] and fitted.predict(texts[:5]).dtype.kind == "i"
    assert fitted.result_.metrics["backbone_forward_items"] == 0  # every text was cached by the folds
