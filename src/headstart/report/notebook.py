"""How fits and loaded runs show themselves in a terminal or notebook: a few lines, and the report's card.

    FitResult: linear on minilm-l6, text classification, 4 classes (business, entertainment, sport, tech)
      validation accuracy 0.912 (n=80) · test accuracy 0.900 (n=100)
      run: runs/tickets

A multi-label or regression run says so and shows its task's main metric (micro-F1, R²) instead of accuracy.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from headstart.report import scores, summary_card
from headstart.tasks.kinds import KINDS, kind_of


SHOWN_CLASSES = 5


def fit_result_repr(result: Any) -> str:
    """A FitResult (pipeline.FitResult, which calls this) in three lines: what ran, how well, where it was saved."""
    modality = result.predictor.backbone.modality
    where = str(result.run_dir) if result.run_dir else "not saved (fit(..., out=RUN) or result.save(RUN))"
    return _lines("FitResult", result.strategy, result.model, modality, result.classes, result.metrics, where,
                  result.metrics.get("task"))


def predictor_repr(predictor: Any) -> str:
    """A loaded run's model in three lines; the strategy and scores come from its run folder when it has one."""
    record = _run_record(predictor.run_dir)
    strategy = record.get("config", {}).get("strategy")
    where = str(predictor.run_dir) if predictor.run_dir else "in memory"
    return _lines("Predictor", strategy, predictor.backbone.name, predictor.backbone.modality, predictor.classes,
                  record.get("metrics", {}), where, getattr(predictor.task, "name", None))


def fit_result_html(result: Any) -> str:
    """The report's summary card of a fit, for a notebook cell."""
    name = result.run_dir.name if result.run_dir else result.model
    return summary_card({"name": name, "strategy": result.strategy, "metrics": result.metrics,
                         "config": result.config.to_dict()})


def predictor_html(predictor: Any) -> str:
    """The report's summary card of a loaded run; the text repr when it has no saved metrics."""
    record = _run_record(predictor.run_dir)
    if not record.get("metrics"):
        return f"<pre>{escape(predictor_repr(predictor))}</pre>"
    return summary_card({"name": predictor.run_dir.name, "strategy": record.get("config", {}).get("strategy", "?"),
                         "metrics": record["metrics"], "config": record.get("config", {})})


def _lines(kind: str, strategy: str | None, model: str, modality: str, classes: list[str], metrics: dict,
           where: str, task: str | None = None) -> str:
    task = KINDS[task] if task in KINDS else kind_of(metrics)
    main = scores.main_metric(metrics)
    shown = ", ".join(classes[:SHOWN_CLASSES]) + (", …" if len(classes) > SHOWN_CLASSES else "")
    what = {"single-label": f"{modality} classification, {len(classes)} classes ({shown})",
            "multi-label": f"{modality} multi-label classification, {len(classes)} labels ({shown})",
            "regression": f"{modality} regression of {classes[0] if classes else 'a number'}"}[task.name]
    head = f"{kind}: {strategy + ' on ' if strategy else ''}{model}, {what}"
    scored = [f"{label} {scores.name(main)} {metrics[split][main]:.3f} (n={metrics[split].get('n', '?')})"
              for split, label in (("val", "validation"), ("test", "test"))
              if isinstance(metrics.get(split), dict) and isinstance(metrics[split].get(main), (int, float))]
    return "\n".join([head, *(["  " + " · ".join(scored)] if scored else []), f"  run: {where}"])


def _run_record(run_dir: Path | None) -> dict[str, Any]:
    """``{"config": FitConfig fields, "metrics": ...}`` from a run folder; what is missing or unreadable is left
    out (a repr never fails)."""
    record: dict[str, Any] = {}
    if run_dir is None:
        return record
    for name, key in (("config.json", "config"), ("metrics.json", "metrics")):
        try:
            value = json.loads((Path(run_dir) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(value, dict):
            record[key] = value.get("config", value) if key == "config" else value
    return record
