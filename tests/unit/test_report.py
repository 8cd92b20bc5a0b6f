"""report.html: sections, embedded plots, escaping, self-containment, and a real run rendered."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import headstart
from headstart.core.metrics import classification_metrics
from headstart.report import ReportData, render_report, render_run_report

EVIL = "<script>alert('x')</script>"
CLASSES = ["cat", "dog", "bird", EVIL, "price $5 & up"]
DATA_URI_PNG = "data:image/png;base64,"
DATA_URI_JPEG = "data:image/jpeg;base64,"


class Page(HTMLParser):
    """Tags, attributes and text of an HTML page, as a browser's tokenizer sees them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if attrs.get("id")}

    def named(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]

    def all_text(self) -> str:
        return " ".join(self.text)


def fake_metrics(seed: int, accuracy: float, test: bool = True) -> dict:
    """metrics.json as api.fit writes it, from predictions that are right about ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> dict:
        y = rng.integers(0, len(CLASSES), n)
        wrong = rng.random(n) > accuracy
        pred = np.where(wrong, rng.integers(0, len(CLASSES), n), y)
        return classification_metrics(y, pred, CLASSES)

    metrics = {"val": split(60), "trainable_params": 1_685_187, "total_params": 2_227_715,
               "trainable_share": 0.756, "seconds": 84.2, "peak_rss_mb": 1830.5, "backbone_forward_items": 240,
               "device": "cuda", "train_precision": "bf16", "feature_precision": "bf16", "peak_gpu_mb": 912.0}
    if test:
        metrics["test"] = split(150)
    return metrics


def epoch_history(epochs: int = 6) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.6 / e, "train_accuracy": min(1.0, 0.4 + 0.12 * e),
             "val_loss": 1.2 / e ** 0.5, "val_accuracy": min(0.95, 0.45 + 0.08 * e), "seconds": 12.5}
            for e in range(1, epochs + 1)]


def probe_history() -> list[dict]:
    return [{"C": c, "val_accuracy": a, "val_loss": loss}
            for c, a, loss in ((0.001, 0.55, 1.4), (0.01, 0.7, 1.0), (0.1, 0.82, 0.7), (1.0, 0.8, 0.72))]


def make_runs() -> list[dict]:
    config = {"model": "mobilenetv2", "strategy": "partial", "epochs": 10}
    return [
        {"name": "pets-partial", "strategy": "partial", "metrics": fake_metrics(0, 0.85),
         "history": epoch_history(), "config": {"config": config}},
        {"name": "pets-linear", "strategy": "linear", "metrics": fake_metrics(1, 0.7, test=False),
         "history": probe_history(), "config": dict(config, strategy="linear")},
    ]


def stat(mean: float, half: float = 0.04) -> dict:
    return {"mean": mean, "ci95": [mean - half, min(1.0, mean + half)]}


def make_comparison() -> dict:
    def row(strategy, acc, trainable, seconds, status="ok", reason=""):
        return {"strategy": strategy, "trainable_params": trainable, "trainable_share": trainable / 2.2e6,
                "seconds": seconds, "peak_rss_mb": 1500.0, "val_accuracy": stat(acc), "val_macro_f1": stat(acc - 0.03),
                "test_accuracy": stat(acc - 0.01), "gap": {"mean": 0.08}, "status": status, "reason": reason}

    skipped = {"strategy": "full", "status": "skipped", "reason": f"needs 6 GB of GPU memory; {EVIL}",  # as compare
               "trainable_params": 0, "val_accuracy": {"mean": float("nan"), "ci95": [float("nan")] * 2, "n": 0}}
    curve = {name: [{"fraction": f, "n": int(400 * f), "accuracy": stat(base + 0.2 * f, 0.08 - 0.05 * f)}
                    for f in (0.1, 0.25, 0.5, 1.0)] for name, base in (("linear", 0.6), ("partial", 0.55))}
    return {"rows": [row("linear", 0.78, 6405, 9.5), row("partial", 0.84, 1_685_187, 310.0),
                     row("lp-ft", 0.81, 1_685_187, 250.0, "stopped", "time budget reached after 3 epochs"),
                     skipped],
            "learning_curve": curve, "shots": None,
            "ran": "linear: 3 seeds, partial: 3 seeds, lp-ft: 1 of 3 seeds, full: skipped"}


def make_report(**changes) -> ReportData:
    data = dict(title=f"Pets {EVIL}", subtitle="mobilenetv2 on 5 classes", runs=make_runs(),
                comparison=make_comparison(),
                recommendation={"strategy": "partial", "reasons": ["6 points better than linear", EVIL],
                                "numbers": {"partial val accuracy": 0.84, "linear seconds": 9.5, EVIL: 3}},
                notes=["3 items were skipped (unreadable images)", f"class {EVIL} has 4 examples"],
                meta={"Data": f"/data/{EVIL}/pets — 400 train"})
    data.update(changes)
    return ReportData(**data)


@pytest.fixture(scope="module")
def full_html() -> str:
    """The full report (two runs, comparison, recommendation, notes), rendered once for this module."""
    return render_report(make_report())


def test_full_report_has_every_section_and_plot(full_html):
    html = full_html
    page = Page(html)
    assert {"header", "recommendation", "comparison", "summary", "run-0", "run-1", "notes"} <= page.ids()
    images = page.named("img")
    # comparison dot plot + learning curve + (training curves + confusion matrix) for each of 2 runs
    assert len(images) == 6
    assert all(img["src"].startswith(DATA_URI_PNG) for img in images)
    assert html.count(f'<img src="{DATA_URI_PNG}') == 6
    text = page.all_text()
    for heading in ("Results", "Transfer learning vs fine-tuning", "Training curves", "Notes", "Recommendation"):
        assert heading in text
    assert len(page.named("article")) == 2  # one summary card per run
    assert "84.0%" in text and "needs 6 GB of GPU memory" in text and "time budget reached" in text
    assert "nan" not in text.lower()  # a skipped strategy's NaN accuracy is not shown as a number


def test_comparison_survives_a_json_round_trip():
    comparison = json.loads(json.dumps(make_comparison()))  # NaN travels as JSON NaN, as comparison.json holds it
    comparison["rows"][1]["test_accuracy"] = None
    html = render_report(make_report(runs=[], comparison=comparison, recommendation=None, notes=[]))
    page = Page(html)
    assert len(page.named("img")) == 2  # accuracy/time overview and learning curve
    assert {"comparison", "learning-curve"} <= page.ids() and "summary" not in page.ids()
    assert "nan" not in page.all_text().lower()


def test_report_is_self_contained(full_html):
    html = full_html
    assert "http://" not in html and "https://" not in html
    page = Page(html)
    assert not page.named("script") and not page.named("link") and not page.named("iframe")
    assert "url(" not in html
    assert all("src" not in attrs or attrs["src"].startswith("data:") for _, attrs in page.tags)


def test_user_strings_are_escaped_everywhere(full_html):
    html = full_html
    page = Page(html)
    assert not page.named("script"), "a class name became a script element"
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    text = page.all_text()
    assert text.count(EVIL) >= 6  # title, data fact, reason, number name, skipped row, notes, class tables
    assert "price $5 & up" in text


def test_per_class_table_marks_the_weakest_classes():
    html = render_report(make_report(comparison=None, recommendation=None))
    page = Page(html)
    weak_rows = [attrs for attrs in page.named("tr") if attrs.get("class") == "weak"]
    assert 1 <= len(weak_rows) <= 2 * 2  # a quarter of 5 classes, rounded up, per run (ties may add)
    assert "comparison" not in page.ids() and "recommendation" not in page.ids()
    assert len(page.named("img")) == 4


def test_sparse_report_renders_without_optional_parts():
    run = {"name": "bare", "strategy": "linear", "metrics": {"val": fake_metrics(3, 0.9)["val"]},
           "history": [], "config": {}}
    html = render_report(ReportData(title="t", subtitle="s", runs=[run]))
    page = Page(html)
    assert len(page.named("img")) == 1  # the confusion matrix; no history, no comparison
    assert "No training history was recorded." in page.all_text()
    assert "notes" not in page.ids()


def write_run_dir(folder: Path, run: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(run["metrics"]))
    (folder / "config.json").write_text(json.dumps(run["config"] if "config" in run["config"]
                                                   else {"config": run["config"]}))
    (folder / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in run["history"]))
    (folder / "split.json").write_text(json.dumps({"sizes": {"train": 300, "val": 60, "test": 150},
                                                   "train_origins": ["/d/pets/a.png", "/d/pets/b.png"]}))
    return folder


@pytest.mark.parametrize("which", [0, 1])
def test_render_run_report_writes_report_html(tmp_path, which):
    run_dir = write_run_dir(tmp_path / "run", make_runs()[which])
    path = render_run_report(run_dir)
    assert path == run_dir / "report.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert len(page.named("img")) == 2  # training curves (epochs or C) and the confusion matrix
    text = page.all_text()
    assert "/d/pets" in text and "300 train" in text and "mobilenetv2" in text
    assert not list(run_dir.glob(".report*"))  # no temporary file left behind
    if which == 1:  # validation only: the note says the figure is optimistic
        assert "no test split" in text


def test_real_fit_run_renders(tmp_path):
    rng = np.random.default_rng(0)
    for name, rgb in {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(rgb) + rng.integers(-25, 26, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    torch.manual_seed(0)
    headstart.fit(str(tmp_path / "data"), "random:mobilenetv2", "partial", image_size=32, epochs=2, batch_size=8,
                  progress=False, cache_dir=str(tmp_path / "c"), out=tmp_path / "run")
    path = render_run_report(tmp_path / "run")
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    assert {"header", "summary", "run-0", "notes", "misclassified"} <= page.ids()
    assert html.count(f'<img src="{DATA_URI_PNG}') == 3  # curves, confusion matrix, reliability diagram
    assert "random:mobilenetv2" in page.all_text() and "partial" in page.all_text()
    assert "Calibration" in page.all_text() and "temperature scaling (T = " in page.all_text()
    assert "https://" not in html and "http://" not in html
    # the gallery: this 2-epoch random model gets 4 of its 6 validation squares wrong, each shown as a thumbnail
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    mistakes = metrics["misclassified"]
    assert metrics["val"]["accuracy"] < 1 and len(mistakes) == round(6 * (1 - metrics["val"]["accuracy"])) == 4
    assert all(m["true"] != m["predicted"] and m["origin"].endswith(".png") for m in mistakes)
    assert [m["probability"] for m in mistakes] == sorted((m["probability"] for m in mistakes), reverse=True)
    thumbs = [img["src"] for img in page.named("img") if img.get("class") == "thumb"]
    assert thumbs == [m["thumbnail"] for m in mistakes] and all(t.startswith(DATA_URI_JPEG) for t in thumbs)
    assert (tmp_path / "run" / "metrics.json").stat().st_size < 8 * 1024  # 4 thumbnails of ~0.6 kB each, the
    # calibration's reliability bins ~1.5 kB
    for name in (tmp_path / "data").iterdir():  # the run folder renders its gallery without the data
        for image in name.iterdir():
            image.unlink()
    again = Page(render_run_report(tmp_path / "run").read_text(encoding="utf-8"))
    assert [img["src"] for img in again.named("img") if img.get("class") == "thumb"] == thumbs


def test_a_fit_without_mistakes_has_no_gallery(tmp_path, image_folder, image_backbone):
    result = headstart.fit(str(image_folder), image_backbone, "linear", progress=False, out=tmp_path / "run")
    assert result.metrics["val"]["accuracy"] == 1.0 and result.metrics["misclassified"] == []
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "misclassified" not in Page(html).ids() and 'class="thumb"' not in html


def test_a_text_fit_gallery_shows_escaped_previews_and_stays_small(tmp_path, text_backbone):
    """The same text twice in validation, once per label: one of the two is a mistake whatever the model says."""
    from conftest import COOKING, SPORTS

    long_evil = f"{EVIL} " + "and then some more words " * 20
    train = (SPORTS[:12] + COOKING[:12], ["sports"] * 12 + [EVIL] * 12)
    val = (SPORTS[12:] + COOKING[12:] + [long_evil] * 2, ["sports"] * 3 + [EVIL] * 3 + ["sports", EVIL])
    result = headstart.fit(train, text_backbone, "linear", val=val, progress=False, out=tmp_path / "run")
    mistakes = result.metrics["misclassified"]
    assert 1 <= len(mistakes) <= 8 and any(m["origin"] in ("val list item 7", "val list item 8") for m in mistakes)
    assert all(len(m["text"]) <= 160 and "thumbnail" not in m for m in mistakes)
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    assert "misclassified" in page.ids() and not page.named("script") and EVIL not in html
    previews = [m["text"] for m in mistakes if m["text"].startswith(EVIL)]
    assert previews and previews[0].endswith("…") and previews[0] in page.all_text()
    assert (tmp_path / "run" / "metrics.json").stat().st_size < 8 * 1024


def test_misclassified_keeps_the_most_confident_mistakes_within_the_cap():
    from headstart.data import Dataset
    from headstart.report.previews import GALLERY_SIZE, gallery
    from headstart.tasks import SingleLabel

    rng = np.random.default_rng(0)
    n = 100
    ds = Dataset([f"text {i}" for i in range(n)], ["a"] * n, "text", [f"list item {i + 1}" for i in range(n)])
    logits = rng.normal(0, 3, (n, 3))
    kept = gallery(ds, SingleLabel(["a", "b", "c"]).mistakes(ds.labels, logits, GALLERY_SIZE))
    wrong = np.flatnonzero(logits.argmax(1) != 0)
    assert len(wrong) > GALLERY_SIZE and len(kept) == GALLERY_SIZE
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    best = sorted(wrong, key=lambda i: -proba[i].max())[:GALLERY_SIZE]
    assert [m["origin"] for m in kept] == [f"list item {i + 1}" for i in best]
    assert all(m["true"] == "a" and m["predicted"] in ("b", "c") and m["text"].startswith("text") for m in kept)
    assert list(kept[0]) == ["origin", "true", "predicted", "probability", "text"]


def test_thumbnails_are_small_jpegs_for_every_kind_of_image_and_none_for_a_missing_file(tmp_path):
    from headstart.report.previews import thumbnail

    noise = np.random.default_rng(0).integers(0, 256, (600, 400, 3), dtype=np.uint8)  # the worst case for JPEG
    Image.fromarray(noise).save(tmp_path / "noise.png")
    for item in (str(tmp_path / "noise.png"), Image.fromarray(noise), noise, noise[:, :, 0]):
        uri = thumbnail(item)
        data = base64.b64decode(uri.split(",", 1)[1])
        assert uri.startswith(DATA_URI_JPEG) and len(data) <= 3000  # pure noise at 64 px: 2.7 kB
        assert Image.open(io.BytesIO(data)).size == (43, 64)
    assert thumbnail(str(tmp_path / "gone.png")) is None


def test_gallery_and_audit_items_escape_text_and_drop_unsafe_image_sources():
    run = make_runs()[0]
    run["metrics"]["misclassified"] = [
        {"origin": f"/d/{EVIL}.png", "true": EVIL, "predicted": "cat", "probability": 0.97,
         "thumbnail": "javascript:alert(1)"},
        {"origin": "list item 3", "true": "dog", "predicted": EVIL, "probability": 0.8, "text": f"hello {EVIL}"},
        {"origin": "x.png", "true": "dog", "predicted": "cat", "probability": 0.7,
         "thumbnail": DATA_URI_JPEG + 'AAAA" onerror="alert(1)'}]
    item = {"origin": f"{EVIL}.csv line 2", "split": "train", "label": EVIL, "text": EVIL,
            "thumbnail": "data:text/html;base64,PHNjcmlwdD4="}
    audit = {"lede": "x", "tables": [{"title": "Checks", "columns": ["check", "count", "status"],
                                      "rows": [["near duplicates", 3, {"status": "warn"}], ["outliers", 0,
                                                                                           {"status": "ok"}]]},
                                     {"title": "Outliers", "columns": ["item"], "rows": [[{"items": [item]}]]}]}
    html = render_report(make_report(runs=[run], comparison=None, audit=audit))
    page = Page(html)
    assert not page.named("script") and EVIL not in html and "onerror" not in html and "javascript:" not in html
    assert not [img for img in page.named("img") if img.get("class") == "thumb"]  # all three sources were unsafe
    assert page.all_text().count(EVIL) >= 6 + 3 + 3  # as before, plus the gallery's and the audit item's
    badges = [attrs["class"] for attrs in page.named("span") if "badge" in attrs.get("class", "")]
    assert "badge warn" in badges and "badge ok" in badges


def test_an_auto_run_report_says_what_auto_checked_and_kept_in_words(tmp_path):
    run = make_runs()[0]
    advice = {"recommendation": {"strategy": "partial", "candidates": ["partial", "full"],
                                 "reasons": ["The probe's learning curve still rises"],
                                 "numbers": {"examples_per_class_min": 30, "probe_ci95": [0.8, 0.9], "budget_s": None}}}
    run["metrics"]["strategy_info"] = {"auto": {"recommended": "partial", "kept": "full", "advice": advice,
                                                "val_accuracy": {"linear": 0.81, "partial": 0.86, "full": 0.9}}}
    run["metrics"]["data_warnings"] = ["3 validation items duplicate training items"]
    page = Page(render_run_report(write_run_dir(tmp_path / "run", run)).read_text(encoding="utf-8"))
    text = page.all_text()
    assert "recommendation" in page.ids()
    assert "auto fitted linear 81.0%, partial 86.0%, full 90.0% (validation accuracy) and kept full." in text
    assert "fewest examples in a class" in text and "0.8–0.9" in text
    assert "examples_per_class_min" not in text and "budget" not in text  # raw keys and empty numbers stay out
    assert "3 validation items duplicate training items" in text  # fit's data checks reach the notes


def test_an_lp_ft_run_report_shows_its_probe_stage(tmp_path):
    run = make_runs()[0]
    run["metrics"]["strategy_info"] = {"probe": {"C": 0.1, "val_accuracy": 0.82}}
    text = Page(render_run_report(write_run_dir(tmp_path / "run", run)).read_text(encoding="utf-8")).all_text()
    assert "LP-FT first fitted a linear probe (C = 0.1, validation accuracy 82.0%)" in text


# ---------------------------------------------------------------- multi-label and regression runs

def topic_texts() -> list[str]:
    """60 short texts: the 30 sports and cooking sentences, each also with a word added."""
    from conftest import COOKING, SPORTS

    return [*SPORTS, *COOKING, *(f"{t} today" for t in SPORTS), *(f"{t} today" for t in COOKING)]


def section(html: str, anchor: str) -> str:
    """The HTML from the element with ``id=anchor`` to the next ``<h3`` (or the end of its section)."""
    start = html.index(f'id="{anchor}"')
    ends = [i for i in (html.find("<h3", start), html.find("</section>", start)) if i > 0]
    return html[start:min(ends)]


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory, text_backbone) -> tuple[dict, str]:
    """A linear multi-label fit of the tiny BERT with a test split: its metrics.json and report.html."""
    texts = topic_texts()
    labels = [["sports", "outdoor"] if i % 3 == 0 else ["sports"] if i % 30 < 15 else ["cooking", "sweet"]
              if i % 4 == 0 else ["cooking"] for i in range(len(texts))]
    for i in range(2, len(texts), 11):
        labels[i] = []
    out = tmp_path_factory.mktemp("multi") / "run"
    headstart.fit((texts, labels), text_backbone, "linear", test_fraction=0.2, progress=False, out=out)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, render_run_report(out).read_text(encoding="utf-8")


def regression_values() -> list[float]:
    """60 distinct numbers, sports sentences 4 higher than cooking ones."""
    return [round(3.0 + 0.25 * i + (4.0 if (i % 30) < 15 else 0.0), 2) for i in range(60)]


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, text_backbone) -> tuple[dict, str, Path]:
    """A linear regression fit of the tiny BERT (60 distinct values) with a test split."""
    out = tmp_path_factory.mktemp("regression") / "run"
    headstart.fit((topic_texts(), regression_values()), text_backbone, "linear", test_fraction=0.2, progress=False,
                  out=out)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, render_run_report(out).read_text(encoding="utf-8"), out


def test_a_multi_label_report_shows_its_scores_labels_thresholds_and_worst_items(multi_label_run):
    from headstart.report import scores

    metrics, html = multi_label_run
    page = Page(html)
    assert metrics["task"] == "multi-label" and metrics.get("test")
    assert {"summary", "scores", "per-label", "thresholds"} <= page.ids() and "misclassified" not in page.ids()
    test = metrics["test"]
    card = Page(html[html.index('<article class="card"'):html.index("</article>")]).all_text()
    assert scores.value("micro_f1", test["micro_f1"]) in card and "test micro-F1 · 95% CI" in card
    assert scores.interval("micro_f1", test["micro_f1_ci95"]) in card
    assert "Macro-F1" in card and "mAP" in card and "Subset accuracy" in card
    table = Page(section(html, "scores")).all_text()
    for key in ("micro_f1", "macro_f1", "map", "subset_accuracy"):  # each headline score with its interval
        assert scores.value(key, test[key]) in table and scores.interval(key, test[f"{key}_ci95"]) in table
    labels = Page(section(html, "per-label"))
    assert "F1 and average precision per label" in {img.get("alt") for img in labels.named("img")}
    head = [t.strip() for t in labels.text if t.strip()]
    for column in ("Label", "Recall (95% CI)", "Average precision", "Support", "Threshold"):
        assert column in head
    rows = [attrs for attrs in labels.named("tr")][1:]
    assert len(rows) == len(test["per_class"]) == 4  # cooking, outdoor, sports, sweet
    for name, per in test["per_class"].items():
        assert name in head and f"{per['threshold']:.2f}" in head and _pct_text(per["average_precision"]) in head
    tuned = metrics["thresholds"]
    thresholds = Page(section(html, "thresholds")).all_text()
    assert scores.value("micro_f1", tuned["val_micro_f1_at_0.5"]) in thresholds
    assert scores.value("micro_f1", tuned["val_micro_f1_tuned"]) in thresholds
    assert all(isinstance(m["true"], str) and "probability" not in m for m in metrics["misclassified"])
    gallery = Page(section(html, "wrong-labels")).all_text()
    assert "Items with the most wrong labels" in gallery
    assert all(m["predicted"] in gallery for m in metrics["misclassified"])
    assert html.count(f'<img src="{DATA_URI_PNG}') == 2  # the probe's curve over C and the per-label chart
    shown = Page(html[:html.index('<section id="notes"')]).all_text()  # the notes quote fit's data checks as is
    assert "accuracy" not in shown.lower().replace("subset accuracy", "")


def _pct_text(value: float) -> str:
    return f"{100 * value:.1f}%"


def test_a_regression_report_plots_predicted_against_true_beside_the_baseline(regression_run):
    from headstart.report import scores

    metrics, html, _ = regression_run
    page = Page(html)
    assert metrics["task"] == "regression"
    test = metrics["test"]
    assert "predictions" not in metrics["train"]  # the report plots validation and test only
    for split in ("val", "test"):  # every prediction kept: far below the 2,000 cap
        kept = metrics[split]["predictions"]
        assert len(kept["true"]) == len(kept["predicted"]) == metrics[split]["n"]
    assert set(kept["true"]) <= set(regression_values()) and len(set(kept["true"])) == len(kept["true"])
    assert {"summary", "predicted-vs-true", "largest-errors"} <= page.ids()
    plot = Page(section(html, "predicted-vs-true"))
    assert [img["alt"] for img in plot.named("img")] == ["predicted against true values"]
    assert plot.named("img")[0]["src"].startswith(DATA_URI_PNG)
    text = plot.all_text()
    assert "Predicted vs true (test set)" in text and "Train-mean baseline" in text
    for key in ("r2", "spearman", "mae", "rmse"):
        assert scores.value(key, test[key]) in text and scores.interval(key, test[f"{key}_ci95"]) in text
    assert scores.value("mae", test["train_mean_baseline_mae"]) in text
    assert scores.value("r2", test["train_mean_baseline_r2"]) in text
    card = Page(html[html.index('<article class="card"'):html.index("</article>")]).all_text()
    assert scores.value("r2", test["r2"]) in card and "test R² · 95% CI" in card and "Train-mean baseline" in card
    gallery = Page(section(html, "largest-errors")).all_text()
    assert "Largest errors" in gallery
    errors = [abs(m["error"]) for m in metrics["misclassified"]]
    assert errors == sorted(errors, reverse=True) and f"{metrics['misclassified'][0]['error']:+.4g}" in gallery
    assert html.count(f'<img src="{DATA_URI_PNG}') == 2  # the probe's curve over C and the scatter plot
    assert "accuracy" not in Page(html[:html.index('<section id="notes"')]).all_text().lower()


def test_regression_keeps_at_most_2000_evenly_spaced_predictions_per_split():
    from headstart.tasks.regression import PLOTTED, kept_predictions

    truth = np.arange(5000, dtype=np.float64)
    kept = kept_predictions(truth, truth / 3)
    assert len(kept["true"]) == len(kept["predicted"]) == PLOTTED == 2000
    assert kept["true"][0] == 0 and kept["true"][-1] == 4999 and len(set(kept["true"])) == PLOTTED
    assert kept["predicted"][-1] == 1666.0  # 4999 / 3 to 4 significant digits
    assert len(json.dumps(kept)) < 40_000


def test_fine_tuning_curves_and_notes_of_the_new_tasks_use_their_main_metric(regression_run):
    """Fine-tuning rows of a regression run carry val_r2 and no train_accuracy: the curves plot R², the early-stop
    note picks the best epoch by it, and a comparison of such runs ranks by R²."""
    from headstart.report import run_notes

    metrics, _, _ = regression_run
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 0.9 + (e - 2) ** 2 / 10, "val_r2": r2}
               for e, r2 in ((1, -0.4), (2, 0.31), (3, 0.12))]
    run = {"name": "reg-partial", "strategy": "partial", "metrics": metrics, "history": history,
           "config": {"model": "tiny", "epochs": 6}}
    html = render_report(ReportData(title="t", subtitle="s", runs=[run]))
    curves = [img for img in Page(html).named("img") if img.get("alt") == "training curves"]
    assert len(curves) == 1 and curves[0]["src"].startswith(DATA_URI_PNG)
    notes = " ".join(run_notes(run))
    assert "stopped early after epoch 3 of 6" in notes and "from epoch 2." in notes
    assert "interval of the R² spans" in notes and "accuracy" not in notes.lower()

    def row(name: str, r2: float) -> dict:
        return {"strategy": name, "status": "done", "main_metric": "r2", "seconds": 3.0, "trainable_params": 10,
                "val_r2": stat(r2, 0.1), "val_mae": stat(0.5), "test_r2": stat(r2 - 0.02),
                "gap": {"mean": 0.15}}

    curve = {"linear": [{"n": n, "r2": stat(0.2 + 0.001 * n, 0.1)} for n in (20, 40, 80)]}
    comparison = {"rows": [row("linear", 0.42), row("partial", -0.3)], "learning_curve": curve}
    html = render_report(ReportData(title="t", subtitle="s", runs=[], comparison=comparison))
    text = Page(section(html, "comparison")).all_text()
    assert "Val R²" in text and "Val MAE" in text and "Test R²" in text and "0.420" in text  # compare's pair
    assert "-0.300" in text and "+0.150" in text and "accuracy" not in text.lower()
    assert len(Page(html).named("img")) == 2  # the R²/time overview and the learning curve


def test_notebook_reprs_show_the_main_metric_of_the_new_tasks(multi_label_run, regression_run):
    from headstart.report.notebook import _lines

    metrics, _ = multi_label_run
    text = _lines("FitResult", "linear", "tiny", "text", ["cooking", "outdoor", "sports", "sweet"], metrics, "r")
    assert "text multi-label classification, 4 labels" in text
    assert f"test micro-F1 {metrics['test']['micro_f1']:.3f}" in text and "accuracy" not in text
    metrics, _, run_dir = regression_run
    loaded = repr(headstart.load_run(run_dir))
    assert "text regression of" in loaded and f"validation R² {metrics['val']['r2']:.3f}" in loaded
    assert "accuracy" not in loaded
