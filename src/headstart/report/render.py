"""report.html: one self-contained page (inline CSS, PNG plots as data URIs, no script, no network).

The JSON files of a run directory are the source of truth; this module only reads them. Every string
that comes from user data (class names, paths, strategy names, notes) goes through ``html.escape``.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from headstart.core.fileio import write_text
from headstart.report.unlabelled import pool_sentence
from headstart.report import plots, previews, scores
from headstart.tasks.kinds import TaskKind, kind_of

CSS = """
*{box-sizing:border-box} dl{margin:0} .scroll{overflow-x:auto} .muted{color:#6e7781}
body{margin:0;background:#f4f5f7;color:#24292f;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:28px 24px 40px}
header,section{background:#fff;border:1px solid #e3e6ea;border-radius:10px;padding:22px 26px;margin-bottom:18px}
h1{font-size:28px;margin:4px 0 2px;line-height:1.25} h2{font-size:20px;margin:0 0 14px}
h3{font-size:14px;text-transform:uppercase;letter-spacing:.05em;color:#57606a;margin:22px 0 8px}
.brand,.eyebrow{font-size:12px;font-weight:600;letter-spacing:.08em;text-transform:uppercase;color:#4C72B0}
.subtitle,.lede{color:#57606a;margin:0 0 12px}
.facts{display:flex;flex-wrap:wrap;gap:10px 28px;border-top:1px solid #eef0f2;padding-top:12px}
.facts dt,.kv dt,.chip span{font-size:12px;color:#6e7781} .facts dd{margin:0;font-weight:600;word-break:break-all}
.callout{border-left:5px solid #55A868;background:#f6fbf7} .callout h2{font-size:24px;margin:2px 0 8px}
.strategy{color:#2f7a43} .reasons{margin:0 0 12px;padding-left:20px} .chips{display:flex;flex-wrap:wrap;gap:8px}
.chip{background:#fff;border:1px solid #d8e7dc;border-radius:8px;padding:5px 11px} .chip span{display:block}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:14px}
.card{border:1px solid #e3e6ea;border-radius:10px;padding:16px 18px;display:flex;flex-wrap:wrap;gap:4px 36px}
.hero{flex:1 1 250px} .card .kv{flex:1 1 290px} .card-head{display:flex;align-items:center;gap:8px;margin-bottom:6px}
.big{font-size:40px;font-weight:700;line-height:1.1;color:#1f3f73} .sub{color:#57606a;font-size:13px}
.cibar{position:relative;height:8px;background:#eef0f2;border-radius:4px;margin:10px 0 14px}
.cibar .range{position:absolute;top:0;bottom:0;background:#a9bfe0;border-radius:4px}
.cibar .dot{position:absolute;top:-3px;width:14px;height:14px;margin-left:-7px;border-radius:50%;
  background:#4C72B0;border:2px solid #fff}
.kv div{display:flex;justify-content:space-between;gap:12px;border-top:1px solid #f0f1f3;padding:5px 0}
.kv dd{margin:0;font-weight:600;text-align:right}
.tag,.badge{font-size:12px;border-radius:999px;padding:1px 9px;background:#eef2f8;color:#3b5b8f;font-weight:600;
  vertical-align:middle}
.badge.ok,.badge.done{background:#e3f3e7;color:#2f7a43} .badge.skipped{background:#eef0f2;color:#6e7781}
.badge.stopped{background:#fff3d6;color:#8a5a00} .badge.warn{background:#fde7e5;color:#b3261e}
.item{display:flex;gap:10px;align-items:flex-start;margin:2px 0 6px;min-width:220px} .origin{word-break:break-all}
.thumb{width:64px;height:64px;object-fit:contain;flex:none;border:1px solid #e3e6ea;border-radius:4px;
  background:#fafbfc}
.preview{display:block;color:#57606a;font-size:12px;font-weight:400;max-width:60ch;white-space:normal}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.mistake{margin:0;border:1px solid #e3e6ea;border-radius:8px;padding:8px 10px;font-size:12px}
.mistake figcaption span{display:block} .mistake .wrong b{color:#b3261e}
.warnings{border-left:5px solid #C44E52;background:#fdf1f0;margin:0 0 12px;padding:8px 12px 8px 30px;color:#8a1f19}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th{text-align:left;font-size:12px;color:#6e7781;font-weight:600;border-bottom:2px solid #d8dde3;padding:6px 10px}
td{border-bottom:1px solid #eef0f2;padding:7px 10px;vertical-align:top;white-space:nowrap}
td small{display:block;color:#6e7781;font-size:11px} td.name,td.reason{white-space:normal}
caption{caption-side:bottom;text-align:left;color:#6e7781;font-size:12px;padding-top:6px}
.name{font-weight:600;word-break:break-word} .reason{color:#6e7781;font-size:12px;font-weight:400}
tr.recommended td{background:#f3faf5} tr.skipped td{color:#8c959f}
tr.weak td{background:#fdf1f0} tr.weak td.name{color:#b3261e} tr.weak .meter span{background:#C44E52}
.meter{display:inline-block;width:56px;height:6px;background:#eef0f2;border-radius:3px;margin-right:8px;
  vertical-align:middle}
.meter span{display:block;height:100%;background:#4C72B0;border-radius:3px}
figure{margin:10px 0} figure img{max-width:100%;height:auto;display:block}
figcaption{color:#6e7781;font-size:12px;margin-top:4px} .notes li{margin-bottom:4px}
.pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:22px;align-items:start}
.pair.stack{grid-template-columns:1fr} @media (max-width:800px){.pair{grid-template-columns:1fr}}
footer{color:#8c959f;font-size:12px;text-align:center}
"""


@dataclass
class ReportData:
    """Everything one report shows; ``runs`` are ``{"name", "strategy", "metrics", "history", "config"}`` dicts."""

    title: str
    subtitle: str
    runs: list[dict]
    comparison: dict | None = None
    recommendation: dict | None = None
    notes: Sequence[str] = ()
    meta: dict[str, str] = field(default_factory=dict)  # header facts (Data, Model, Strategy, Date); derived if absent
    audit: dict | None = None  # {"lede": str, "tables": [{"title", "columns", "rows"}]} from headstart.workflows.audit


def render_report(sections: ReportData) -> str:
    """The whole report as one HTML string."""
    runs = [dict(run, config=_fit_config(run.get("config"))) for run in sections.runs]
    recommended = (sections.recommendation or {}).get("strategy")
    body = [
        _header(sections, runs),
        _recommendation(sections.recommendation),
        _comparison(sections.comparison, recommended),
        _summary(runs, recommended),
        *(_run_details(i, run) for i, run in enumerate(runs)),
        _audit(sections.audit),
        _notes(sections.notes),
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(sections.title)}</title><style>{CSS}</style></head>\n"
            f'<body><main>{"".join(part for part in body if part)}'
            f'<footer>Written by headstart from the run\'s JSON files.</footer></main></body></html>\n')


def summary_card(run: dict) -> str:
    """One run's summary card, as report.html shows it, with its styles scoped to it: for a notebook cell.

    ``run`` is a report run dict (``{"name", "strategy", "metrics", "config"}``); only class rules of the
    report's CSS are kept, each under ``.headstart-card``, so the notebook's own page keeps its looks.
    """
    scope = "headstart-card"
    rules = []
    for selectors, body in re.findall(r"([^{}@]+)\{([^{}]*)\}", CSS):
        names = [name.strip() for name in selectors.split(",")]
        if all(name.startswith(".") for name in names):
            rules.append(",".join(f".{scope} {name}" for name in names) + "{" + body + "}")
    font = 'font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#24292f'
    card = _card(dict(run, config=_fit_config(run.get("config"))), None)
    return (f'<div class="{scope}"><style>.{scope}{{{font}}}.{scope} dl{{margin:0}}{"".join(rules)}</style>'
            f'<div class="cards">{card}</div></div>')


def render_run_report(run_dir: Path, shown_as: Path | None = None) -> Path:
    """Read one run directory's JSON files and write ``run_dir/report.html``; return its path. ``shown_as`` is the
    run's own folder when ``run_dir`` is where it is staged before the rename (see headstart.runs.folder.save_run)."""
    run_dir = Path(run_dir)
    shown = Path(shown_as or run_dir)
    run = {**read_run(run_dir), "name": shown.name}
    cfg = run["config"]
    split = run.get("split") or {}
    stamp = datetime.datetime.fromtimestamp((run_dir / "metrics.json").stat().st_mtime)
    meta = {"Data": _data_summary(split), "Model": str(cfg.get("model", "?")),
            "Strategy": str(run["strategy"]), "Date": stamp.strftime("%Y-%m-%d %H:%M"), "Run": str(shown)}
    data = ReportData(
        title=f"{run['strategy']} · {cfg.get('model', 'model')}",
        subtitle=f"How the {cfg.get('model', '?')} backbone did on your data with the {run['strategy']} strategy.",
        runs=[run], recommendation=auto_decision(run), notes=run_notes(run), meta={k: v for k, v in meta.items() if v})
    path = run_dir / "report.html"
    write_text(path, render_report(data))
    return path


def read_run(run_dir: Path) -> dict:
    """One run directory as a report run dict (``split`` added when split.json is there)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    config = _fit_config(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    history_file = run_dir / "history.jsonl"
    lines = history_file.read_text(encoding="utf-8").splitlines() if history_file.exists() else []
    split_file = run_dir / "split.json"
    split = json.loads(split_file.read_text(encoding="utf-8")) if split_file.exists() else None
    return {"name": run_dir.name, "strategy": config.get("strategy", "?"), "metrics": metrics,
            "history": [json.loads(line) for line in lines if line.strip()], "config": config, "split": split}


def auto_decision(run: dict) -> dict | None:
    """For a ``--strategy auto`` run: the advice, every fit auto checked and the one it kept, as a recommendation."""
    metrics = run.get("metrics") or {}
    auto = (metrics.get("strategy_info") or {}).get("auto")
    if not auto:
        return None
    main = scores.main_metric(metrics)
    advice = (auto.get("advice") or {}).get("recommendation") or {}
    fitted = auto.get(f"val_{main}") or auto.get("val_accuracy") or {}
    checked = ", ".join(f"{name} {scores.value(main, value)}" for name, value in fitted.items())
    kept = auto.get("kept", "?")
    reasons = [*advice.get("reasons", []),
               f"auto fitted {checked} (validation {scores.name(main)}) and kept {kept}"
               + (", the cheapest of the best." if kept == "linear" and len(fitted) > 1 else ".")]
    return {"strategy": kept, "reasons": reasons, "numbers": advice.get("numbers") or {}}


def run_notes(run: dict) -> list[str]:
    """Caveats a reader should know: the data checks' warnings, no test split, a small evaluation set, early
    stopping, LP-FT's probe stage, tuned thresholds or calibration, the input size."""
    metrics = run.get("metrics") or {}
    main = scores.main_metric(metrics)
    notes = [*metrics.get("warnings", []), *metrics.get("data_warnings", [])]
    split, headline = _headline(metrics)
    epochs = [row for row in run.get("history") or [] if "train_loss" in row]  # epoch 0 (before training) aside
    if split == "val":
        chose = "epoch" if epochs else "regularisation strength C"
        tuned = " and tuned the decision thresholds" if metrics.get("thresholds") else ""
        notes.append(f"There is no test split: the {scores.name(main)} is measured on the validation set, which "
                     f"also chose the {chose}{tuned}, so it is a little optimistic. Hold out a test set (e.g. "
                     "--test-fraction 0.2) for an unbiased figure.")
    if headline and headline.get("n", 0) < 100:
        notes.append(f"Only {headline['n']} {_SPLITS[split]} examples: the 95% interval of the {scores.name(main)} "
                     f"spans {scores.spread(main, headline.get(f'{main}_ci95')) or '?'}, so small differences "
                     "between runs are noise.")
    planned = (run.get("config") or {}).get("epochs")
    if epochs and planned and len(epochs) < planned:
        best = (metrics.get("strategy_info") or {}).get("best_epoch")
        if best is None:
            best = plots.best_row(epochs, f"val_{main}")["epoch"]
        notes.append(f"Training stopped early after epoch {epochs[-1]['epoch']} of {planned}: validation did not "
                     f"improve. " + (f"The saved weights are from epoch {best}." if best else "No epoch beat the starting "
                     "model (the linear probe's head), which is the one saved."))
    probe = (metrics.get("strategy_info") or {}).get("probe")
    probe_score = (probe or {}).get(f"val_{main}", (probe or {}).get("val_accuracy"))
    if probe_score is not None:
        notes.append(f"LP-FT first fitted a linear probe (C = {_value(probe.get('C'))}, validation "
                     f"{scores.name(main)} {scores.value(main, probe_score)}); fine-tuning started from its head "
                     "(epoch 0 in the curves).")
    pool = (metrics.get("strategy_info") or {}).get("unlabelled")
    if pool:
        notes.append(pool_sentence(pool))
    calibration = metrics.get("calibration")
    if calibration:
        chose = "the epoch kept" if epochs else "the regularisation strength C"
        notes.append(f"Probabilities are calibrated by temperature scaling (T = "
                     f"{calibration.get('temperature', 1.0):.3g}), fitted on the same validation set that chose "
                     f"{chose}: the validation ECE after scaling is a "
                     "little optimistic" + ("; the test ECE is not." if calibration.get("test") else "."))
    notes += _threshold_note(metrics)
    size = (run.get("config") or {}).get("image_size")
    if size:
        notes.append(f"Images were fed at {size} px (chosen from their native size unless --image-size was given).")
    return notes


def _threshold_note(metrics: dict) -> list[str]:
    """Multi-label: the decision thresholds were tuned on validation, so its scores are a little optimistic."""
    thresholds = metrics.get("thresholds")
    if not thresholds:
        return []
    return [f"Each label's decision threshold was tuned on the validation set (validation micro-F1 "
            f"{scores.value('micro_f1', thresholds.get('val_micro_f1_at_0.5'))} at 0.5, "
            f"{scores.value('micro_f1', thresholds.get('val_micro_f1_tuned'))} tuned): the validation scores are a "
            "little optimistic" + ("; the test scores are not." if metrics.get("test") else ".")]


# ---------------------------------------------------------------- formatting

_SPLITS = {"val": "validation", "test": "test"}


def _fit_config(config: dict | None) -> dict:
    """FitConfig fields, whether given bare or as config.json's ``{"config": {...}}``."""
    config = config or {}
    inner = config.get("config")
    return inner if isinstance(inner, dict) else config


def _headline(metrics: dict) -> tuple[str, dict]:
    """The split the headline numbers come from: test when there is one, else validation."""
    return ("test", metrics["test"]) if metrics.get("test") else ("val", metrics.get("val") or {})


def _pct(value: float | None, digits: int = 1) -> str:
    value = plots.finite(value)
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _ci(ci: Sequence[float] | None) -> str:
    bounds = [plots.finite(b) for b in (ci or [])[:2]]
    return "" if len(bounds) < 2 or None in bounds else f"{100 * bounds[0]:.1f}–{100 * bounds[1]:.1f}%"


def _count(n: float | None) -> str:
    if n is None:
        return "—"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:,.0f}"


def _mb(mb: float | None) -> str:
    return "—" if mb is None else f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _chip_value(value: object) -> str:
    """A number, or a pair of numbers as a range (escaped)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{_value(value[0])}–{_value(value[1])}"
    return _value(value)


def _value(value: object) -> str:
    """A recommendation number, readably (escaped)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(str(value))
    return f"{value:,}" if isinstance(value, int) else escape(f"{value:.4g}")


def _data_summary(split: dict) -> str:
    """Where the items came from (their common file or folder) and the split sizes."""
    counts = " · ".join(f"{n:,} {name}" for name, n in (split.get("sizes") or {}).items() if n)
    origins = {re.sub(r" (line|row|list item) \d+$", "", o)
               for key in ("train_origins", "val_origins", "test_origins") for o in split.get(key) or []}
    try:
        root = origins.pop() if len(origins) == 1 else os.path.commonpath(origins) if origins else ""
    except ValueError:  # mixed absolute and relative origins
        root = ""
    return " — ".join(part for part in (root, counts) if part)


def _figure(uri: str | None, alt: str, caption: str = "") -> str:
    if not uri:
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    width = plots.css_width(uri)
    return f'<figure><img src="{uri}" alt="{escape(alt)}" style="width:{width}px">{cap}</figure>'


# ---------------------------------------------------------------- sections

def _header(data: ReportData, runs: list[dict]) -> str:
    meta = dict(data.meta)
    models = sorted({str(r["config"].get("model")) for r in runs if r["config"].get("model")})
    strategies = [str(r.get("strategy")) for r in runs]
    meta.setdefault("Model", ", ".join(models))
    meta.setdefault("Strategy", ", ".join(dict.fromkeys(strategies)))
    meta.setdefault("Date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    facts = "".join(f"<div><dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd></div>" for k, v in meta.items() if v)
    return (f'<header id="header"><div class="brand">headstart report</div><h1>{escape(data.title)}</h1>'
            f'<p class="subtitle">{escape(data.subtitle)}</p><dl class="facts">{facts}</dl></header>')


_WORDS = {"examples_per_class_min": "fewest examples in a class", "probe_accuracy": "linear probe accuracy (CV)",
          "probe_ci95": "probe 95% interval", "slope_per_doubling": "probe gain per doubling of data",
          "estimated_partial_s": "partial, estimated seconds", "estimated_full_s": "full, estimated seconds",
          "estimated_contrastive_s": "contrastive, estimated seconds", "budget_s": "budget, seconds",
          "logme": "LogME (transferability)"}


def _words(key: object) -> str:
    """A record key as a reader would say it: ``probe_accuracy`` -> "linear probe accuracy (CV)"."""
    return _WORDS.get(str(key), str(key).replace("_", " "))


def _recommendation(rec: dict | None) -> str:
    if not rec:
        return ""
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in rec.get("reasons") or [])
    numbers = "".join(f'<div class="chip"><span>{escape(_words(k))}</span><b>{_chip_value(v)}</b></div>'
                      for k, v in (rec.get("numbers") or {}).items() if v is not None)
    return (f'<section id="recommendation" class="callout"><div class="eyebrow">Recommendation</div>'
            f'<h2>Use <span class="strategy">{escape(str(rec.get("strategy", "?")))}</span></h2>'
            f'<ul class="reasons">{reasons}</ul><div class="chips">{numbers}</div></section>')


def _comparison(comp: dict | None, recommended: str | None) -> str:
    if not comp:
        return ""
    rows = comp.get("rows") or []
    main = _comparison_metric(comp)
    second = kind_of({"task": comp.get("task"), "main_metric": main}).second_metric
    head = (f"<tr><th>Strategy</th><th>Status</th><th>Val {scores.name(main)}</th><th>Val {scores.name(second)}</th>"
            f"<th>Test {scores.name(main)}</th><th>Train−val gap</th><th>Trainable params</th><th>Time</th>"
            "<th>Memory</th></tr>")
    body = "".join(_comparison_row(row, recommended, main, second) for row in rows)
    lede = " · ".join(escape(s) for s in _comparison_setup(comp) if s)
    warnings = "".join(f"<li>{escape(str(w))}</li>" for w in comp.get("warnings") or [])
    warnings = f'<ul class="warnings">{warnings}</ul>' if warnings else ""
    overview = _figure(plots.comparison_plot(rows, main), f"{scores.name(main)} and time per strategy")
    curve = _figure(plots.learning_curve_plot(comp.get("learning_curve") or {}, main), "learning curve",
                    f"Validation {scores.name(main)} as the training set grows, per strategy; where the lines part "
                    "is where the extra trainable parameters start to pay.")
    curve = f'<h3 id="learning-curve">Learning curve</h3>{curve}' if curve else ""
    return (f'<section id="comparison"><h2>Transfer learning vs fine-tuning</h2><p class="lede">{lede}</p>'
            f'{warnings}{overview}<div class="scroll"><table class="compare"><thead>{head}</thead><tbody>{body}</tbody>'
            f"</table></div>{curve}</section>")


def _comparison_metric(comp: dict) -> str:
    """The metric a comparison ranks by: its task's main metric, as a row (or its ``metrics``) or the comparison
    names it; accuracy when none does (a comparison written before tasks)."""
    for row in comp.get("rows") or []:
        named = row.get("main_metric") or (row.get("metrics") or {}).get("main_metric")
        if named:
            return str(named)
    return str(comp.get("main_metric") or "accuracy")


def _comparison_setup(comp: dict) -> list[str]:
    """What ran (per strategy, as the comparison counted it), the few-shot setting and the budget."""
    ran, shots, budget = comp.get("ran"), comp.get("shots"), comp.get("budget_s")
    planned = f" ({comp['repeats_planned']} {comp.get('repeat_kind', 'repeats')} planned per strategy)" \
        if comp.get("repeats_planned") else ""
    return [f"Fits that ran{planned}: {ran}; means and 95% CIs" if ran else "",
            f"{shots} labelled examples per class (few-shot)" if shots else "",
            f"budget {plots.format_seconds(budget)}, used {plots.format_seconds(comp['seconds'])} before saving"
            if budget is not None and comp.get("seconds") is not None else ""]


def _stat(stat: dict | None, key: str = "accuracy", as_difference: bool = False) -> str:
    """A ``{"mean", "ci95"}`` score as the comparison table writes it: the mean, its interval in small type."""
    if plots.finite((stat or {}).get("mean")) is None:
        return "—"
    if as_difference:
        return scores.difference(key, stat["mean"])
    ci = scores.interval(key, stat.get("ci95"))
    return f"{scores.value(key, stat['mean'])}<small>{ci}</small>" if ci else scores.value(key, stat["mean"])


def _comparison_row(row: dict, recommended: str | None, main: str = "accuracy", second: str = "macro_f1") -> str:
    status = str(row.get("status") or "ok")
    label = status if status == "skipped" else str(row.get("status_text") or status)  # skipped: reason beside it
    name = escape(str(row.get("strategy", "?")))
    reason = f'<div class="reason">{escape(str(row["reason"]))}</div>' if row.get("reason") else ""
    cls = escape(" ".join(c for c in ("recommended" if row.get("strategy") == recommended else "", status) if c))
    first = f'<td class="name">{name}{reason if status != "skipped" else ""}</td>' \
            f'<td><span class="badge {escape(status)}">{escape(label)}</span></td>'
    if status == "skipped":
        return f'<tr class="{cls}">{first}<td colspan="7" class="reason">{escape(str(row.get("reason", "")))}</td></tr>'
    share = row.get("trainable_share")
    params = _count(row.get("trainable_params")) + (f"<small>{_pct(share, 1)}</small>" if share is not None else "")
    seconds = row.get("seconds")
    cells = [_stat(row.get(f"val_{main}"), main), _stat(row.get(f"val_{second}"), second),
             _stat(row.get(f"test_{main}"), main), _stat(row.get("gap"), main, as_difference=True), params,
             "—" if seconds is None else plots.format_seconds(seconds), _mb(row.get("peak_rss_mb"))]
    return f'<tr class="{cls}">{first}{"".join(f"<td>{c}</td>" for c in cells)}</tr>'


def _summary(runs: list[dict], recommended: str | None) -> str:
    if not runs:
        return ""
    cards = "".join(_card(run, recommended) for run in runs)
    return f'<section id="summary"><h2>Results</h2><div class="cards">{cards}</div></section>'


def _bar_place(score: float | None) -> float:
    """Where a score sits on the card's 0-1 bar, in percent; an R² or rho below 0 at the left end."""
    return 100 * min(1.0, max(0.0, score or 0.0))


def _card(run: dict, recommended: str | None) -> str:
    m = run.get("metrics") or {}
    main, kind = scores.main_metric(m), kind_of(m)
    split, headline = _headline(m)
    value, ci = headline.get(main), headline.get(f"{main}_ci95")
    lo, hi = ([plots.finite(b) for b in (ci or [])[:2]] + [None, None])[:2]
    left, right = _bar_place(lo), _bar_place(hi)
    bar = (f'<div class="cibar" title="95% CI"><span class="range" style="left:{left:.1f}%;width:{right - left:.1f}%">'
           f'</span><span class="dot" style="left:{_bar_place(value):.1f}%"></span></div>')
    rows = [(scores.title(key), scores.value(key, headline.get(key))) for key in kind.headline[1:]]
    if "train_mean_baseline_mae" in headline:
        rows.append(("Train-mean baseline", f"MAE {scores.value('mae', headline.get('train_mean_baseline_mae'))}"
                                            f" · R² {scores.value('r2', headline.get('train_mean_baseline_r2'))}"))
    if split == "test" and m.get("val"):
        rows.append((f"Validation {scores.name(main)}", scores.value(main, m["val"].get(main))))
    share = m.get("trainable_share")
    rows += [("Trainable params", f"{_count(m.get('trainable_params'))} of {_count(m.get('total_params'))}"
              + (f" ({_pct(share)})" if share is not None else "")),
             ("Time", "—" if m.get("seconds") is None else plots.format_seconds(m["seconds"])),
             ("Peak memory", _mb(m.get("peak_rss_mb")) + (f" · GPU {_mb(m['peak_gpu_mb'])}" if m.get("peak_gpu_mb")
                                                          else "")),
             ("Device", escape(" · ".join(str(m[k]) for k in ("device", "train_precision") if m.get(k))) or "—")]
    facts = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in rows)
    star = ' <span class="badge ok">recommended</span>' if run.get("strategy") == recommended else ""
    interval = scores.interval(main, ci)
    return (f'<article class="card"><div class="hero"><div class="card-head"><b>{escape(str(run.get("name", "")))}</b>'
            f'<span class="tag">{escape(str(run.get("strategy", "")))}</span>{star}</div>'
            f'<div class="big">{scores.value(main, value)}</div><div class="sub">{_SPLITS[split]} {scores.name(main)}'
            f'{" · 95% CI " + interval if interval else ""} · n&nbsp;=&nbsp;{headline.get("n", 0):,}</div>{bar}</div>'
            f'<dl class="kv">{facts}</dl></article>')


def _run_details(index: int, run: dict) -> str:
    metrics = run.get("metrics") or {}
    main = scores.main_metric(metrics)
    history = run.get("history") or []
    probe = history and not any("epoch" in row for row in history)
    at_half = " (each label at a 0.5 threshold: they are tuned after training)" if metrics.get("thresholds") else ""
    caption = (f"Chosen by validation {scores.name(main)}{at_half}; the highlighted C is the one kept." if probe else
               f"Dashed: training set; solid: validation set{at_half}. The dotted line marks the epoch kept.")
    curves = _figure(plots.history_plot(history, main), "training curves", caption)
    body = _SECTIONS[kind_of(metrics).name]
    return (f'<section id="run-{index}" class="run"><h2>{escape(str(run.get("name", "")))} '
            f'<span class="tag">{escape(str(run.get("strategy", "")))}</span></h2>'
            f'<h3>Training curves</h3>{curves or "<p class=muted>No training history was recorded.</p>"}'
            f'{body(metrics)}{_gallery(metrics)}</section>')


def _single_label(metrics: dict) -> str:
    """The confusion matrix beside the per-class table, then the calibration."""
    split, headline = _headline(metrics)
    classes = list((headline.get("per_class") or {}).keys())
    matrix = _figure(plots.confusion_plot(headline.get("confusion_matrix") or [], classes), "confusion matrix",
                     f"Confusion matrix on the {_SPLITS[split]} set: rows are true classes, columns predictions; "
                     "colour is the share of the true class.")
    layout = " stack" if len(classes) > 12 else ""  # a big matrix gets the full width
    return (f'<h3>Per class ({_SPLITS[split]} set)</h3><div class="pair{layout}">{matrix}{_per_class(headline)}</div>'
            f'{_calibration(metrics)}')


def _calibration(metrics: dict) -> str:
    """The temperature, ECE before and after, and the reliability diagram; nothing for an uncalibrated run."""
    cal = metrics.get("calibration")
    if not cal:
        return ""
    val = cal.get("val") or {}
    caption = (f"Temperature scaling: T = {_value(cal.get('temperature'))}, fitted on the validation set; "
               f"validation ECE {_pct(val.get('ece_before'))} before, {_pct(val.get('ece_after'))} after "
               f"({cal.get('bins', 15)} equal-width bins, top label). Points on the dotted diagonal are calibrated.")
    figure = _figure(plots.reliability_plot(cal), "reliability diagram", caption)
    return f"<h3>Calibration</h3>{figure or f'<p class=muted>{caption}</p>'}"


def _per_class(headline: dict, multi_label: bool = False) -> str:
    """Precision, recall, F1 and support of each class, weakest F1 first; a multi-label table adds the recall's
    interval, average precision and the tuned threshold of each label."""
    per_class = headline.get("per_class") or {}
    if not per_class:
        return ""
    ranked = sorted(per_class.items(), key=lambda item: (item[1].get("f1", 0), item[0]))
    f1s = [s.get("f1", 0) for _, s in ranked]
    cut = f1s[min(5, -(-len(f1s) // 4)) - 1]  # the weakest quarter (at most 5), ties included
    weak = sum(1 for f in f1s if f <= cut < max(f1s))
    rows = "".join(_class_row(name, s, i < weak, multi_label) for i, (name, s) in enumerate(ranked))
    caption = f"Weakest first; the {weak} weakest highlighted." if weak else "All classes score the same."
    head = (["Label", "Precision", "Recall (95% CI)", "F1", "Average precision", "Support", "Threshold"]
            if multi_label else ["Class", "Precision", "Recall", "F1", "Support"])
    return (f'<div class="scroll"><table class="classes"><caption>{caption}</caption><thead><tr>'
            f'{"".join(f"<th>{h}</th>" for h in head)}</tr></thead><tbody>{rows}</tbody></table></div>')


def _class_row(name: str, s: dict, weak: bool, multi_label: bool) -> str:
    recall_ci = _ci(s.get("recall_ci95")) if multi_label else ""
    cells = [f'<td class="name">{escape(str(name))}</td>', f"<td>{_pct(s.get('precision'))}</td>",
             f"<td>{_pct(s.get('recall'))}{f'<small>{recall_ci}</small>' if recall_ci else ''}</td>",
             f'<td class="f1"><span class="meter"><span style="width:{100 * s.get("f1", 0):.0f}%"></span></span>'
             f'{_pct(s.get("f1"))}</td>']
    if multi_label:
        cells.append(f"<td>{_pct(s.get('average_precision'))}</td>")
    cells.append(f"<td>{s.get('support', 0):,}</td>")
    if multi_label:
        threshold = plots.finite(s.get("threshold"))
        cells.append(f"<td>{'—' if threshold is None else f'{threshold:.2f}'}</td>")
    return f'<tr class="{"weak" if weak else ""}">{"".join(cells)}</tr>'


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(str(n))}</li>" for n in notes)
    return f'<section id="notes"><h2>Notes</h2><ul class="notes">{items}</ul></section>'


def _audit(audit: dict | None) -> str:
    """The data audit: a lede, then per kind of finding an optional plot and a table (every cell escaped).

    A cell is plain text, ``{"status": "ok" | "warn"}`` (a coloured badge) or ``{"items": [item, ...]}``: items
    named by origin, split and label, each with its preview (``thumbnail`` data URI or ``text``) when it has one.
    """
    if not audit:
        return ""
    parts = []
    for table in audit.get("tables") or []:
        parts.append(f'<h3>{escape(str(table.get("title", "")))}</h3>')
        parts.append(_figure(table.get("figure"), str(table.get("title", "")), escape(str(table.get("caption", "")))))
        if table.get("rows"):
            head = "".join(f"<th>{escape(str(c))}</th>" for c in table.get("columns") or [])
            rows = "".join("<tr>" + "".join(f'<td class="name">{_audit_cell(v)}</td>' for v in row) + "</tr>"
                           for row in table["rows"])
            note = f'<caption>{escape(str(table["note"]))}</caption>' if table.get("note") else ""
            parts.append(f'<div class="scroll"><table class="audit">{note}<thead><tr>{head}</tr></thead>'
                         f"<tbody>{rows}</tbody></table></div>")
    return (f'<section id="audit"><h2>Data audit</h2><p class="lede">{escape(str(audit.get("lede", "")))}</p>'
            f'{"".join(parts)}</section>')


def _audit_cell(value: object) -> str:
    if isinstance(value, dict) and "status" in value:
        status = "warn" if value["status"] == "warn" else "ok"
        return f'<span class="badge {status}">{escape(str(value["status"]))}</span>'
    if isinstance(value, dict) and "items" in value:
        return "".join(_item(item) for item in value["items"])
    return escape(str(value))


def _item(item: dict) -> str:
    """One data item: its thumbnail or text preview, then its origin, split and label."""
    uri = previews.safe_thumbnail(item.get("thumbnail"))
    thumb = f'<img class="thumb" src="{uri}" alt="">' if uri else ""
    text = f'<q class="preview">{escape(str(item["text"]))}</q>' if item.get("text") else ""
    where = ", ".join(escape(str(item[k])) for k in ("split", "label") if item.get(k) is not None)
    return (f'<div class="item">{thumb}<div><span class="origin">{escape(str(item.get("origin", "")))}</span>'
            f'{f"<small>{where}</small>" if where else ""}{text}</div></div>')


_GALLERIES = {  # per task: anchor, heading, what the items are
    "single-label": ("misclassified", "Misclassified validation items", "The most confident mistakes first"),
    "multi-label": ("wrong-labels", "Items with the most wrong labels",
                    "Validation items with the most missed or extra labels first, the most confident among equals"),
    "regression": ("largest-errors", "Largest errors", "Validation items predicted furthest from their true value"),
}


def _gallery(metrics: dict) -> str:
    """The worst validation items as fit kept them in metrics.json (none: no gallery): the most confident
    mistakes, the items with the most wrong labels, or the largest errors."""
    mistakes = [m for m in metrics.get("misclassified") or [] if isinstance(m, dict)]
    if not mistakes:
        return ""
    kind = kind_of(metrics)
    anchor, heading, which = _GALLERIES[kind.name]
    val = metrics.get("val") or {}
    if kind.one_per_item:
        accuracy, n = plots.finite(val.get("accuracy")), plots.finite(val.get("n")) or 0
        wrong = max(len(mistakes), round(n * (1 - accuracy)) if accuracy is not None else 0)
        count = f"{len(mistakes)} of {wrong:,}"
    else:
        count = f"{len(mistakes)} shown"
    why = "a wrong or missing label, sometimes an ambiguous item" if kind.has_classes else \
        "a wrong value, sometimes an unusual item"
    cards = "".join(_mistake(m) for m in mistakes)
    return (f'<h3 id="{anchor}">{heading}</h3><p class="muted">{which} ({count}): often {why}.</p>'
            f'<div class="gallery">{cards}</div>')


def _mistake(m: dict) -> str:
    """One gallery card: the item's preview, origin, true and predicted labels or values (and the error)."""
    uri = previews.safe_thumbnail(m.get("thumbnail"))
    shown = (f'<img class="thumb" src="{uri}" alt="">' if uri else
             f'<q class="preview">{escape(str(m["text"]))}</q>' if m.get("text") else "")
    probability = f" {_pct(m['probability'])}" if plots.finite(m.get("probability")) is not None else ""
    error = plots.finite(m.get("error"))
    extra = f'<span class="wrong">error <b>{error:+.4g}</b></span>' if error is not None else ""
    return (f'<figure class="mistake">{shown}<figcaption><span class="origin">{escape(str(m.get("origin", "")))}'
            f'</span><span>true <b>{escape(str(m.get("true", "?")))}</b></span><span class="wrong">predicted '
            f'<b>{escape(str(m.get("predicted", "?")))}</b>{probability}</span>{extra}</figcaption></figure>')


def _multi_label(metrics: dict) -> str:
    """The headline scores, each label's F1 and average precision (a chart and a table), the thresholds."""
    split, headline = _headline(metrics)
    chart = _figure(plots.label_scores_plot(headline.get("per_class") or {}), "F1 and average precision per label",
                    f"On the {_SPLITS[split]} set. F1 counts the decisions at each label's tuned threshold; average "
                    "precision ranks the items by the label's probability, whatever the threshold.")
    labels = headline.get("labels_per_item") or {}
    per_item = (f" Items carry {labels['true']:.2f} labels on average; the model predicts {labels['predicted']:.2f}."
                if plots.finite(labels.get("true")) is not None and plots.finite(labels.get("predicted")) is not None
                else "")
    return (f'<h3 id="scores">Scores ({_SPLITS[split]} set)</h3>{_scores_table(headline, kind_of(metrics), per_item)}'
            f'<h3 id="per-label">Per label ({_SPLITS[split]} set)</h3>{chart}'
            f'{_per_class(headline, multi_label=True)}{_thresholds(metrics)}')


def _regression(metrics: dict) -> str:
    """Predicted against true values (a scatter plot with the diagonal) beside the scores and the baseline."""
    split, headline = _headline(metrics)
    target = metrics.get("target") or {}
    kept = headline.get("predictions") or {}
    true, predicted = kept.get("true") or [], kept.get("predicted") or []
    n = headline.get("n") or len(true)
    plot = plots.prediction_plot(true, predicted, f"Predicted vs true {target.get('name') or 'value'} "
                                 f"({_SPLITS[split]} set)", target.get("train_mean"))
    sample = f" ({len(true):,} of {n:,}, evenly spaced)" if len(true) < n else ""
    figure = _figure(plot, "predicted against true values",
                     f"Each dot is one {_SPLITS[split]} item{sample}; on the dashed diagonal the prediction equals "
                     "the true value. The dotted line is the training mean, what a model that learned nothing "
                     "would predict.") or '<p class="muted">This run kept no predictions to plot.</p>'
    mean = plots.finite(target.get("train_mean"))
    baseline = (f" The baseline predicts the training mean ({mean:.4g}) for every item: a useful model has a "
                "lower MAE and a higher R²." if mean is not None else "")
    return (f'<h3 id="predicted-vs-true">Predicted vs true ({_SPLITS[split]} set)</h3>'
            f'<div class="pair">{figure}{_scores_table(headline, kind_of(metrics), baseline)}</div>')


_SECTIONS = {"single-label": _single_label, "multi-label": _multi_label, "regression": _regression}  # per task


def _scores_table(headline: dict, kind: TaskKind, note: str = "") -> str:
    """The task's headline scores with their 95% intervals (and the train-mean baseline's, where it has one)."""
    baseline = {"mae": headline.get("train_mean_baseline_mae"), "r2": headline.get("train_mean_baseline_r2")} \
        if "train_mean_baseline_mae" in headline else {}
    head = ["Score", "Value", "95% interval", *(["Train-mean baseline"] if baseline else [])]
    rows = "".join(
        f'<tr><td class="name">{scores.title(key)}<div class="reason">{scores.MEANINGS.get(key, "")}</div></td>'
        f'<td><b>{scores.value(key, headline.get(key))}</b></td>'
        f'<td>{scores.interval(key, headline.get(f"{key}_ci95")) or "—"}</td>'
        + (f"<td>{scores.value(key, baseline.get(key))}</td>" if baseline else "") + "</tr>"
        for key in kind.headline)
    caption = f"Bootstrap 95% intervals over the {headline.get('n', 0):,} items.{note}"
    return (f'<div class="scroll"><table class="scores"><caption>{escape(caption)}</caption><thead><tr>'
            f'{"".join(f"<th>{h}</th>" for h in head)}</tr></thead><tbody>{rows}</tbody></table></div>')


def _thresholds(metrics: dict) -> str:
    """Multi-label: the validation scores at one 0.5 threshold against each label's tuned one."""
    record = metrics.get("thresholds") or {}
    if not record:
        return ""
    rows = "".join(
        f'<tr><td class="name">Validation {scores.name(key)}</td>'
        f'<td>{scores.value(key, record.get(f"val_{key}_at_0.5"))}</td>'
        f'<td><b>{scores.value(key, record.get(f"val_{key}_tuned"))}</b></td>'
        f'<td>{_change(key, record.get(f"val_{key}_at_0.5"), record.get(f"val_{key}_tuned"))}</td></tr>'
        for key in ("micro_f1", "macro_f1"))
    return ('<h3 id="thresholds">Decision thresholds</h3><div class="scroll"><table class="thresholds"><caption>'
            "Each label's threshold (the table above) is the one of 0.05, 0.10, … 0.95 with the best F1 on the "
            "validation set; a label with too few validation positives keeps 0.5.</caption><thead><tr><th>Score</th>"
            "<th>Every label at 0.5</th><th>Tuned per label</th><th>Change</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _change(key: str, before: object, after: object) -> str:
    before, after = plots.finite(before), plots.finite(after)
    return "—" if before is None or after is None else scores.difference(key, after - before)
