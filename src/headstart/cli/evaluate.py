"""`headstart evaluate`: score a saved run on labelled data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from headstart.cli.output import console, print_json


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
    """Accuracy, macro-F1, per-class scores and the confusion matrix of RUN on DATA.

    Example: headstart evaluate runs/pets data/pets-test
    """
    from headstart.api import evaluate  # lazy: `--help` need not load torch (start-up time)

    m = evaluate(run, data, device=device, text_col=text_col, label_col=label_col, image_col=image_col,
                 skip_bad=skip_bad)
    for warning in m.get("warnings", []):  # on stderr, like fit's: stdout keeps the scores (or the JSON)
        print(f"warning: {warning}", file=sys.stderr)
    if json_out:
        print_json(m)
        return
    for s in m.get("skipped", []):
        console.print(f"[yellow]skipped[/] {s['input']}: {s['reason']}", highlight=False)
    lo, hi = m["accuracy_ci95"]
    console.print(f"accuracy {m['accuracy']:.4f} (95% CI {lo:.3f}-{hi:.3f}, n={m['n']})   "
                  f"macro-F1 {m['macro_f1']:.4f}", highlight=False)
    per_class = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c, s in m["per_class"].items():
        per_class.add_row(c, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"]))
    console.print(per_class)
    classes = list(m["per_class"])
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for c in classes:
        confusion.add_column(c[:12], justify="right")
    for c, row in zip(classes, m["confusion_matrix"]):
        confusion.add_row(c, *[str(v) for v in row])
    console.print(confusion)
