"""audit: find what is wrong with a labelled data set before fitting it, on cached frozen-backbone features.

Checks, each finding named by its item's origin (file, "file.csv line N", "list item N"):

- exact duplicates (same item content hash) within train, and across train/val/test (leakage);
- near duplicates: cosine similarity of L2-normalised embeddings at or above a threshold, found with
  blocked matrix products (no Python loop over pairs);
- likely label errors by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
  Uncertainty in Dataset Labels", JAIR 2021): out-of-sample probabilities from a K-fold cross-validated
  logistic probe, per-class thresholds (mean self-confidence), the calibrated confident joint, pruning by
  noise rate, ranked by normalised margin. A numpy implementation of cleanlab's
  ``find_label_issues(filter_by="prune_by_noise_rate")``: ~60 lines, no extra dependency;
- outliers: mean cosine distance to the k nearest neighbours, flagged by a robust (median/MAD) z-score;
- class imbalance and classes with too few examples to fine-tune;
- per-slice probe accuracy and macro-F1 for the values of a table column (``group_col``).

The checks that need no model (duplicates, leakage, imbalance, tiny classes) live in headstart.data.checks.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from headstart.data import DataSplits
from headstart.data.items import Gate
from headstart.data.tables import TABLE_EXTENSIONS, frame_table, read_table
from headstart.data.checks import (FEW_EXAMPLES, IMBALANCE_RATIO, SPLIT_NAMES, Pool, cheap_checks, class_balance,
                                   examples)
from headstart.errors import DataError
from headstart.fileio import write_text
from headstart.heads import fit_predict_proba
from headstart.metrics import wilson_interval
from headstart.outdir import check_writable, write_marker
from headstart.pipeline import config_for, prepare
from headstart.report import plots, render_report
from headstart.report.render import ReportData
from headstart.runtime import Runtime

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
            "data": self.data, "model": self.model, "modality": self.modality, "classes": self.classes,
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
        rows = [
            ("exact duplicates (within a split)", within, within > 0),
            ("exact duplicates across splits (leakage)", len(self.leakage), bool(self.leakage)),
            ("near duplicates", self.near_duplicate_count, self.near_duplicate_count > 0),
            ("near duplicates across splits", near_x, near_x > 0),
            ("likely label errors", len(self.label_issues), bool(self.label_issues)),
            ("outliers", len(self.outliers), bool(self.outliers)),
            ("imbalance (max/min class count)", round(self.balance["ratio"], 2), self.balance["imbalanced"]),
            (f"classes with < {self.balance['few_threshold']} training examples", len(self.balance["few"]),
             bool(self.balance["few"])),
        ]
        if self.slices:
            worst = self.slices["worst"]
            rows.append((f"worst slice of '{self.slices['column']}'", f"{worst['group']} "
                         f"({100 * worst['accuracy']:.1f}%)", worst["accuracy"] < self.probe["accuracy"] - 0.05))
        return [{"check": c, "count": n, "status": "warn" if bad else "ok"} for c, n, bad in rows]

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write ``out/audit.json`` and ``out/report.html``; return ``out``."""
        out = Path(out)
        check_writable(out, "audit", overwrite)
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "audit")
        write_text(out / "audit.json", json.dumps(self.to_dict(), indent=2, default=str) + "\n")
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
        tables.append(table("Likely label errors (most likely first)",
                            ["rank", "item", "given", "suggested", "self-confidence"],
                            [[i["rank"], {"items": [{k: i[k] for k in ("origin", "split")}]}, i["label"],
                              i["suggested"], f"{i['self_confidence']:.3f}"] for i in report.label_issues[:200]],
                            len(report.label_issues), figure=plots.label_issue_plot(report.label_issues[:200]),
                            caption="The probe's out-of-sample probability of each flagged item's given label: "
                                    "the lower, the likelier the label is wrong."))
    distribution = plots.outlier_plot(report.outlier_scores, _outlier_cut(report))
    if report.outliers or distribution:
        tables.append(table("Outliers", ["item", "kNN distance", "robust z"],
                            [[{"items": [o]}, f"{o['score']:.4f}", f"{o['z']:.1f}"] for o in report.outliers[:200]],
                            len(report.outliers), figure=distribution,
                            caption=f"Flagged: a robust z-score above {report.settings.get('outlier_z', OUTLIER_Z)} "
                                    "(red ticks beyond the dashed line)."))
    counts = report.balance["counts"]
    tables.append({"title": "Class counts (train)", "columns": ["class", "train", "all splits"],
                   "rows": [[c, counts[c], report.balance["counts_all"][c]] for c in report.classes]})
    if report.slices:
        worst = report.slices["worst"]["group"]
        tables.append({"title": f"Slices of '{report.slices['column']}' (cross-validated probe)",
                       "columns": ["group", "n", "accuracy", "95% CI", "macro-F1"],
                       "figure": plots.slice_plot(report.slices["rows"], report.probe["accuracy"]),
                       "rows": [[("▼ " if s["group"] == worst else "") + str(s["group"]), s["n"],
                                 f"{100 * s['accuracy']:.1f}%",
                                 f"{100 * s['ci95'][0]:.1f}–{100 * s['ci95'][1]:.1f}%", f"{s['macro_f1']:.3f}"]
                                for s in report.slices["rows"]]})
    probe = report.probe
    audit = {"lede": f"{sum(report.sizes.values()):,} items, {len(report.classes)} classes; a {probe['folds']}-fold "
                     f"cross-validated probe on {report.model} features reaches {100 * probe['accuracy']:.1f}% "
                     f"accuracy (macro-F1 {probe['macro_f1']:.3f}).", "tables": tables}
    meta = {"Data": report.data, "Model": report.model, "Date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    return ReportData(title=f"Data audit · {report.data}", subtitle="Duplicates, leakage, likely label errors, "
                      "outliers, imbalance and weak slices, found on frozen features.", runs=[],
                      notes=list(report.warnings), meta=meta, audit=audit)


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

    The splits are exactly those ``fit`` would make with the same options. ``group_col`` names a table
    column whose values become slices; for an ``(items, labels)`` pair pass ``groups`` (one per item).
    With ``out`` the folder gets audit.json and report.html.
    """
    cfg = config_for(model, "linear", options)
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
                            near_threshold=near_threshold, outlier_k=outlier_k, seed=cfg.seed)
    if out is not None:
        report.save(out, overwrite=True)
    return report


def audit_features(feats: np.ndarray, pool: Pool, splits: DataSplits, *, data: str = "data", model: str = "features",
                   group_values: Sequence | None = None, group_col: str = "group", folds: int = FOLDS,
                   near_threshold: float | None = None, outlier_k: int = OUTLIER_K, seed: int = 0) -> AuditReport:
    """The audit on already computed features (rows in ``pool`` order)."""
    modality = splits.train.modality
    threshold = NEAR_THRESHOLD[modality] if near_threshold is None else float(near_threshold)
    codes = pool.codes
    exact = pool.duplicates()
    unit = l2_normalise(feats)
    pairs, knn = similarity_scan(unit, threshold, min(outlier_k, len(unit) - 1))
    hashes = np.array(pool.hashes)
    pairs = [(i, j, s) for i, j, s in pairs if hashes[i] != hashes[j]]  # exact copies are reported above
    near = [{"similarity": round(float(s), 6), "kind": _pair_kind(pool.split[i], pool.split[j]), "a": pool.item(i),
             "b": pool.item(j), "same_label": pool.labels[i] == pool.labels[j]}
            for i, j, s in sorted(pairs, key=lambda p: -p[2])]
    proba, used_folds, strength = out_of_sample_proba(feats, codes, len(pool.classes), folds, seed)
    issues = find_label_issues(codes, proba)
    margin = normalized_margin(codes, proba)
    order = np.argsort(margin[issues], kind="stable")
    ranked = np.flatnonzero(issues)[order]
    label_issues = [{**pool.item(int(i)), "rank": r, "suggested": pool.classes[int(proba[i].argmax())],
                     "self_confidence": round(float(proba[i, codes[i]]), 6),
                     "normalized_margin": round(float(margin[i]), 6)} for r, i in enumerate(ranked, 1)]
    scores = knn.mean(1)
    z = robust_z(scores)
    flagged = np.flatnonzero(z > OUTLIER_Z)
    outliers = [{**pool.item(int(i)), "score": round(float(scores[i]), 6), "z": round(float(z[i]), 2)}
                for i in flagged[np.argsort(-z[flagged], kind="stable")]]
    predicted = proba.argmax(1)
    probe = {"accuracy": float((predicted == codes).mean()), "macro_f1": _macro_f1(codes, predicted),
             "folds": used_folds, "C": strength}
    slices = None
    if group_values is not None:
        slices = slice_metrics(codes, predicted, group_values, group_col)
    warnings = cheap_checks(splits)
    if label_issues:
        warnings.append(f"{len(label_issues)} item(s) look mislabelled (confident learning), e.g. "
                        + examples([f"{i['origin']} ({i['label']} -> {i['suggested']})" for i in label_issues]))
    near_x = [p for p in near if p["kind"] == "cross-split"]
    if near_x:
        warnings.append(f"{len(near_x)} near-duplicate pair(s) span splits (similarity >= {threshold}), e.g. "
                        + examples([f"{p['a']['origin']} ~ {p['b']['origin']}" for p in near_x]))
    if slices and slices["worst"]["accuracy"] < probe["accuracy"] - 0.05:
        w = slices["worst"]
        warnings.append(f"Slice {group_col}={w['group']} is the weakest: {100 * w['accuracy']:.1f}% probe accuracy "
                        f"(n={w['n']}) against {100 * probe['accuracy']:.1f}% overall.")
    settings = {"near_threshold": threshold, "outlier_k": int(knn.shape[1]), "outlier_z": OUTLIER_Z,
                "folds": used_folds, "imbalance_ratio": IMBALANCE_RATIO, "few_examples": FEW_EXAMPLES,
                "seed": seed, "split": {k: v for k, v in splits.split.items() if not k.endswith("_origins")}}
    return AuditReport(data, model, modality, list(pool.classes),
                       {name: int((pool.split == name).sum()) for name in SPLIT_NAMES},
                       exact, near[:MAX_LISTED], len(near), label_issues[:MAX_LISTED], outliers[:MAX_LISTED],
                       class_balance(splits), probe, slices, settings, warnings, outlier_scores=scores.tolist(),
                       pool=pool)


# ---------------------------------------------------------------- embeddings: near duplicates and outliers


def l2_normalise(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; all-zero rows stay zero)."""
    f = np.asarray(feats, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def similarity_scan(unit: np.ndarray, threshold: float, k: int,
                    block: int = 1024) -> tuple[list[tuple[int, int, float]], np.ndarray]:
    """One blocked pass over the cosine-similarity matrix of unit rows.

    Returns the pairs ``(i, j, similarity)`` with ``i < j`` and similarity >= ``threshold``, and
    ``[n, k]`` cosine distances of each row to its ``k`` nearest other rows (ascending). Memory is
    ``block * n`` floats; time is one ``n x n x d`` product.
    """
    n = len(unit)
    k = max(0, min(k, n - 1))
    knn = np.zeros((n, k), dtype=np.float32)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = unit[start:stop] @ unit.T
        rows = np.arange(stop - start)
        sim[rows, rows + start] = -np.inf  # never one's own neighbour
        r, c = np.nonzero(sim >= threshold)
        keep = c > r + start
        pairs += [(int(a) + start, int(b), float(sim[a, b])) for a, b in zip(r[keep], c[keep])]
        if k:
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            knn[start:stop] = np.sort(1.0 - np.take_along_axis(sim, top, 1), axis=1)
    return pairs, knn


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

    if c is not None:
        return run(c)[1], k, float(c)
    tried = {}
    at = PROBE_CS.index(0.01)
    tried[at] = run(PROBE_CS[at])
    for step in (-1, 1):  # walk downhill in either direction; the log-loss is unimodal in log C in practice
        i = at
        while 0 <= i + step < len(PROBE_CS):
            if i + step not in tried:
                tried[i + step] = run(PROBE_CS[i + step])
            if tried[i + step][0] >= tried[i][0]:
                break
            i += step
    best = min(tried, key=lambda i: tried[i][0])
    return tried[best][1], k, PROBE_CS[best]


def confident_joint(labels: np.ndarray, proba: np.ndarray, calibrate: bool = True) -> np.ndarray:
    """``C[given, true]``: counts of items with a given label whose probability of another class clears that
    class's threshold (the mean self-confidence of the class); calibrated so row sums are the given-label
    counts and the total is n (Northcutt et al. 2021, eqs. 1-2)."""
    k = proba.shape[1]
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=k)
    thresholds = np.array([proba[labels == j, j].mean() if counts[j] else 1.0 for j in range(k)])
    above = proba >= thresholds - 1e-6
    confident = above.any(1)
    guess = np.where(above.sum(1) > 1, np.argmax(proba * above, 1), np.argmax(proba, 1))
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[confident], guess[confident]), 1)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))  # every class keeps at least one example
    if not calibrate:
        return joint
    calibrated = joint / np.maximum(joint.sum(1, keepdims=True), 1e-6) * counts[:, None]
    calibrated = calibrated / max(calibrated.sum(), 1e-6) * counts.sum()
    return _round_rows(calibrated)


def find_label_issues(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Boolean mask of likely label errors: confident learning, pruned by noise rate.

    For each given class i and other class j, the ``C[i, j]`` items labelled i with the largest margin
    ``p_j - p_i`` are flagged (cleanlab's ``prune_by_noise_rate``); items the probe still predicts as their
    given label are never flagged.
    """
    labels = np.asarray(labels)
    joint = confident_joint(labels, proba)
    mask = np.zeros(len(labels), dtype=bool)
    for i in range(proba.shape[1]):
        members = np.flatnonzero(labels == i)
        for j in range(proba.shape[1]):
            count = int(joint[i, j])
            if i == j or count <= 0 or not len(members):
                continue
            margin = proba[members, j] - proba[members, i]
            mask[members[np.argsort(margin, kind="stable")[-count:]]] = True
    mask &= proba.argmax(1) != labels
    return mask


def normalized_margin(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``(p_given - max other p + 1) / 2`` in [0, 1]: low is most likely mislabelled."""
    labels = np.asarray(labels)
    given = proba[np.arange(len(labels)), labels]
    others = proba.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (given - others.max(1) + 1.0) / 2.0


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    """Integer matrix whose rows sum to the rounded row sums of ``matrix`` (largest remainders round up)."""
    floor = np.floor(matrix).astype(np.int64)
    short = np.rint(matrix.sum(1)).astype(np.int64) - floor.sum(1)
    for r in range(len(matrix)):
        if short[r] > 0:
            floor[r, np.argsort(-(matrix[r] - floor[r]), kind="stable")[:short[r]]] += 1
    return floor


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


