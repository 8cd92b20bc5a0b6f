"""`headstart predict`: labels and probabilities for new inputs from a saved run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional

import typer

from headstart.api import predict
from headstart.cli.output import print_json


def predict_cli(
    run: Path = typer.Argument(..., help="Run directory written by `headstart fit`."),
    inputs: Optional[list[str]] = typer.Argument(None, help="Image files, a folder, or a table. '-' or none: text lines on stdin."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: bool = typer.Option(False, "--json", help="JSON instead of CSV."),
) -> None:
    """Predict labels for INPUTS with the model in RUN; CSV (input,[text,]label,p_<class>...) on stdout.

    Example: headstart predict runs/pets photos/  |  echo "refund please" | headstart predict runs/helpdesk
    """
    if not inputs or inputs == ["-"]:
        source = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    elif len(inputs) == 1:
        source = inputs[0]
    else:
        source = inputs
    rows = predict(run, source, device=device, text_col=text_col, image_col=image_col)
    if json_out:
        print_json(rows)
        return
    classes = list(rows[0]["probabilities"]) if rows else []
    text = bool(rows) and "text" in rows[0]
    writer = csv.writer(sys.stdout)
    writer.writerow(["input"] + (["text"] if text else []) + ["label"] + [f"p_{c}" for c in classes])
    for r in rows:
        shown = [r["text"][:200]] if text else []
        writer.writerow([r["input"], *shown, r["label"]] + [f"{r['probabilities'][c]:.6f}" for c in classes])
