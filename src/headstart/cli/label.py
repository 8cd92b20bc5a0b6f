"""`headstart label`: a local page in the browser to label the suggested items of a pool (see headstart.label.page)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from headstart.cli.output import console
from headstart.cli.suggest import check_out
from headstart.core.errors import ConfigError, RunError

HOST = "127.0.0.1"


def label_cli(
    pool: str = typer.Argument(..., help="Unlabelled items: a folder of files (images or sounds, no class folders "
                               "needed), or a CSV/TSV/JSONL/Parquet table of texts or paths."),
    out: Path = typer.Option(..., "--out", "-o", help="labels.csv to append the answers to (created, or resumed "
                             "if it exists); for files, in a folder that holds the pool (e.g. its parent)."),
    run: Optional[Path] = typer.Option(None, help="A fitted single-label run: its classes, guesses and picks; its "
                                       "training items are never shown."),
    model: Optional[str] = typer.Option(None, help="Backbone, when nothing is labelled yet (cold start); needs "
                                        "--classes."),
    classes: Optional[str] = typer.Option(None, help="The class names, comma-separated (default: the run's)."),
    n: int = typer.Option(50, "--n", min=1, help="How many suggested items to show."),
    port: int = typer.Option(8765, min=1, max=65535, help="Port on 127.0.0.1."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels [default: from the pool's images]."),
    seed: int = typer.Option(0, help="Seed of the clustering."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out pool items that cannot be read."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Label the items `suggest` picks from POOL in a page on http://127.0.0.1:PORT: keys 1-9 choose a class,
    s skips, u undoes. Each answer is written to --out at once; stop the server at any time and start it again
    to go on where you stopped. `headstart fit OUT` reads the file.

    Example: headstart label photos/ --model mobilenetv2 --classes cat,dog --out labels.csv
    """
    if out.exists() and out.is_file():
        check_out(out, True, pool)  # an existing labels.csv is resumed, never replaced
    else:
        check_out(out, False, pool)
    from headstart.cli.serve import check_port

    names = class_names(classes, run)
    try:
        check_port(HOST, port)
    except RunError:
        raise RunError(f"Port {port} on {HOST} is in use: choose another with --port.") from None
    try:
        import uvicorn

        from headstart.label.page import labelling_session, make_app
    except ModuleNotFoundError as exc:  # fastapi and uvicorn come with the serve extra
        raise ConfigError(f"headstart label needs {exc.name}, part of the serve extra: pip install "
                          "'headstart[serve]'.") from None

    session, method = labelling_session(pool, out, names, n, model=model, run=run, text_col=text_col,
                                        image_col=image_col, image_size=image_size, seed=seed, device=device,
                                        progress=not quiet, skip_bad=skip_bad)
    console.print(f"{len(session.items)} items to label ({method}), {session.given} already in {out}.",
                  highlight=False, soft_wrap=True)
    console.print(f"Open http://{HOST}:{port}/ to label; Ctrl-C stops (every answer is already saved).",
                  highlight=False, soft_wrap=True)
    uvicorn.run(make_app(session), host=HOST, port=port, log_level="warning")


def class_names(classes: str | None, run: Path | None) -> list[str]:
    """The classes to offer: ``--classes`` split on commas, else the single-label run's."""
    if classes is not None:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"--classes {classes!r}: give two or more distinct names, comma-separated, e.g. "
                              "--classes cat,dog.")
        return names
    if run is None:
        raise ConfigError("With --model (nothing labelled yet) pass the class names, e.g. --classes cat,dog.")
    from headstart.runs.folder import read_json
    from headstart.tasks.kinds import kind

    spec = read_json(run, "model/headstart.json")
    task = kind((spec.get("task") or {}).get("name"))
    if not task.one_per_item:
        raise RunError(f"{run} is a {task.name} run; the labelling page takes one class per item. Pass --classes to "
                       "label one class per item, or label that task in a table.")
    return list(spec["classes"])
