"""`headstart suggest`: which unlabelled items to label next, written to a CSV; with a run, what labelling buys."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import typer

from headstart.cli.output import console
from headstart.cli.predict import neutralise
from headstart.core.errors import RunError
from headstart.core.fileio import write_text
from headstart.runs.outdir import guard_data

COLUMNS = ("rank", "path", "text", "guess", "probability", "reason")


def suggest_cli(
    pool: str = typer.Argument(..., help="Unlabelled items: a folder of files (images or sounds, no class folders "
                               "needed), or a CSV/TSV/JSONL/Parquet table of texts or paths."),
    n: int = typer.Option(..., "--n", help="How many items to suggest."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: rank, path or text, guess, probability, "
                             "reason."),
    model: Optional[str] = typer.Option(None, help="Backbone, when nothing is labelled yet (cold start)."),
    run: Optional[Path] = typer.Option(None, help="A fitted run: its backbone and model; its training items are "
                                       "never suggested."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels [default: from the pool's images]."),
    seed: int = typer.Option(0, help="Seed of the clustering."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out pool items that cannot be read (each named) "
                                  "instead of stopping."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Suggest the N items of POOL to label next: typical-and-diverse ones while few are labelled, then those
    the run is least sure of, spread over the pool.

    Example: headstart suggest photos/ --model mobilenetv2 --n 20 --out picks.csv
    """
    check_out(out, overwrite, pool)
    from headstart.label.suggest import suggest  # lazy: `--help` need not load torch (start-up time)

    picks = suggest(pool, n, model=model, run=None if run is None else str(run), text_col=text_col,
                    image_col=image_col, image_size=image_size, seed=seed, device=device, progress=not quiet,
                    skip_bad=skip_bad)
    write_picks(out, picks.rows)
    console.print(f"{len(picks.rows)} items to label, {picks.method}: {out}", highlight=False, soft_wrap=True)
    if picks.already:
        console.print(f"  {picks.already} pool items are already labelled in the run and were left out.",
                      highlight=False, soft_wrap=True)
    if picks.forecast is not None:
        console.print(f"  {picks.forecast.sentence()}", highlight=False, soft_wrap=True)
    for note in picks.notes or ():
        console.print(f"  {note}", highlight=False, soft_wrap=True)


def check_out(out: Path, overwrite: bool, pool: str) -> None:
    """RunError unless ``out`` may be written: not a folder, not the user's file (without --overwrite), not in
    the pool; checked before any work."""
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; give the CSV file to write, e.g. {out / 'picks.csv'}.")
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists; headstart does not replace your files. Choose another --out, or "
                       "pass --overwrite to replace it.")
    guard_data(out, [pool])
    if not out.parent.is_dir():
        raise RunError(f"--out {out}: the folder {out.parent} does not exist. Create it, or choose another --out.")


def write_picks(out: Path, rows: list[dict]) -> None:
    """The picks as CSV, written atomically; cells a spreadsheet would run as formulas are neutralised."""
    columns = [c for c in COLUMNS if any(c in row for row in rows)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(str(row.get(c, ""))) for c in columns])
    try:
        write_text(out, buffer.getvalue())
    except OSError as exc:
        raise RunError(f"Could not write {out}: {exc.strerror or exc}. Check that its folder is writable.") from None
