"""`headstart models`: what loads here, offline, and from where."""

from __future__ import annotations

import typer
from rich.table import Table

from headstart.cli.output import console, print_json


def models_cli(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the backbones that load on this machine now, offline.

    Any timm model name, Hugging Face id or local model directory also works as --model.
    """
    from headstart.api import models  # lazy: `--help` need not load torch (start-up time)

    rows = models()
    if json_out:
        print_json(rows)
        return
    console.print(models_table(rows))
    console.print("Also accepted by --model: a timm name (resnet50), a Hugging Face id (bert-base-uncased) or a "
                  "local directory, once its weights are on disk or the hub is reachable; "
                  "prefix random: for random weights.")


def models_table(rows: list[dict]) -> Table:
    """One row per backbone; names never wrap (they are typed as --model), descriptions and sources do."""
    table = Table(title="Backbones that load offline here")
    table.add_column("name", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=4))
    table.add_column("modality", no_wrap=True)
    table.add_column("available", no_wrap=True)
    table.add_column("source", ratio=1)
    table.add_column("description", ratio=2)
    for r in rows:
        table.add_row(r["name"], r["modality"], "yes" if r["available"] else "no", r["source"], r["description"])
    return table
