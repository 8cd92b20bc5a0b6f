"""compare, advise, audit and export reached through the facade (``headstart.X``), as fit, predict and evaluate."""

from __future__ import annotations

import json

import pytest

import headstart


def test_compare_through_the_facade_saves_where_asked_and_refuses_to_overwrite(text_pairs, text_backbone, tmp_path):
    out = tmp_path / "comparison"
    result = headstart.compare(text_pairs, text_backbone, ["linear"], out=out, seeds=1, progress=False, cs=(1.0,))
    assert [row["strategy"] for row in result.rows] == ["linear"]
    assert json.loads((out / "comparison.json").read_text())["rows"][0]["strategy"] == "linear"
    with pytest.raises(headstart.RunError):
        headstart.compare(text_pairs, text_backbone, ["linear"], out=out, seeds=1, progress=False)


def test_advise_through_the_facade_ranks_and_recommends(text_pairs, text_backbone):
    advice = headstart.advise(text_pairs, [text_backbone], progress=False)
    assert [r["model"] for r in advice.ranking] == [text_backbone.name]
    assert advice.recommendation["strategy"] in headstart.STRATEGIES


def test_audit_through_the_facade_writes_its_folder(text_pairs, text_backbone, tmp_path):
    report = headstart.audit(text_pairs, text_backbone, out=tmp_path / "audit", folds=2, progress=False)
    assert sum(report.sizes.values()) == len(text_pairs[0])
    assert (tmp_path / "audit" / "audit.json").is_file()


def test_export_through_the_facade_checks_and_writes(text_pairs, text_backbone, tmp_path):
    headstart.fit(text_pairs, text_backbone, "linear", out=tmp_path / "run", progress=False)
    exported = headstart.export(tmp_path / "run", "onnx", tmp_path / "onnx")
    assert exported.max_abs_diff is not None and (tmp_path / "onnx" / "task.json").is_file()


def test_the_facade_names_are_public():
    for name in ("compare", "advise", "audit", "export"):
        assert name in headstart.__all__ and callable(getattr(headstart, name))
