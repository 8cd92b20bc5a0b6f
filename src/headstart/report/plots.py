"""The report's plots: bare ``matplotlib.figure.Figure`` objects (no pyplot state) returned as PNG data URIs.

A bare ``Figure`` renders to PNG through Agg by itself, so the process-wide backend (a notebook's,
say) is never touched. Each public function takes plain JSON-shaped data and returns
``"data:image/png;base64,..."``, or ``None`` when there is nothing to draw. Text from user data goes
through ``_plain``, so a ``$`` in a class name is shown as typed rather than parsed as mathtext.
Matplotlib's warnings (a glyph missing from the font for a class name in another script, a layout
that does not fit) are silenced while a plot is drawn: the report is still written, and they would
reach the terminal as raw warnings with library paths.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from headstart.report.scores import SHARES, finite
from headstart.report.scores import name as metric_name
from headstart.report.scores import title as metric_title
from headstart.report.scores import value as metric_value

# A muted palette; the usual strategies keep the same colour in every report.
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
KNOWN = {"linear": 0, "partial": 1, "lp-ft": 2, "full": 3, "lora": 4}
TRAIN, VAL = "#8C8C8C", "#4C72B0"
INK, GRID = "#333333", "#E6E6E6"
DPI = 144  # shown at 96 CSS px per inch: crisp on high-density screens
WIDE = 10.2  # inches: the full width of a report section


def _quiet(plot: Callable[..., str | None]) -> Callable[..., str | None]:
    """``plot`` with matplotlib's warnings silenced while it runs (and only then)."""

    @functools.wraps(plot)
    def quiet_plot(*args, **kwargs) -> str | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return plot(*args, **kwargs)

    return quiet_plot


def strategy_colour(name: str, order: Sequence[str] = ()) -> str:
    """A stable colour for a strategy: fixed for the built-in ones, by position for others."""
    if name in KNOWN:
        return PALETTE[KNOWN[name]]
    position = list(order).index(name) if name in order else len(KNOWN)
    return PALETTE[(len(KNOWN) + position) % len(PALETTE)]


def _mean(stat: dict | None) -> float | None:
    return finite((stat or {}).get("mean"))


def _interval(stat: dict) -> tuple[float, float]:
    """The 95% interval of a ``{"mean", "ci95"}`` stat; the mean itself where the interval is missing."""
    mean = _mean(stat) or 0.0
    bounds = [finite(b) for b in (stat.get("ci95") or [])[:2]]
    return (bounds[0], bounds[1]) if len(bounds) == 2 and None not in bounds else (mean, mean)


def _plain(text: object, limit: int = 28) -> str:
    """User text as literal matplotlib text: ``$`` escaped, long names shortened."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0].tolist()
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color("#BBBBBB")
        ax.tick_params(colors=INK, labelsize=8)
        ax.grid(True, color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
    return fig, axes


def _title(ax, text: str) -> None:
    ax.set_title(text, loc="left", fontsize=10, color=INK, fontweight="bold")


def to_data_uri(fig: Figure) -> str:
    """The figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def css_width(uri: str) -> int:
    """The CSS pixel width to show a PNG data URI at (its figure inches at 96 px per inch)."""
    header = base64.b64decode(uri.split(",", 1)[1][:32])
    return round(int.from_bytes(header[16:20], "big") * 96 / DPI)


def _percent_axis(ax, values: Sequence[float], axis: str = "y") -> None:
    """A 0-100% axis cut just below the lowest value, so differences near the top stay visible."""
    low = min([v for v in map(finite, values) if v is not None] or [0.0])
    limits = (max(0.0, math.floor(low * 10) / 10 - 0.05), 1.02)
    ax.set_xlim(*limits) if axis == "x" else ax.set_ylim(*limits)
    getattr(ax, f"{axis}axis").set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))


def _score_axis(ax, metric: str, values: Sequence[float], axis: str = "y") -> None:
    """A percentage axis for a share (accuracy, F1, mAP); the data's own range for R², rho or an error, at least
    0.1 wide (a nearly flat curve is not blown up to fill the panel)."""
    if metric in SHARES:
        _percent_axis(ax, values, axis)
        return
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if high - low < 0.1:
        middle = (low + high) / 2
        ax.set_xlim(middle - 0.05, middle + 0.05) if axis == "x" else ax.set_ylim(middle - 0.05, middle + 0.05)


def best_row(rows: list[dict], key: str) -> dict:
    """The row with the highest ``key`` (missing counts as lowest), the lowest validation loss on ties."""
    def rank(row: dict) -> tuple[float, float]:
        score = finite(row.get(key))
        return (-math.inf if score is None else score, -(row.get("val_loss") or 0.0))

    return max(rows, key=rank)


@_quiet
def history_plot(history: list[dict], metric: str = "accuracy") -> str | None:
    """Loss and ``metric`` (the task's main metric) per epoch (train vs validation), or the validation metric
    vs C for a linear probe."""
    epochs = [row for row in history if "epoch" in row]
    if epochs:
        return _epoch_plot(epochs, metric)
    probe = [row for row in history if "C" in row and finite(row.get(f"val_{metric}")) is not None]
    return _probe_plot(probe, metric) if probe else None


def _epoch_plot(rows: list[dict], metric: str) -> str:
    x = [row["epoch"] for row in rows]
    best = best_row(rows, f"val_{metric}")["epoch"]
    fig, (loss_ax, score_ax) = _figure(WIDE, 3.0, ncols=2)
    for ax, key, label in ((loss_ax, "loss", "Loss"), (score_ax, metric, metric_title(metric))):
        for split, colour, style in (("train", TRAIN, "--"), ("val", VAL, "-")):
            y = [row.get(f"{split}_{key}") for row in rows]
            if any(v is not None for v in y):
                name = "train" if split == "train" else "validation"
                ax.plot(x, [np.nan if v is None else v for v in y], style, color=colour, marker="o",
                        markersize=3.5, linewidth=1.8, label=name)
        ax.axvline(best, color="#55A868", linewidth=1, linestyle=":", zorder=0)
        ax.set_xlabel("epoch", fontsize=8, color=INK)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        _title(ax, label)
    _score_axis(score_ax, metric, [row.get(k) for row in rows for k in (f"train_{metric}", f"val_{metric}")])
    score_ax.annotate(f"best epoch {best}", xy=(best, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -2),
                      textcoords="offset points", fontsize=7, color="#3B7A47", va="top")
    loss_ax.legend(fontsize=8, frameon=False)
    return to_data_uri(fig)


def _probe_plot(rows: list[dict], metric: str) -> str:
    rows = sorted(rows, key=lambda r: r["C"])
    cs = [r["C"] for r in rows]
    key = f"val_{metric}"
    best = best_row(rows, key)
    fig, (loss_ax, score_ax) = _figure(WIDE, 2.9, ncols=2)
    for ax, column, label in ((loss_ax, "val_loss", "Validation loss"),
                              (score_ax, key, f"Validation {metric_name(metric)}")):
        y = [np.nan if r.get(column) is None else r[column] for r in rows]
        ax.plot(cs, y, "-o", color=VAL, markersize=4, linewidth=1.8)
        if best.get(column) is not None:
            ax.plot([best["C"]], [best[column]], "o", markersize=11, markerfacecolor="none",
                    markeredgecolor="#55A868", markeredgewidth=2)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("C (weaker regularisation to the right)", fontsize=8, color=INK)
        _title(ax, label)
    _score_axis(score_ax, metric, [r[key] for r in rows])
    score_ax.annotate(f"chosen C = {best['C']:g}", xy=(best["C"], best[key]), xytext=(0, -18),
                      textcoords="offset points", ha="center", fontsize=7.5, color="#3B7A47")
    return to_data_uri(fig)


@_quiet
def confusion_plot(matrix: list[list[int]], classes: list[str]) -> str | None:
    """Heatmap of the confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    counts = np.asarray(matrix, dtype=float)
    if counts.size == 0 or counts.ndim != 2:
        return None
    k = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = min(9.0, max(3.6, 0.45 * k + 1.8))
    fig, (ax,) = _figure(side + 0.8, side * 0.9)  # the labels and colour bar take width, not height
    ax.grid(False)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="equal")
    labels = [_plain(c, 18) for c in classes]
    ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), labels)
    if k <= 25:
        size = 9 if k <= 8 else 7 if k <= 15 else 5.5
        for i in range(k):
            for j in range(k):
                if counts[i, j] or i == j:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=size,
                            color="white" if share[i, j] > 0.55 else INK)
    ax.set_xlabel("predicted class", fontsize=8, color=INK)
    ax.set_ylabel("true class", fontsize=8, color=INK)
    bar = fig.colorbar(image, ax=ax, shrink=0.7, format=ticker.PercentFormatter(1.0, decimals=0))
    bar.ax.tick_params(labelsize=7)
    bar.set_label("share of the true class", fontsize=7)
    bar.outline.set_visible(False)
    return to_data_uri(fig)


@_quiet
def comparison_plot(rows: list[dict], metric: str = "accuracy") -> str | None:
    """The validation ``metric`` (the task's main one: mean with 95% CI) and time of each strategy that ran."""
    key = f"val_{metric}"
    done = [r for r in rows if r.get("status") != "skipped" and _mean(r.get(key)) is not None]
    if not done:
        return None
    names = [str(r["strategy"]) for r in done]
    fig, (score_ax, time_ax) = _figure(WIDE, 0.45 * len(done) + 1.3, ncols=2)
    y = np.arange(len(done))[::-1]
    for yi, row, name in zip(y, done, names):
        stat, colour = row[key], strategy_colour(name, names)
        lo, hi = _interval(stat)
        score_ax.plot([lo, hi], [yi, yi], color=colour, linewidth=3, alpha=0.35, solid_capstyle="round")
        score_ax.plot([stat["mean"]], [yi], "o", color=colour, markersize=8)
        score_ax.annotate(metric_value(metric, stat["mean"]), xy=(stat["mean"], yi), xytext=(0, 7),
                          textcoords="offset points", ha="center", fontsize=7.5, color=INK)
        seconds = row.get("seconds")
        if seconds is not None:
            time_ax.barh(yi, seconds, color=colour, height=0.55)
            time_ax.annotate(format_seconds(seconds), xy=(seconds, yi), xytext=(3, 0), textcoords="offset points",
                             va="center", fontsize=7.5, color=INK)
    for ax in (score_ax, time_ax):
        ax.set_yticks(y, [_plain(n) for n in names])
        ax.set_ylim(-0.7, len(done) - 0.3)
    _score_axis(score_ax, metric, [_interval(r[key])[0] for r in done], axis="x")
    if metric not in SHARES:
        score_ax.margins(x=0.15)
    time_ax.margins(x=0.25)
    _title(score_ax, f"Validation {metric_name(metric)} (95% CI)")
    _title(time_ax, "Time")
    time_ax.set_xlabel("seconds", fontsize=8, color=INK)
    return to_data_uri(fig)


@_quiet
def learning_curve_plot(curve: dict[str, list[dict]], metric: str = "accuracy") -> str | None:
    """The validation ``metric`` against training-set size (log x), one line per strategy with its 95% CI band.
    A point's score is under ``metric``, or under ``"accuracy"`` as comparisons wrote it before tasks."""
    curve = {name: [dict(p, score=p.get(metric, p.get("accuracy"))) for p in points] for name, points
             in (curve or {}).items()}
    curve = {name: [p for p in points if _mean(p["score"]) is not None and p.get("n")]
             for name, points in curve.items()}
    curve = {name: sorted(points, key=lambda p: p["n"]) for name, points in curve.items() if points}
    if not curve:
        return None
    fig, (ax,) = _figure(WIDE * 0.75, 3.6)
    names, everything, sizes = list(curve), [], set()
    for name, points in curve.items():
        colour = strategy_colour(name, names)
        n = [p["n"] for p in points]
        mean = [p["score"]["mean"] for p in points]
        ci = [_interval(p["score"]) for p in points]
        ax.fill_between(n, [c[0] for c in ci], [c[1] for c in ci], color=colour, alpha=0.15, linewidth=0)
        ax.plot(n, mean, "-o", color=colour, markersize=4, linewidth=2, label=_plain(name))
        everything += [c[0] for c in ci]
        sizes.update(n)
    ax.set_xscale("log")
    if len(sizes) <= 8:
        ax.set_xticks(sorted(sizes), [str(s) for s in sorted(sizes)])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel("training examples (log scale)", fontsize=8, color=INK)
    _score_axis(ax, metric, everything)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    _title(ax, f"{metric_title(metric)} by training-set size (mean, 95% CI band)")
    return to_data_uri(fig)


@_quiet
def reliability_plot(calibration: dict) -> str | None:
    """Reliability diagram of each scored split (validation, test): accuracy against mean confidence per
    confidence bin, before and after temperature scaling, with the diagonal of perfect calibration."""
    splits = [(name, calibration[name]) for name in ("val", "test") if (calibration or {}).get(name)]
    if not splits:
        return None
    fig, axes = _figure(WIDE * 0.42 * len(splits), 3.4, ncols=len(splits))
    for ax, (name, scores) in zip(axes, splits):
        ax.plot([0, 1], [0, 1], ":", color="#8C8C8C", linewidth=1, label="perfect calibration")
        for key, colour, style, label in (("before", TRAIN, "--", "before"), ("after", VAL, "-", "after")):
            bins = scores.get(f"reliability_{key}") or []
            ece = finite(scores.get(f"ece_{key}"))
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], style, color=colour,
                    marker="o", markersize=3.5, linewidth=1.8,
                    label=f"{label}: ECE {100 * ece:.1f}%" if ece is not None else label)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("confidence (top probability)", fontsize=8, color=INK)
        ax.legend(fontsize=7.5, frameon=False, loc="upper left")
        _title(ax, f"{'Validation' if name == 'val' else 'Test'} reliability (n = {scores.get('n', 0):,})")
    axes[0].set_ylabel("accuracy", fontsize=8, color=INK)
    return to_data_uri(fig)


@_quiet
def label_issue_plot(issues: list[dict]) -> str | None:
    """Likely label errors by rank: the probe's out-of-sample probability of the given label (low: likely wrong)."""
    issues = [i for i in issues if finite(i.get("self_confidence")) is not None]
    if not issues:
        return None
    fig, (ax,) = _figure(WIDE * 0.75, 2.6)
    ax.plot([i["rank"] for i in issues], [i["self_confidence"] for i in issues], "-o", color=PALETTE[3],
            markersize=3.5, linewidth=1.4)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("rank (most likely mislabelled first)", fontsize=8, color=INK)
    _title(ax, "Likely label errors: out-of-sample probability of the given label, by rank")
    return to_data_uri(fig)


@_quiet
def outlier_plot(scores: Sequence[float], cut: float | None) -> str | None:
    """Histogram of every item's outlier score (mean cosine distance to its nearest neighbours), the cut
    beyond which items are flagged as a line and each flagged item as a red tick."""
    values = np.array([v for v in map(finite, scores) if v is not None])
    if values.size < 2:
        return None
    fig, (ax,) = _figure(WIDE * 0.75, 2.6)
    ax.hist(values, bins=min(60, max(10, values.size // 10)), color=VAL, alpha=0.8)
    if cut is not None:
        flagged = values[values > cut]
        ax.axvline(cut, color=PALETTE[3], linewidth=1, linestyle="--")
        ax.annotate(f"flagged beyond {cut:.3g}", xy=(cut, 1), xycoords=("data", "axes fraction"), xytext=(4, -2),
                    textcoords="offset points", fontsize=7, color=PALETTE[3], va="top")
        ax.plot(flagged, np.zeros_like(flagged), "|", color=PALETTE[3], markersize=14, markeredgewidth=1.6,
                clip_on=False)
    ax.set_xlabel("mean cosine distance to the nearest neighbours", fontsize=8, color=INK)
    ax.set_ylabel("items", fontsize=8, color=INK)
    _title(ax, f"Outlier scores of all {values.size:,} items")
    return to_data_uri(fig)


@_quiet
def slice_plot(rows: list[dict], overall: float | None = None) -> str | None:
    """Accuracy of each slice with its 95% interval, the worst in red, the overall accuracy as a dashed line."""
    rows = [r for r in rows if finite(r.get("accuracy")) is not None][:40]
    if not rows:
        return None
    fig, (ax,) = _figure(WIDE * 0.75, 0.32 * len(rows) + 1.1)
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows):
        colour = PALETTE[3] if row is rows[0] else VAL
        lo, hi = _interval({"mean": row["accuracy"], "ci95": row.get("ci95")})
        ax.plot([lo, hi], [yi, yi], color=colour, linewidth=3, alpha=0.35, solid_capstyle="round")
        ax.plot([row["accuracy"]], [yi], "o", color=colour, markersize=6)
    if finite(overall) is not None:
        ax.axvline(overall, color=INK, linewidth=1, linestyle="--")
    ax.set_yticks(y, [f"{_plain(r['group'])} (n={r.get('n', '?')})" for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    _percent_axis(ax, [_interval({"mean": r["accuracy"], "ci95": r.get("ci95")})[0] for r in rows], axis="x")
    _title(ax, "Accuracy per slice (95% CI); dashed: all items")
    return to_data_uri(fig)


@_quiet
def label_scores_plot(per_label: dict[str, dict], limit: int = 40) -> str | None:
    """F1 and average precision of each label (multi-label), weakest F1 at the top; at most ``limit`` labels,
    the weakest ones."""
    ranked = sorted(per_label.items(), key=lambda item: (finite(item[1].get("f1")) or 0.0, item[0]))[:limit]
    if not ranked:
        return None
    fig, (ax,) = _figure(WIDE * 0.75, 0.34 * len(ranked) + 1.2)
    y = np.arange(len(ranked))[::-1]
    for offset, key, colour, label in ((0.19, "f1", VAL, "F1 at the tuned threshold"),
                                       (-0.19, "average_precision", PALETTE[2], "average precision")):
        values = [finite(s.get(key)) or 0.0 for _, s in ranked]
        ax.barh(y + offset, values, height=0.36, color=colour, label=label)
    ax.set_yticks(y, [f"{_plain(name)} (n={s.get('support', '?')})" for name, s in ranked])
    ax.set_ylim(-0.7, len(ranked) - 0.3)
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))
    ax.legend(fontsize=7.5, frameon=False, loc="lower right")
    shown = f"the {len(ranked)} weakest of {len(per_label)} labels" if len(per_label) > len(ranked) else "each label"
    _title(ax, f"F1 and average precision of {shown}")
    return to_data_uri(fig)


@_quiet
def prediction_plot(true: Sequence[float], predicted: Sequence[float], title: str,
                    baseline: float | None = None) -> str | None:
    """Regression: each item's prediction against its true value, the diagonal where they would be equal and,
    dotted, the training mean (the baseline that always predicts it)."""
    pairs = np.array([(t, p) for t, p in zip(map(finite, true), map(finite, predicted))
                      if t is not None and p is not None], dtype=float).reshape(-1, 2)
    if len(pairs) == 0:
        return None
    fig, (ax,) = _figure(5.6, 4.8)
    low, high = float(pairs.min()), float(pairs.max())
    pad = 0.05 * (high - low) or 0.5
    low, high = low - pad, high + pad
    ax.plot([low, high], [low, high], "--", color="#8C8C8C", linewidth=1.2, label="predicted = true", zorder=1)
    if finite(baseline) is not None:
        ax.axhline(baseline, color=PALETTE[1], linewidth=1.2, linestyle=":", label="training mean", zorder=1)
    few = len(pairs) <= 300
    ax.scatter(pairs[:, 0], pairs[:, 1], s=24 if few else 8, color=VAL, alpha=0.75 if few else 0.4, linewidths=0,
               zorder=2)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("true value", fontsize=8, color=INK)
    ax.set_ylabel("predicted value", fontsize=8, color=INK)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left")
    _title(ax, _plain(title, 70))
    return to_data_uri(fig)


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
