"""`headstart models`: what loads here, offline, and from where."""

from __future__ import annotations

import typer
from rich.table import Table

from headstart.api import models
from headstart.cli.output import console, print_json


def models_cli(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the backbones that load on this machine now, offline.

    Any timm model name, Hugging Face id or local model directory also works as --model.
    """
    rows = models()
    if json_out:
        print_json(rows)
        return
    table = Table(title="Backbones that load offline here")
    for col in ("name", "modality", "available", "source", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["modality"], "yes" if r["available"] else "no", r["source"], r["description"])
    console.print(table)
    console.print("Also accepted by --model: a timm name (resnet50), a Hugging Face id (bert-base-uncased) or a "
                  "local directory, once its weights are on disk or the hub is reachable; "
                  "prefix random: for random weights.")
