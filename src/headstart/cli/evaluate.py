"""`headstart evaluate`: score a saved run on labelled data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from headstart.cli.output import console, print_json
from headstart.tasks.kinds import kind_of


def evaluate_cli(
    run: Path = typer.Argument(..., help="Run directory written by `headstart fit`."),
    data: str = typer.Argument(..., help="Labelled data: a class-folder tree or a table with a label column."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    label_col: Optional[str] = typer.Option(None, help="Table column with the labels."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable or invalid items and list them."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """The task's scores of RUN on DATA with 95% intervals: accuracy, macro-F1, per-class scores and the
    confusion matrix; micro-F1, mAP and per-label scores (multi-label); R², Spearman, MAE, RMSE (regression).

    Example: headstart evaluate runs/pets data/pets-test
    """
    from headstart.api import evaluate  # lazy: `--help` need not load torch (start-up time)
    from headstart.report import scores

    m = evaluate(run, data, device=device, text_col=text_col, label_col=label_col, image_col=image_col,
                 skip_bad=skip_bad)
    for warning in m.get("warnings", []):  # on stderr, like fit's: stdout keeps the scores (or the JSON)
        print(f"warning: {warning}", file=sys.stderr)
    if json_out:
        print_json(m)
        return
    for s in m.get("skipped", []):
        console.print(f"[yellow]skipped[/] {s['input']}: {s['reason']}", highlight=False)
    task = kind_of(m)
    shown = [f"{scores.name(key)} {m[key]:.4f}" + (f" (95% CI {m[f'{key}_ci95'][0]:.3f}-{m[f'{key}_ci95'][1]:.3f})"
                                                    if f"{key}_ci95" in m else "")
             for key in task.headline if key in m]
    console.print("   ".join(shown) + f"   n={m['n']}", highlight=False)
    if not task.has_classes:
        console.print(f"predicting the training mean instead: MAE {m['train_mean_baseline_mae']:.4f}, R² "
                      f"{m['train_mean_baseline_r2']:.4f}", highlight=False)
        return
    per_class = Table(title=f"per {task.output[0]}")
    extra = ("AP", "threshold") if any("threshold" in s for s in m["per_class"].values()) else ()
    for col in ("class", "precision", "recall", "F1", *extra, "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c, s in m["per_class"].items():
        shown = [f"{s['average_precision']:.3f}", f"{s['threshold']:.2f}"] if extra else []
        per_class.add_row(c, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", *shown,
                          str(s["support"]))
    console.print(per_class)
    if "confusion_matrix" not in m:
        return
    classes = list(m["per_class"])
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for c in classes:
        confusion.add_column(c[:12], justify="right")
    for c, row in zip(classes, m["confusion_matrix"]):
        confusion.add_row(c, *[str(v) for v in row])
    console.print(confusion)
