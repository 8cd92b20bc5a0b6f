"""audit: find what is wrong with a labelled data set before fitting it, on cached frozen-backbone features.

Checks, each finding named by its item's origin (file, "file.csv line N", "list item N"):

- exact duplicates (same item content hash) within train, and across train/val/test (leakage);
- near duplicates: cosine similarity of L2-normalised embeddings at or above a threshold, found by
  headstart.features.neighbours (blocked matrix products up to its EXACT_ROWS items, an approximate index above);
- likely label errors by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
  Uncertainty in Dataset Labels", JAIR 2021): out-of-sample probabilities from a K-fold cross-validated
  logistic probe, per-class thresholds (mean self-confidence), the calibrated confident joint, pruning by
  noise rate, ranked by normalised margin: cleanlab's ``find_label_issues(filter_by="prune_by_noise_rate")``
  on the probe's out-of-sample probabilities. Multi-label: the same
  per label, on the one-vs-rest probe's out-of-sample probability of the label against its absence (as
  cleanlab's ``multilabel_classification.find_label_issues`` does), each finding an (item, label) pair;
- regression: the items the cross-validated ridge probe misses by most, flagged by a robust z-score of the
  out-of-sample residuals (a typo in a number, a wrong unit, an item that does not belong);
- outliers: mean cosine distance to the k nearest neighbours, flagged by a robust (median/MAD) z-score;
- class imbalance and classes with too few examples to fine-tune (per label for multi-label; a summary and
  histogram of the target for regression);
- per-slice probe scores for the values of a table column (``group_col``): accuracy and macro-F1, or the
  task's main metric.

The checks that need no model (duplicates, leakage, imbalance, tiny classes) live in headstart.data.checks.
"""

from __future__ import annotations

import datetime
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from headstart.data import DataSplits
from headstart.data.items import Gate
from headstart.data.split import strata
from headstart.data.tables import TABLE_EXTENSIONS, frame_table, read_table
from headstart.data.checks import (FEW_EXAMPLES, IMBALANCE_RATIO, SPLIT_NAMES, Pool, cheap_checks, class_balance,
                                   examples)
from headstart.core.errors import DataError
from headstart.core.fileio import to_json, write_text
from headstart.training.heads import fit_predict_proba
from headstart.tasks.kinds import METRIC_NAMES, kind
from headstart.features import neighbours
from headstart.core.metrics import mean_average_precision, multilabel_score, r2, spearman, wilson_interval
from headstart.runs.outdir import check_writable, hold
from headstart.core.fileio import write_marker
from headstart.workflows.pipeline import check_folders, config_for, prepare
from headstart.report import plots, render_report
from headstart.report.render import ReportData
from headstart.workflows.runtime import Runtime
from headstart.tasks import Task, make_task
from headstart.tasks.multilabel import sigmoid

# Near-duplicate thresholds on cosine similarity, measured on the bundled sets. BBC News under minilm-l6:
# pairs from 0.93 to 0.97 are distinct articles about the same event (new headline, rewritten body); above
# 0.97 the texts share their first 128 tokens or differ by a few words (a copy with 3 words changed scores
# 0.984-0.999, one word 0.995+). MNIST under mobilenetv2 at 64 px: the most similar distinct digits reach
# 0.968 (99.9th percentile of nearest-neighbour similarity 0.968); a re-encoded copy scores 1.0, +2 grey
# levels 0.990+, +-1 pixel noise 0.989 median. Heavier edits (+-2 noise, resizing) fall to 0.88-0.97,
# among distinct digits: frozen features at this size cannot tell those apart.
NEAR_THRESHOLD = {"image": 0.98, "text": 0.97, "audio": 0.98}
OUTLIER_Z = 3.5  # modified z-score cut (Iglewicz and Hoaglin 1993)
OUTLIER_K = 10
NEAR_K = 32  # above neighbours.EXACT_ROWS rows, near duplicates are sought among each item's NEAR_K nearest
FOLDS = 5
PROBE_CS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # inverse strengths tried
MAX_LISTED = 2000  # findings of one kind kept in audit.json (the count is always exact)
PREVIEWS = 48  # items per report table shown with a thumbnail or text preview (keeps report.html small)


# ---------------------------------------------------------------- the report


@dataclass
class AuditReport:
    """Every finding of an audit; ``to_dict`` is audit.json."""

    data: str
    model: str
    modality: str
    classes: list[str]
    sizes: dict[str, int]
    exact_duplicates: list[dict]
    near_duplicates: list[dict]
    near_duplicate_count: int
    label_issues: list[dict]
    outliers: list[dict]
    balance: dict
    probe: dict
    slices: dict | None
    settings: dict
    warnings: list[str] = field(default_factory=list)
    task: str = "single-label"  # how label_issues were found: per class, per label, or large residuals
    out_dir: Path | None = None
    outlier_scores: list[float] = field(default_factory=list, repr=False)  # every item's; the report plots them
    pool: Pool | None = field(default=None, repr=False, compare=False)  # the items, for the report's previews

    @property
    def leakage(self) -> list[dict]:
        """Exact-duplicate groups that span more than one split."""
        return [g for g in self.exact_duplicates if g["kind"] == "cross-split"]

    def to_dict(self) -> dict:
        """JSON-serialisable record (audit.json)."""
        return {
            "data": self.data, "model": self.model, "modality": self.modality, "task": self.task,
            "classes": self.classes,
            "sizes": self.sizes, "warnings": self.warnings, "summary": self.summary(),
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": {"count": self.near_duplicate_count, "pairs": self.near_duplicates},
            "label_issues": self.label_issues, "outliers": self.outliers, "balance": self.balance,
            "probe": self.probe, "slices": self.slices, "settings": self.settings,
        }

    def summary(self) -> list[dict]:
        """One row per check: ``check``, ``count`` and ``status`` (ok / warn)."""
        within = sum(1 for g in self.exact_duplicates if g["kind"] != "cross-split")
        near_x = sum(1 for p in self.near_duplicates if p["kind"] == "cross-split")
        task = kind(self.task)
        one, many = task.output
        rows = [
            ("exact duplicates (within a split)", within, within > 0),
            ("exact duplicates across splits (leakage)", len(self.leakage), bool(self.leakage)),
            ("near duplicates", self.near_duplicate_count, self.near_duplicate_count > 0),
            ("near duplicates across splits", near_x, near_x > 0),
            (task.label_issues, len(self.label_issues), bool(self.label_issues)),
            ("outliers", len(self.outliers), bool(self.outliers)),
        ]
        if task.has_classes:  # a numeric target has no classes to balance
            rows += [(f"imbalance (max/min {one} count)", round(self.balance["ratio"], 2), self.balance["imbalanced"]),
                     (f"{many} with < {self.balance['few_threshold']} training examples", len(self.balance["few"]),
                      bool(self.balance["few"]))]
        if self.slices:
            worst, metric = self.slices["worst"], self.probe.get("main_metric", "accuracy")
            rows.append((f"worst slice of '{self.slices['column']}'", f"{worst['group']} "
                         f"({_score_text(metric, worst.get(metric))})", _weak(worst, metric, self.probe[metric])))
        return [{"check": c, "count": n, "status": "warn" if bad else "ok"} for c, n, bad in rows]

    def probe_summary(self) -> str:
        """The cross-validated probe's scores in words: "5-fold probe accuracy 0.900, macro-F1 0.880"."""
        main, second = kind(self.task).main_metric, kind(self.task).second_metric
        return (f"{self.probe['folds']}-fold probe {METRIC_NAMES[main]} {_score(self.probe.get(main))}, "
                f"{METRIC_NAMES[second]} {_score(self.probe.get(second))}")

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write ``out/audit.json`` and ``out/report.html``; return ``out``."""
        out = Path(out)
        check_writable(out, "audit", overwrite)
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "audit")
        write_text(out / "audit.json", to_json(self.to_dict(), indent=2, default=str) + "\n")
        write_text(out / "report.html", render_report(report_data(self)))
        self.out_dir = out
        return out


def report_data(report: AuditReport):
    """The HTML report of an audit: plots, its findings as tables (statuses as coloured badges, each flagged item
    with a thumbnail or text preview, :data:`PREVIEWS` per table at most), the warnings as notes."""
    previews = _Previews(report)

    def table(title: str, columns: list[str], rows: list, found: int, **extra) -> dict:
        note = (f"The first {len(rows)} of {found:,} are shown; audit.json keeps {min(found, MAX_LISTED):,}."
                if found > len(rows) else "")
        return {"title": title, "columns": columns, "rows": previews.attach(rows), "note": note, **extra}

    tables = [{"title": "Checks", "columns": ["check", "count", "status"],
               "rows": [[r["check"], r["count"], {"status": r["status"]}] for r in report.summary()]}]
    if report.exact_duplicates:
        tables.append(table("Exact duplicates", ["kind", "items"],
                            [[g["kind"], {"items": list(g["items"])}] for g in report.exact_duplicates[:200]],
                            len(report.exact_duplicates)))
    if report.near_duplicates:
        tables.append(table("Near duplicates", ["similarity", "kind", "item", "item"],
                            [[f"{p['similarity']:.4f}", p["kind"], {"items": [p["a"]]}, {"items": [p["b"]]}]
                             for p in report.near_duplicates[:200]], report.near_duplicate_count))
    if report.label_issues:
        tables.append(table(*_issue_table(report.task, report.label_issues[:200]), len(report.label_issues),
                            **_issue_figure(report.task, report.label_issues[:200])))
    distribution = plots.outlier_plot(report.outlier_scores, _outlier_cut(report))
    if report.outliers or distribution:
        tables.append(table("Outliers", ["item", "kNN distance", "robust z"],
                            [[{"items": [o]}, f"{o['score']:.4f}", f"{o['z']:.1f}"] for o in report.outliers[:200]],
                            len(report.outliers), figure=distribution,
                            caption=f"Flagged: a robust z-score above {report.settings.get('outlier_z', OUTLIER_Z)} "
                                    "(red ticks beyond the dashed line)."))
    tables.append(_balance_table(report))
    if report.slices:
        tables.append(_slice_table(report))
    what = kind(report.task).describe(len(report.classes))
    audit = {"lede": f"{sum(report.sizes.values()):,} items, {what}; a cross-validated probe on {report.model} "
                     f"features: {report.probe_summary()}.", "tables": tables}
    meta = {"Data": report.data, "Model": report.model, "Date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    return ReportData(title=f"Data audit · {report.data}", subtitle="Duplicates, leakage, likely label errors, "
                      "outliers, imbalance and weak slices, found on frozen features.", runs=[],
                      notes=list(report.warnings), meta=meta, audit=audit)


def _issue_table(task: str, issues: list[dict]) -> tuple[str, list[str], list[list]]:
    """The title, columns and rows of the report's table of label findings."""
    return _ISSUE_TABLES[task](issues)


def _who(i: dict) -> dict:
    return {"items": [{k: i[k] for k in ("origin", "split")}]}


def _residual_table(issues: list[dict]) -> tuple[str, list[str], list[list]]:
    return ("Large residuals (largest first)", ["rank", "item", "given", "predicted (CV probe)", "robust z"],
            [[i["rank"], _who(i), f"{i['label']:.4g}", f"{i['predicted']:.4g}", f"{i['z']:+.1f}"] for i in issues])


def _label_pair_table(issues: list[dict]) -> tuple[str, list[str], list[list]]:
    return ("Likely label errors, per label (most likely first)",
            ["rank", "item", "labels given", "label", "given", "suggested", "self-confidence"],
            [[i["rank"], _who(i), label_text(i["label"]), i["label_name"], i["given"], i["suggested"],
              f"{i['self_confidence']:.3f}"] for i in issues])


def _label_error_table(issues: list[dict]) -> tuple[str, list[str], list[list]]:
    return ("Likely label errors (most likely first)", ["rank", "item", "given", "suggested", "self-confidence"],
            [[i["rank"], _who(i), i["label"], i["suggested"], f"{i['self_confidence']:.3f}"] for i in issues])


_ISSUE_TABLES = {"single-label": _label_error_table, "multi-label": _label_pair_table, "regression": _residual_table}


def _issue_figure(task: str, issues: list[dict]) -> dict:
    if not kind(task).has_classes:
        return {"caption": f"Each flagged item's target and the probe's out-of-sample prediction; robust z of the "
                           f"residual beyond ±{OUTLIER_Z}."}
    given = "given label" if kind(task).one_per_item else "given presence or absence of the label"
    return {"figure": plots.label_issue_plot(issues),
            "caption": f"The probe's out-of-sample probability of each flagged item's {given}: the lower, the "
                       "likelier it is wrong."}


def _balance_table(report: AuditReport) -> dict:
    """Training counts per class or label, or the numeric target's summary and histogram."""
    target = report.balance.get("target")
    if target:  # a numeric target's summary
        stats = [[name, f"{target[name]:.4g}"] for name in ("mean", "std", "min", "q25", "median", "q75", "max")]
        edges, counts = target["histogram"]["edges"], target["histogram"]["counts"]
        bins = [[f"{lo:.4g} – {hi:.4g}", n] for lo, hi, n in zip(edges, edges[1:], counts)]
        return {"title": f"Target (train, {target['n']:,} items)", "columns": ["statistic / range", "value / items"],
                "rows": stats + bins}
    counts = report.balance["counts"]
    one = kind(report.task).output[0]
    return {"title": f"{one.capitalize()} counts (train)", "columns": [one, "train", "all splits"],
            "rows": [[c, counts[c], report.balance["counts_all"][c]] for c in report.classes]}


def _slice_table(report: AuditReport) -> dict:
    """Per slice, the probe's accuracy (interval, macro-F1) or the task's main metric; the worst marked."""
    worst, title = report.slices["worst"]["group"], f"Slices of '{report.slices['column']}' (cross-validated probe)"
    mark = {s["group"]: ("▼ " if s["group"] == worst else "") + str(s["group"]) for s in report.slices["rows"]}
    if not kind(report.task).one_per_item:
        metric = report.slices["metric"]
        return {"title": title, "columns": ["group", "n", METRIC_NAMES[metric]],
                "rows": [[mark[s["group"]], s["n"], _score(s[metric])] for s in report.slices["rows"]]}
    return {"title": title, "columns": ["group", "n", "accuracy", "95% CI", "macro-F1"],
            "figure": plots.slice_plot(report.slices["rows"], report.probe["accuracy"]),
            "rows": [[mark[s["group"]], s["n"], f"{100 * s['accuracy']:.1f}%",
                      f"{100 * s['ci95'][0]:.1f}–{100 * s['ci95'][1]:.1f}%", f"{s['macro_f1']:.3f}"]
                     for s in report.slices["rows"]]}


class _Previews:
    """The report's previews of an audit's items, by origin: each made once, however many tables show it."""

    def __init__(self, report: AuditReport):
        self.contents = report.pool.contents() if report.pool is not None else {}
        self.modality = report.modality
        self.made: dict[str, dict] = {}

    def attach(self, rows: list[list], limit: int = PREVIEWS) -> list[list]:
        """``rows`` with a preview added to the first ``limit`` items of their ``{"items": [...]}`` cells."""
        from headstart.report.previews import preview

        for cell in (c for row in rows for c in row if isinstance(c, dict) and "items" in c):
            for n, item in enumerate(cell["items"]):
                if limit and item["origin"] in self.contents:
                    if item["origin"] not in self.made:
                        self.made[item["origin"]] = preview(self.contents[item["origin"]], self.modality)
                    cell["items"][n], limit = {**item, **self.made[item["origin"]]}, limit - 1
        return rows


def _outlier_cut(report: AuditReport) -> float | None:
    """The outlier score beyond which items are flagged (robust z above the cut), or None when none can be."""
    scores = np.asarray(report.outlier_scores, dtype=float)
    if scores.size == 0:
        return None
    med = float(np.median(scores))
    mad = float(np.median(np.abs(scores - med)))
    return med + report.settings.get("outlier_z", OUTLIER_Z) * mad / 0.6745 if mad > 0 else None


# ---------------------------------------------------------------- entry point


def audit(data: Any, model: Any = "minilm-l6", *, val: Any = None, test: Any = None, group_col: str | None = None,
          groups: Sequence | None = None, folds: int = FOLDS, near_threshold: float | None = None,
          outlier_k: int = OUTLIER_K, out: str | Path | None = None, overwrite: bool = False,
          progress: bool = True, **options: Any) -> AuditReport:
    """Audit labelled ``data`` on ``model``'s cached frozen features; ``options`` are FitConfig fields.

    The splits are exactly those ``fit`` would make with the same options (``task`` and ``label_sep`` say what
    the labels are, as for ``fit``: label sets are checked per label, numbers for large residuals).
    ``group_col`` names a table column whose values become slices; for an ``(items, labels)`` pair pass ``groups`` (one per item).
    With ``out`` the folder gets audit.json and report.html.
    """
    with nullcontext() if out is None else hold(out, "audit", (data, val, test)):  # one process writes OUT
        cfg = config_for(model, "linear", options)
        check_folders(cfg, (data, val, test))
        if out is not None:
            check_writable(Path(out), "audit", overwrite, inputs=(data, val, test))
        splits, backbone = prepare(data, model, cfg, val, test)
        pool = Pool.of(splits)
        group_values = None
        if group_col is not None or groups is not None:
            group_values = read_groups(pool, {"train": data, "val": val, "test": test}, group_col, groups)
        runtime = Runtime.from_config(cfg, progress)
        extraction = runtime.extraction(backbone.modality)
        feats = np.concatenate([runtime.cache.features(backbone, ds, extraction) for ds in pool.datasets])
        report = audit_features(feats, pool, splits, data=_describe(data), model=backbone.name,
                                group_values=group_values, group_col=group_col or "group", folds=folds,
                                near_threshold=near_threshold, outlier_k=outlier_k, seed=cfg.seed,
                                task=make_task(splits, target=cfg.label_col), index_dir=runtime.cache.root)
        if out is not None:
            report.save(out, overwrite=True)
        return report


def audit_features(feats: np.ndarray, pool: Pool, splits: DataSplits, *, data: str = "data", model: str = "features",
                   group_values: Sequence | None = None, group_col: str = "group", folds: int = FOLDS,
                   near_threshold: float | None = None, outlier_k: int = OUTLIER_K, seed: int = 0,
                   task: Task | None = None, index_dir: Path | None = None) -> AuditReport:
    """The audit on already computed features (rows in ``pool`` order); ``task`` (default: ``splits``') says
    how labels are checked: confident learning per class or per label, or large residuals of a regression.
    ``index_dir`` (the feature cache's folder) keeps the neighbour index of a large pool for the next audit."""
    task = task or make_task(splits)
    modality = splits.train.modality
    threshold = NEAR_THRESHOLD[modality] if near_threshold is None else float(near_threshold)
    exact = pool.duplicates()
    unit = l2_normalise(feats)
    pairs, knn = similarity_scan(unit, threshold, min(outlier_k, len(unit) - 1), cache_dir=index_dir)
    hashes = np.array(pool.hashes)
    pairs = [(i, j, s) for i, j, s in pairs if hashes[i] != hashes[j]]  # exact copies are reported above
    near = [{"similarity": round(float(s), 6), "kind": _pair_kind(pool.split[i], pool.split[j]), "a": pool.item(i),
             "b": pool.item(j), "same_label": pool.labels[i] == pool.labels[j]}
            for i, j, s in sorted(pairs, key=lambda p: -p[2])]
    checked = {"single-label": _single_label_check, "multi-label": _multilabel_check,
               "regression": _regression_check}[task.name](feats, pool, task, folds, seed)
    scores = knn.mean(1)
    z = robust_z(scores)
    flagged = np.flatnonzero(z > OUTLIER_Z)
    outliers = [{**pool.item(int(i)), "score": round(float(scores[i]), 6), "z": round(float(z[i]), 2)}
                for i in flagged[np.argsort(-z[flagged], kind="stable")]]
    probe = checked.probe
    slices = None
    if group_values is not None:
        slices = (slice_metrics(pool.codes, checked.predicted, group_values, group_col)
                  if kind(task.name).one_per_item else slice_scores(group_values, checked.score, task.main_metric,
                                                                     group_col))
    warnings = cheap_checks(splits)
    if checked.issues:
        warnings.append(checked.warning + weak_probe_caveat(probe))
    near_x = [p for p in near if p["kind"] == "cross-split"]
    if near_x:
        warnings.append(f"{len(near_x)} near-duplicate pair(s) span splits (similarity >= {threshold}), e.g. "
                        + examples([f"{p['a']['origin']} ~ {p['b']['origin']}" for p in near_x]))
    metric = probe["main_metric"]
    if slices and _weak(slices["worst"], metric, probe[metric]):
        w, said = slices["worst"], METRIC_NAMES[metric]
        warnings.append(f"Slice {group_col}={w['group']} is the weakest: {_score_text(metric, w[metric])} probe "
                        f"{said} (n={w['n']}) against {_score_text(metric, probe[metric])} overall.")
    balance = class_balance(splits)
    if not kind(task.name).has_classes:  # a numeric target: its distribution instead of class counts
        balance["target"] = target_summary(splits.train.labels)
    settings = {"task": task.name, "near_threshold": threshold, "outlier_k": int(knn.shape[1]),
                "outlier_z": OUTLIER_Z, "folds": probe["folds"], "imbalance_ratio": IMBALANCE_RATIO,
                "few_examples": FEW_EXAMPLES, "seed": seed,
                "split": {k: v for k, v in splits.split.items() if not k.endswith("_origins")}}
    return AuditReport(data, model, modality, list(pool.classes),
                       {name: int((pool.split == name).sum()) for name in SPLIT_NAMES},
                       exact, near[:MAX_LISTED], len(near), checked.issues[:MAX_LISTED], outliers[:MAX_LISTED],
                       balance, probe, slices, settings, warnings, task=task.name, outlier_scores=scores.tolist(),
                       pool=pool)


WEAK_PROBE = 0.9  # a probe scoring below this (accuracy, micro-F1, R²) makes many of its findings its own mistakes


def weak_probe_caveat(probe: dict) -> str:
    """A sentence for the label findings when the probe that found them is weak; empty otherwise."""
    metric = probe.get("main_metric", "accuracy")
    score = probe.get(metric)
    if not isinstance(score, (int, float)) or score >= WEAK_PROBE:
        return ""
    return (f". The cross-validated probe that found them scores {metric} {score:.3f} (below {WEAK_PROBE}): many "
            "findings will be its own mistakes, so check the top-ranked first")


@dataclass
class _Checked:
    """What the cross-validated probe found: the label findings (ranked), the warning they make, the probe's
    scores, and for slices the single-label predictions or a scorer of any rows."""

    issues: list[dict]
    warning: str
    probe: dict
    predicted: np.ndarray | None = None
    score: Any = None  # rows (int array) -> the main metric of the out-of-sample predictions on them


def _single_label_check(feats: np.ndarray, pool: Pool, task: Task, folds: int, seed: int) -> _Checked:
    """Confident learning on the out-of-sample probabilities of a logistic probe."""
    codes = pool.codes
    proba, used_folds, strength = out_of_sample_proba(feats, codes, len(pool.classes), folds, seed)
    issues = find_label_issues(codes, proba)
    margin = normalized_margin(codes, proba)
    ranked = np.flatnonzero(issues)[np.argsort(margin[issues], kind="stable")]
    found = [{**pool.item(int(i)), "rank": r, "suggested": pool.classes[int(proba[i].argmax())],
              "self_confidence": round(float(proba[i, codes[i]]), 6),
              "normalized_margin": round(float(margin[i]), 6)} for r, i in enumerate(ranked, 1)]
    warning = (f"{len(found)} item(s) look mislabelled (confident learning), e.g. "
               + examples([f"{i['origin']} ({i['label']} -> {i['suggested']})" for i in found]))
    predicted = proba.argmax(1)
    probe = {"main_metric": "accuracy", "accuracy": float((predicted == codes).mean()),
             "macro_f1": _macro_f1(codes, predicted), "folds": used_folds, "C": strength}
    return _Checked(found, warning, probe, predicted=predicted)


def _multilabel_check(feats: np.ndarray, pool: Pool, task: Task, folds: int, seed: int) -> _Checked:
    """Confident learning per label: each label's out-of-sample probability against its absence; a finding
    is an (item, label) pair whose given presence or absence the probe confidently contradicts."""
    y = task.targets(pool.labels) > 0.5
    logits, used_folds, strength = out_of_sample_outputs(feats, pool, task, folds, seed)
    proba = sigmoid(logits)
    found = []
    for k, name in enumerate(task.classes):
        given = y[:, k].astype(np.int64)
        if given.min() == given.max():
            continue  # a label on every item or on none: nothing to learn it from
        binary = np.stack([1.0 - proba[:, k], proba[:, k]], axis=1)
        margin = normalized_margin(given, binary)
        for i in np.flatnonzero(find_label_issues(given, binary)):
            found.append({**pool.item(int(i)), "label_name": name, "given": "present" if given[i] else "absent",
                          "suggested": "absent" if given[i] else "present",
                          "self_confidence": round(float(binary[i, given[i]]), 6),
                          "normalized_margin": round(float(margin[i]), 6)})
    found.sort(key=lambda f: f["normalized_margin"])
    for r, finding in enumerate(found, 1):
        finding["rank"] = r
    items = len({f["origin"] for f in found})
    warning = (f"{len(found)} label(s) on {items} item(s) look wrong (confident learning per label), e.g. "
               + examples([f"{f['origin']} ({f['label_name']} {f['given']}, likely {f['suggested']})"
                           for f in found]))
    half = np.full(y.shape[1], 0.5)
    probe = {"main_metric": "micro_f1", **{m: multilabel_score(m, y, proba, half) for m in ("micro_f1", "macro_f1")},
             "map": _finite(mean_average_precision(y, proba)), "folds": used_folds, "C": strength}
    return _Checked(found, warning, probe,
                    score=lambda rows: multilabel_score("micro_f1", y[rows], proba[rows], half))


def _regression_check(feats: np.ndarray, pool: Pool, task: Task, folds: int, seed: int) -> _Checked:
    """The items whose out-of-sample residual (ridge probe) has a robust z-score beyond ``OUTLIER_Z``."""
    outputs, used_folds, strength = out_of_sample_outputs(feats, pool, task, folds, seed)
    truth = np.asarray(pool.labels, dtype=np.float64)
    predicted = task.adjust(outputs)[:, 0]  # the target's own units
    residual = truth - predicted
    z = robust_z(residual)
    flagged = np.flatnonzero(np.abs(z) > OUTLIER_Z)
    ranked = flagged[np.argsort(-np.abs(z[flagged]), kind="stable")]
    found = [{**pool.item(int(i)), "rank": r, "predicted": round(float(predicted[i]), 6),
              "residual": round(float(residual[i]), 6), "z": round(float(z[i]), 2)} for r, i in enumerate(ranked, 1)]
    warning = (f"{len(found)} item(s) have targets far from what the cross-validated probe predicts (robust z of "
               f"the residual beyond {OUTLIER_Z}): check them for typos, units or items that do not belong, e.g. "
               + examples([f"{f['origin']} ({f['label']:.4g}, predicted {f['predicted']:.4g})" for f in found]))
    probe = {"main_metric": "r2", "r2": _finite(r2(truth, predicted)), "mae": float(np.abs(residual).mean()),
             "spearman": _finite(spearman(truth, predicted)), "folds": used_folds, "C": strength}
    return _Checked(found, warning, probe, score=lambda rows: _finite(r2(truth[rows], predicted[rows])))


def target_summary(values: Sequence[float], bins: int = 10) -> dict:
    """A numeric target in numbers: count, mean, standard deviation, quantiles and a histogram."""
    v = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(v, bins=bins)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            **{name: float(x) for name, x in zip(("min", "q25", "median", "q75", "max"), q)},
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}


# ---------------------------------------------------------------- embeddings: near duplicates and outliers


def l2_normalise(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; all-zero rows stay zero)."""
    f = np.asarray(feats, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def similarity_scan(unit: np.ndarray, threshold: float, k: int, block: int = neighbours.BLOCK,
                    cache_dir: Path | None = None,
                    exact: bool | None = None) -> tuple[list[tuple[int, int, float]], np.ndarray]:
    """Near-duplicate pairs and nearest neighbours of unit rows, from :mod:`headstart.features.neighbours`.

    Returns the pairs ``(i, j, similarity)`` with ``i < j`` and cosine similarity >= ``threshold``, and
    ``[n, k]`` cosine distances of each row to its ``k`` nearest other rows (ascending). Up to
    ``neighbours.EXACT_ROWS`` rows (or with ``exact``) the search is exact, ``block x n`` floats at a time, and
    finds every pair; above, an approximate index (kept in ``cache_dir``) lists each row's ``NEAR_K`` nearest,
    and the pairs are found among those.
    """
    if exact if exact is not None else len(unit) <= neighbours.EXACT_ROWS:
        pairs: list[tuple[int, int, float]] = []
        found = neighbours.exact_search(neighbours.prepared(unit, "cosine"), max(0, min(k, len(unit) - 1)),
                                        "cosine", 1.0 - threshold, pairs, block)
    else:
        found = neighbours.nearest(unit, max(k, NEAR_K), "cosine", cache_dir, exact=False)
        pairs = found.close_pairs(1.0 - threshold)
    return [(i, j, 1.0 - d) for i, j, d in pairs], found.distances[:, :max(0, min(k, len(unit) - 1))]


def robust_z(scores: np.ndarray) -> np.ndarray:
    """Modified z-scores ``0.6745 (x - median) / MAD`` (Iglewicz and Hoaglin); 0 where MAD is 0."""
    med = np.median(scores)
    mad = np.median(np.abs(scores - med))
    if mad <= 0:
        return np.zeros_like(scores, dtype=float)
    return 0.6745 * (scores - med) / mad


# ---------------------------------------------------------------- confident learning


def out_of_sample_proba(feats: np.ndarray, codes: np.ndarray, n_classes: int, folds: int = FOLDS,
                        seed: int = 0, c: float | None = None) -> tuple[np.ndarray, int, float]:
    """``([n, n_classes] probabilities, folds used, C)``: each row predicted by a logistic probe that never saw it.

    Stratified K folds (fewer when the smallest class has fewer items; at least 2). ``c=None`` chooses
    the regularisation by the out-of-sample log-loss itself (:data:`PROBE_CS`, walking downhill from
    0.01): a weak penalty lets the probe memorise the very label errors it should expose (measured on
    BBC News with 10% flipped labels: C=1 finds them at precision 0.40, C=0.003 at 0.90).
    """
    smallest = int(np.bincount(codes, minlength=n_classes).min())
    k = min(folds, smallest)
    if k < 2:
        raise DataError(f"The audit's cross-validation needs at least 2 items of every class; one class has "
                        f"{smallest}. Add examples or drop that class.")
    f = np.asarray(feats, dtype=np.float64)
    splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(f, codes))

    def run(strength: float) -> tuple[float, np.ndarray]:
        proba = np.zeros((len(codes), n_classes))
        for train, test in splits:
            proba[test] = fit_predict_proba(f[train], codes[train], f[test], n_classes, strength)
        loss = float(-np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-12, None)).mean())
        return loss, proba

    proba, strength = _strength(run, c)
    return proba, k, strength


def _strength(run: Callable[[float], tuple[float, np.ndarray]], c: float | None) -> tuple[np.ndarray, float]:
    """``(outputs, C)``: ``run(c)``'s when ``c`` is given, else those of the ``C`` of :data:`PROBE_CS` with the
    lowest out-of-sample loss, walking downhill from 0.01 in either direction (the loss is unimodal in log C
    in practice)."""
    if c is not None:
        return run(c)[1], float(c)
    tried = {}
    at = PROBE_CS.index(0.01)
    tried[at] = run(PROBE_CS[at])
    for step in (-1, 1):
        i = at
        while 0 <= i + step < len(PROBE_CS):
            if i + step not in tried:
                tried[i + step] = run(PROBE_CS[i + step])
            if tried[i + step][0] >= tried[i][0]:
                break
            i += step
    best = min(tried, key=lambda i: tried[i][0])
    return tried[best][1], PROBE_CS[best]


def out_of_sample_outputs(feats: np.ndarray, pool: Pool, task: Task, folds: int = FOLDS, seed: int = 0,
                          c: float | None = None) -> tuple[np.ndarray, int, float]:
    """``([n, outputs] probe outputs, folds used, C)`` of a multi-label or regression ``task``: each row's from
    ``task``'s own probe (one-vs-rest logistic: logits; ridge: the standardised target) fitted on the folds
    that do not hold it. Folds are stratified as the data's split is (rarest label, or target quantile bin;
    a stratum smaller than the folds joins the rest); ``C`` as :func:`out_of_sample_proba` chooses it, by the
    out-of-sample loss (binary cross-entropy; for a regression the absolute error, which the very typos the
    audit looks for do not dominate)."""
    y = task.targets(pool.labels)
    k = min(folds, len(y) // 2)
    if k < 2:
        raise DataError(f"The audit's cross-validation needs at least 4 items; there are {len(y)}.")
    groups = fold_groups(strata(task.name, tuple(pool.labels)), k)
    f = np.asarray(feats, dtype=np.float64)
    splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(f, groups))

    def run(strength: float) -> tuple[float, np.ndarray]:
        outputs = np.zeros((len(y), task.outputs))
        for train, test in splits:
            head = task.probe(f[train], y[train], f[test], y[test], (strength,), seed, None).head
            weight, bias = (t.detach().double().numpy() for t in (head.weight, head.bias))
            outputs[test] = f[test] @ weight.T + bias
        if not kind(task.name).has_classes:  # a value's absolute error: a mistyped target would dominate the squared one
            return float(np.abs(outputs[:, 0] - y).mean()), outputs
        return float(task.loss(torch.from_numpy(outputs), torch.from_numpy(np.asarray(y, np.float64))).mean()), outputs

    outputs, strength = _strength(run, c)
    return outputs, k, strength


def fold_groups(groups: list[str], k: int) -> list[str]:
    """``groups`` for ``k`` stratified folds: the strata with fewer than ``k`` items pooled, and that pool joined
    to the largest stratum when it is still too small."""
    counts = {g: groups.count(g) for g in set(groups)}
    rare = [g for g in groups if counts[g] < k]
    if not rare:
        return groups
    merged = "(rare)" if len(rare) >= k else max(counts, key=lambda g: (counts[g], g))
    return [merged if counts[g] < k else g for g in groups]


def find_label_issues(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Boolean mask of likely label errors: cleanlab's confident learning, pruned by noise rate.

    For each given class i and other class j, the items labelled i with the largest margin ``p_j - p_i`` are
    flagged, as many as the calibrated confident joint counts for (i, j); items the probe still predicts as
    their given label are never flagged. cleanlab replaced a numpy copy of the same algorithm here: on 10%
    flipped labels of four real sets they agreed to within an item or two (bench/RESULTS.md, "Audit against
    cleanlab").
    """
    from cleanlab.filter import find_label_issues as cleanlab_issues

    return cleanlab_issues(np.asarray(labels), proba, filter_by="prune_by_noise_rate", n_jobs=1)


def normalized_margin(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``(p_given - max other p + 1) / 2`` in [0, 1]: low is most likely mislabelled (cleanlab's ranking)."""
    from cleanlab.rank import get_normalized_margin_for_each_label

    return get_normalized_margin_for_each_label(np.asarray(labels), proba)


# ---------------------------------------------------------------- slices


def slice_metrics(codes: np.ndarray, predicted: np.ndarray, groups: Sequence, column: str = "group") -> dict:
    """Accuracy (95% Wilson interval) and macro-F1 of out-of-sample predictions per group value; worst first
    by accuracy."""
    groups = np.array(["(missing)" if _missing(g) else str(g) for g in groups], dtype=object)
    rows = []
    for value in sorted(set(groups)):
        rows_ = groups == value
        n, correct = int(rows_.sum()), int((codes[rows_] == predicted[rows_]).sum())
        rows.append({"group": value, "n": n, "accuracy": correct / n, "ci95": list(wilson_interval(correct, n)),
                     "macro_f1": _macro_f1(codes[rows_], predicted[rows_])})
    rows.sort(key=lambda r: (r["accuracy"], -r["n"], r["group"]))
    return {"column": column, "rows": rows, "worst": rows[0]}


def slice_scores(groups: Sequence, score: Callable[[np.ndarray], float | None], metric: str,
                 column: str = "group") -> dict:
    """``metric`` of the out-of-sample predictions per group value (``score`` of its rows; None where it is not
    defined, e.g. R² of one item); worst first, the undefined last."""
    groups = np.array(["(missing)" if _missing(g) else str(g) for g in groups], dtype=object)
    rows = []
    for value in sorted(set(groups)):
        members = np.flatnonzero(groups == value)
        rows.append({"group": value, "n": int(len(members)), metric: score(members)})
    rows.sort(key=lambda r: (r[metric] is None, r[metric] if r[metric] is not None else 0.0, -r["n"], r["group"]))
    return {"column": column, "metric": metric, "rows": rows, "worst": rows[0]}


def read_groups(pool: Pool, sources: dict[str, Any], column: str | None, groups: Sequence | None) -> list:
    """One group value per pool row.

    The loader keeps only items and labels, so ``column`` is re-read from each table given (a file or a
    DataFrame) with the loader's own table readers: their origins ("x.csv line N", "DataFrame row N") are
    the very strings the Dataset holds, so rows align exactly, carved splits included. For an
    ``(items, labels)`` pair, ``groups`` gives one value per item ("list item N" is item N).
    """
    lookup: dict[str, Any] = {}
    if groups is not None:
        values = list(groups)
        lookup.update({f"list item {n}": v for n, v in enumerate(values, 1)})
        lookup.update({f"DataFrame row {n}": v for n, v in enumerate(values, 1)})
    if column is not None:
        for role, source in sources.items():
            prefix = "" if role == "train" else f"{role} "
            if isinstance(source, pd.DataFrame):
                table = frame_table(source, f"{prefix}DataFrame", None)
            elif isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in TABLE_EXTENSIONS:
                table = read_table(Path(source), str(source), Gate(skip_bad=True))
            else:
                continue
            if column not in table.columns:
                raise DataError(f"{table.name}: there is no column '{column}' for --group-col; the columns are "
                                f"{list(table.columns)}.")
            lookup.update({o: row.get(column) for o, row in zip(table.origins, table.rows)})
    missing = [o for o in pool.origins if o not in lookup]
    if missing:
        how = ("--group-col needs the data as a table file or DataFrame" if groups is None else
               f"groups has {len(groups)} values")
        raise DataError(f"No group value for {missing[0]} ({len(missing)} item(s) in all): {how}.")
    return [lookup[o] for o in pool.origins]


# ---------------------------------------------------------------- helpers


def _pair_kind(a: str, b: str) -> str:
    return "cross-split" if a != b else f"within {a}"


def _macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    labels = sorted(set(y.tolist()) | set(p.tolist()))
    return float(f1_score(y, p, labels=labels, average="macro", zero_division=0))


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _score_text(metric: str, value: float | None) -> str:
    """A score as the report says it: accuracy as a percentage, other metrics to 3 decimals."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.3f}"


def _weak(worst: dict, metric: str, overall: float | None) -> bool:
    """Whether the worst slice is 0.05 (5 points) or more below the probe's overall ``metric``."""
    return worst.get(metric) is not None and overall is not None and worst[metric] < overall - 0.05


def label_text(label: Any) -> str:
    """A label as a person reads it: a class, the labels of a set joined (or "(none)"), or a number."""
    if isinstance(label, (tuple, list)):
        return ", ".join(map(str, label)) or "(none)"
    return f"{label:.4g}" if isinstance(label, float) else str(label)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _describe(data: Any) -> str:
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    if isinstance(data, pd.DataFrame):
        return f"DataFrame ({len(data)} rows)"
    try:
        return f"(items, labels) pair of {len(data[0])} items"
    except TypeError:
        return type(data).__name__


