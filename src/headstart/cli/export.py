"""`headstart export`: a run's classifier as ONNX, a Hugging Face directory, or timm/torchvision weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from headstart.cli.output import console, print_json


def export_cli(
    run: Path = typer.Argument(..., help="Run directory written by `headstart fit`."),
    format: str = typer.Option(..., "--format", "-f", help="onnx | hf (text runs) | timm (image runs)"),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder to create (default: RUN-FORMAT next to the run); never overwritten."),
    samples: Optional[list[str]] = typer.Option(None, "--samples",
                                                help="Inputs to check the export on (files, a folder, a table)."),
    json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export the classifier in RUN, checked against headstart's own predictions before it is written.

    Example: headstart export runs/pets --format onnx --out exported/pets-onnx
    """
    from headstart.api import export  # lazy: `--help` need not load torch (start-up time)

    source = None if not samples else samples[0] if len(samples) == 1 else samples
    result = export(run, format.lower(), out, samples=source)
    if json_out:
        print_json(result.to_dict())
        return
    check = ("not checked" if result.max_abs_diff is None else
             f"max |logit difference| {result.max_abs_diff:.2g} on {result.samples} inputs ({result.checked_with})")
    console.print(f"wrote {result.format} export to {result.path}: {', '.join(result.files)}", highlight=False)
    console.print(f"checked: {check}", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
