"""headstart.workflows.audit: confident learning, duplicates and leakage, near duplicates, outliers, balance, slices, CLI."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from typer.testing import CliRunner

from headstart.workflows.audit import (
    PREVIEWS, audit, audit_features, find_label_issues, fold_groups, l2_normalise,
    out_of_sample_proba, report_data, robust_z, similarity_scan, slice_metrics,
)
from headstart.cli.app import app
from headstart.data import load_data
from headstart.data.checks import Pool, cheap_checks, class_balance, exact_duplicates
from headstart.core.errors import DataError
from headstart.training.heads import fit_predict_proba
from headstart.report.render import ReportData, render_report

from conftest import COOKING, SPORTS

EVIL = "<script>alert('x')</script>"


def blobs(n_per_class: int = 150, classes: int = 4, dim: int = 16, seed: int = 0):
    """Well separated Gaussian clusters: features and true codes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, dim))
    codes = np.repeat(np.arange(classes), n_per_class)
    return centres[codes] + rng.normal(0, 1, (len(codes), dim)), codes


def flip(codes: np.ndarray, share: float, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(codes), int(share * len(codes)), replace=False)
    noisy = codes.copy()
    noisy[rows] = (codes[rows] + rng.integers(1, classes, len(rows))) % classes
    return noisy, rows


# ---------------------------------------------------------------- confident learning


def test_confident_learning_finds_flipped_labels_on_synthetic_features():
    feats, codes = blobs()
    noisy, flipped = flip(codes, 0.1, 4)
    proba, folds, c = out_of_sample_proba(feats, noisy, 4)
    assert folds == 5 and c > 0
    found = np.flatnonzero(find_label_issues(noisy, proba))
    hits = np.isin(found, flipped).sum()
    assert hits / len(flipped) >= 0.9 and hits / len(found) >= 0.9, (len(found), hits)


def test_confident_learning_flags_nothing_on_clean_separable_labels():
    feats, codes = blobs(seed=1)
    proba, _, _ = out_of_sample_proba(feats, codes, 4)
    assert find_label_issues(codes, proba).sum() <= 2


def test_label_issues_never_flag_an_item_the_probe_predicts_as_labelled():
    feats, codes = blobs(n_per_class=60, classes=3)
    noisy, _ = flip(codes, 0.2, 3)
    proba, _, _ = out_of_sample_proba(feats, noisy, 3)
    found = find_label_issues(noisy, proba)
    assert found.any() and (proba[found].argmax(1) != noisy[found]).all()


def test_fit_predict_proba_gives_distributions_with_zero_for_absent_classes():
    feats, codes = blobs(n_per_class=20, classes=3)
    keep = codes != 1
    proba = fit_predict_proba(feats[keep], codes[keep], feats, 3)
    assert proba.shape == (len(feats), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba[:, 1] == 0).all()


def audit_of(labels: list, feats: np.ndarray):
    """The audit of ``feats`` (row i: "list item i+1") labelled ``labels``, split as ``load_data`` splits them."""
    splits = load_data(([f"item number {i}" for i in range(len(labels))], labels))
    pool = Pool.of(splits)
    rows = [int(origin.split()[-1]) - 1 for origin in pool.origins]
    return audit_features(feats[rows], pool, splits)


def test_confident_learning_per_label_finds_flipped_labels_of_label_sets():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(600, 16))
    present = feats @ rng.normal(size=(3, 16)).T > 0.5  # three labels, each a half-space of the features
    flipped = set()
    for i in rng.choice(600, 30, replace=False):
        k = int(rng.integers(3))
        present[i, k] = ~present[i, k]
        flipped.add((int(i), "abc"[k]))
    labels = [[name for name, on in zip("abc", row) if on] for row in present]
    report = audit_of(labels, feats)
    assert report.task == "multi-label" and report.probe["main_metric"] == "micro_f1"
    found = {(int(i["origin"].split()[-1]) - 1, i["label_name"]) for i in report.label_issues}
    hits = len(found & flipped)
    # measured: 19 of 30 flips found among 23 findings; the same 22 items as cleanlab 2.9's
    # multilabel_classification.find_label_issues on these probabilities (flips near a label's boundary hide)
    assert hits / len(flipped) >= 0.5 and hits / len(found) >= 0.75, (len(found), hits)
    for issue in report.label_issues:
        row = int(issue["origin"].split()[-1]) - 1
        assert issue["given"] == ("present" if issue["label_name"] in labels[row] else "absent")
        assert {issue["given"], issue["suggested"]} == {"present", "absent"} and issue["self_confidence"] < 0.5
    assert [i["rank"] for i in report.label_issues] == list(range(1, len(found) + 1))
    checks = {r["check"]: r["count"] for r in report.summary()}
    assert checks["likely label errors (item, label pairs)"] == len(found)
    assert checks["labels with < 10 training examples"] == 0 and "imbalance (max/min label count)" in checks


def test_regression_audit_ranks_mistyped_targets_first_and_summarises_the_target():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(400, 16))
    target = feats @ rng.normal(size=16) + 0.5 * rng.normal(size=400)
    typos = rng.choice(400, 5, replace=False)
    target[typos] += 10 * target.std() * rng.choice([-1, 1], 5)
    report = audit_of([float(v) for v in target], feats)
    assert report.task == "regression" and report.classes == []
    top = [int(i["origin"].split()[-1]) - 1 for i in report.label_issues[:5]]
    assert sorted(top) == sorted(typos.tolist()) and len(report.label_issues) <= 10
    first = report.label_issues[0]
    assert first["residual"] == pytest.approx(first["label"] - first["predicted"], abs=1e-5)
    assert abs(first["z"]) >= abs(report.label_issues[-1]["z"]) > 3.5
    target_summary = report.balance["target"]
    assert target_summary["n"] == report.sizes["train"] == sum(target_summary["histogram"]["counts"])
    assert target_summary["min"] <= target_summary["median"] <= target_summary["max"]
    checks = [r["check"] for r in report.summary()]
    assert "large residuals (likely wrong targets)" in checks and not any("imbalance" in c for c in checks)
    assert report.probe["spearman"] > 0.8  # the probe ranks the items well; the typos only spoil its R²
    tables = {t["title"]: t for t in report_data(report).audit["tables"]}
    assert "Large residuals (largest first)" in tables and "Target (train, 320 items)" in tables


def test_fold_groups_pool_strata_too_small_for_the_folds():
    assert fold_groups(["a"] * 6 + ["b"] * 3 + ["c"] * 2, 5) == ["a"] * 6 + ["(rare)"] * 5
    assert fold_groups(["a"] * 6 + ["b"] * 2, 5) == ["a"] * 8  # still too few: they join the largest
    assert fold_groups(["a"] * 5 + ["b"] * 5, 5) == ["a"] * 5 + ["b"] * 5


# ---------------------------------------------------------------- duplicates, leakage, near duplicates, outliers


def test_exact_duplicates_group_rows_and_tell_leakage_from_within_split():
    groups = exact_duplicates(["a", "b", "a", "c", "b", "d"], ["train", "train", "train", "test", "test", "val"])
    assert [(g["rows"], g["kind"]) for g in groups] == [([0, 2], "within train"), ([1, 4], "cross-split")]


def test_cheap_checks_name_the_duplicated_and_leaked_items():
    texts, labels = SPORTS + COOKING, ["sports"] * 15 + ["cooking"] * 15
    train = (texts + [SPORTS[0]], labels + ["sports"])  # list item 1 = list item 31
    test = ([SPORTS[3], "A brand new sentence about tennis"], ["sports", "sports"])  # test list item 1 leaks
    splits = load_data(train, val=(texts[5:7], labels[5:7]), test=test)
    warnings = cheap_checks(splits)
    leak = next(w for w in warnings if "more than one split" in w)
    assert "test list item 1" in leak and "list item 4 (train" in leak
    assert "val list item 1" in leak  # val copies train items too
    within = next(w for w in warnings if "more than once in the training data" in w)
    assert "list item 1 (train" in within and "list item 31 (train" in within
    assert not any("imbalanced" in w for w in warnings)


def test_cheap_checks_are_quiet_on_clean_balanced_data():
    texts, labels = SPORTS + COOKING, ["sports"] * 15 + ["cooking"] * 15
    assert cheap_checks(load_data((texts, labels))) == []


def test_imbalance_and_tiny_classes_are_flagged():
    texts = SPORTS + COOKING[:4]
    labels = ["sports"] * 15 + ["cooking"] * 4
    splits = load_data((texts, labels), val_fraction=0.2)
    balance = class_balance(splits)
    assert balance["counts"] == {"cooking": 3, "sports": 12} and balance["ratio"] == 4.0
    assert balance["imbalanced"] and balance["few"] == ["cooking"]
    warnings = cheap_checks(splits, fine_tuning=True)
    assert any("imbalanced" in w and "'sports' has 12" in w for w in warnings)
    assert any("'cooking' (3)" in w and "fewer than 10" in w for w in warnings)
    assert not any("fewer than 10" in w for w in cheap_checks(splits))  # advice about fine-tuning, only there


def test_near_duplicates_find_perturbed_copies_and_nothing_else():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 64))
    copies = base[:10] + rng.normal(0, 0.02, (10, 64))  # ~0.9998 cosine to their originals
    unit = l2_normalise(np.vstack([base, copies]))
    pairs, _ = similarity_scan(unit, 0.98, 3, block=37)  # a block size that does not divide n
    assert sorted((i, j) for i, j, _ in pairs) == [(i, 300 + i) for i in range(10)]
    assert all(s > 0.99 for *_, s in pairs)


def test_blocked_scan_matches_the_full_similarity_matrix():
    unit = l2_normalise(np.random.default_rng(1).normal(size=(120, 8)))
    pairs, knn = similarity_scan(unit, 0.8, 5, block=16)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    want = {(i, j) for i, j in zip(*np.nonzero(full >= 0.8)) if i < j}
    assert {(i, j) for i, j, _ in pairs} == want
    np.testing.assert_allclose(knn, np.sort(1 - np.sort(full, 1)[:, ::-1][:, :5], 1), atol=1e-5)


def test_outlier_score_flags_an_injected_far_point():
    rng = np.random.default_rng(0)
    cloud = rng.normal(0, 1, (200, 16)) + 10  # unit vectors all point roughly the same way
    far = -10 + rng.normal(0, 1, (1, 16))
    unit = l2_normalise(np.vstack([cloud, far]))
    _, knn = similarity_scan(unit, 1.1, 10)
    z = robust_z(knn.mean(1))
    assert int(np.argmax(z)) == 200 and z[200] > 10 * max(3.5, np.sort(z)[-2])  # far above the cloud's own tail


def test_slice_metrics_count_groups_and_pick_the_worst():
    codes = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    predicted = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    out = slice_metrics(codes, predicted, ["a", "a", "a", "a", "b", "b", None, "c"], "site")
    by = {r["group"]: r for r in out["rows"]}
    assert out["worst"]["group"] == "b" and by["b"]["accuracy"] == 0.0 and by["a"]["n"] == 4
    assert by["(missing)"]["n"] == 1 and by["a"]["ci95"][1] == 1.0 and by["a"]["ci95"][0] < 1


# ---------------------------------------------------------------- end to end on a tiny real model


@pytest.fixture
def grouped_csv(tmp_path):
    """topics with a 'site' column: site 'north' gets the sports/cooking texts right, 'south' has them swapped."""
    path = tmp_path / "grouped.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "site"])
        for i, (sport, cook) in enumerate(zip(SPORTS, COOKING)):
            site = "south" if i < 5 else "north"
            writer.writerow([sport, "cooking" if site == "south" else "sports", site])
            writer.writerow([cook, "sports" if site == "south" else "cooking", site])
        writer.writerow([SPORTS[0], "sports", "north"])  # an exact duplicate of line 2's text
    return path


def test_audit_of_a_table_with_a_group_column(grouped_csv, text_backbone, tmp_path):
    report = audit(str(grouped_csv), text_backbone, group_col="site", out=tmp_path / "audit", progress=False)
    assert report.sizes["train"] + report.sizes["val"] == 31
    rows = {r["group"]: r for r in report.slices["rows"]}
    assert rows["north"]["n"] == 21 and rows["south"]["n"] == 10
    assert report.slices["worst"]["group"] == "south"  # its labels contradict the rest
    dup = [g for g in report.exact_duplicates if any(i["origin"].endswith("line 32") for i in g["items"])]
    assert len(dup) == 1 and {i["origin"] for i in dup[0]["items"]} == {f"{grouped_csv} line 2",
                                                                           f"{grouped_csv} line 32"}
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["slices"]["worst"]["group"] == "south" and saved["probe"]["folds"] >= 2
    html = (tmp_path / "audit" / "report.html").read_text()
    assert 'id="audit"' in html and "Slices of &#x27;site&#x27;" in html
    page = Page(html)
    plots = {attrs["alt"] for attrs in page.named("img") if attrs["src"].startswith("data:image/png;base64,")}
    assert plots == {"Likely label errors (most likely first)", "Outliers", "Slices of 'site' (cross-validated probe)"}
    previews = [text for tag, text in page.texts if tag == "q"]  # every flagged item's text, shown (up to the cap)
    assert report.label_issues and not page.named("img", "thumb") and len(previews) >= len(report.label_issues)
    assert SPORTS[0] in previews and "data:image" not in json.dumps(saved)
    statuses = [r["status"] for r in report.summary()]
    assert page.badges() == statuses and "warn" in statuses and "ok" in statuses


def test_audit_report_of_an_image_folder_shows_thumbnails_capped_per_table(image_folder, image_backbone, tmp_path):
    report = audit(str(image_folder), image_backbone, out=tmp_path / "audit", progress=False)
    html = (tmp_path / "audit" / "report.html").read_text()
    page = Page(html)
    thumbs = page.named("img", "thumb")
    assert report.near_duplicate_count > PREVIEWS // 2 and report.label_issues  # the near-duplicate table hits the cap
    shown = min(2 * min(200, len(report.near_duplicates)), PREVIEWS) + min(len(report.label_issues), PREVIEWS)
    assert len(thumbs) == shown + min(len(report.outliers), PREVIEWS)
    assert all(t["src"].startswith("data:image/jpeg;base64,") for t in thumbs)
    assert {attrs["alt"] for attrs in page.named("img") if attrs not in thumbs} >= {
        "Likely label errors (most likely first)", "Outliers"}
    assert "data:image" not in (tmp_path / "audit" / "audit.json").read_text()
    assert len(html) < 250_000 and "http://" not in html and "https://" not in html


def test_audit_report_escapes_evil_texts_and_labels(text_backbone, tmp_path):
    evil_text = f"{EVIL} {SPORTS[0]}"
    items = SPORTS + COOKING + [evil_text, evil_text]  # an exact duplicate, shown with its preview
    report = audit((items, ["sports"] * 15 + [EVIL] * 15 + ["sports", EVIL]), text_backbone,
                   out=tmp_path / "audit", progress=False)
    assert report.exact_duplicates
    html = (tmp_path / "audit" / "report.html").read_text()
    page = Page(html)
    assert not page.named("script") and EVIL not in html
    assert evil_text in [text for tag, text in page.texts if tag == "q"]
    assert page.all_text().count(EVIL) >= 3  # the preview twice and the labels


def test_audit_refuses_a_missing_group_column(grouped_csv, text_backbone):
    with pytest.raises(DataError, match="no column 'hospital'"):
        audit(str(grouped_csv), text_backbone, group_col="hospital", progress=False)


def test_audit_slices_a_pair_with_groups(text_pairs, text_backbone):
    groups = ["a" if i % 3 else "b" for i in range(len(text_pairs[0]))]
    report = audit(text_pairs, text_backbone, groups=groups, progress=False)
    assert sum(r["n"] for r in report.slices["rows"]) == len(groups)


def test_cli_audit_prints_tables_and_writes_json(grouped_csv, tiny_text_dir, tmp_path):
    out = tmp_path / "cli-audit"
    result = CliRunner().invoke(app, ["audit", str(grouped_csv), "--model", str(tiny_text_dir), "--group-col", "site",
                                      "--out", str(out), "-q"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "exact duplicates" in result.output and "Slices of 'site'" in result.output
    assert "line 32" in result.output
    saved = json.loads((out / "audit.json").read_text())
    assert saved["exact_duplicates"] and saved["summary"][0]["check"].startswith("exact duplicates")
    again = CliRunner().invoke(app, ["audit", str(grouped_csv), "--model", str(tiny_text_dir), "--out", str(out),
                                     "--json", "-q"])
    assert again.exit_code != 0  # refuses to overwrite without --overwrite
    result = CliRunner().invoke(app, ["audit", str(grouped_csv), "--model", str(tiny_text_dir), "--out", str(out),
                                      "--json", "-q", "--overwrite"])
    assert result.exit_code == 0 and json.loads(result.stdout)["out"] == str(out)  # warnings go to stderr


class Page(HTMLParser):
    """Start tags and the text inside each tag, as a browser's tokenizer sees them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[tuple[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append((self.tags[-1][0] if self.tags else "", data))

    def named(self, tag: str, cls: str | None = None) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag and (cls is None or attrs.get("class") == cls)]

    def badges(self) -> list[str]:
        spans = self.named("span")
        return [attrs["class"].split()[1] for attrs in spans if attrs.get("class", "").startswith("badge ")]

    def all_text(self) -> str:
        return " ".join(text for _, text in self.texts)


def test_report_renders_an_escaped_audit_section():
    data = ReportData("t", "s", runs=[], audit={"lede": "3 items", "tables": [
        {"title": "Outliers", "columns": ["item"], "rows": [["<b>x.csv line 3</b>"]]}]})
    html = render_report(data)
    assert 'id="audit"' in html and "&lt;b&gt;x.csv line 3&lt;/b&gt;" in html and "<b>x.csv" not in html
    assert 'id="audit"' not in render_report(ReportData("t", "s", runs=[]))


def test_label_findings_of_a_weak_probe_carry_a_caveat():
    from headstart.workflows.audit import weak_probe_caveat

    assert "many findings will be its own mistakes" in weak_probe_caveat({"main_metric": "micro_f1", "micro_f1": 0.77})
    assert weak_probe_caveat({"main_metric": "accuracy", "accuracy": 0.95}) == ""
    assert weak_probe_caveat({"main_metric": "r2"}) == ""
