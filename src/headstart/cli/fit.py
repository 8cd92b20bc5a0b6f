"""`headstart fit`: adapt a model to a data set and save the run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from headstart.cli.flags import generated, given_options
from headstart.cli.options import DATA_HELP, config_option
from headstart.cli.output import auto_lines, console, print_json, summary_table
from headstart.core.errors import ConfigError, Interrupted
from headstart.core.fields import GROUPS


@generated(GROUPS, with_strategy_options=True)
def fit_cli(
    ctx: typer.Context,
    data: Optional[str] = typer.Argument(None, help=DATA_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<model>-<strategy>-<time>]"),
    val: Optional[str] = typer.Option(None, help="Validation data; default: a stratified split of DATA."),
    test: Optional[str] = typer.Option(None, help="Test data, scored once at the end."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run at --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; warnings still print."),
    config: Optional[str] = config_option(),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a stopped (killed, crashed) fit "
                                          "from its run directory's last saved epoch; needs no other options."),
    **options: Any,
) -> None:
    """Fit MODEL to DATA with STRATEGY and save the run.

    Example: headstart fit data/pets --model mobilenetv2 --strategy partial --out runs/pets

    Fine-tuning saves its state in OUT/checkpoints after every epoch; after a crash,
    `headstart fit --resume OUT` continues it and ends as the uninterrupted run would.
    """
    started = time.time()
    try:
        from headstart.training import distributed  # lazy: `--help` need not load torch (start-up time)
        from headstart.api import fit
    except KeyboardInterrupt:
        raise Interrupted("stopped while headstart was starting (loading its libraries), before it read the data; "
                          "nothing was written.") from None

    if resume is not None:
        given = {name for name in ctx.params  # typer vendors click: compare the source's name, not its class
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}
        extra = [f"--{name.replace('_', '-')}" for name in ctx.params
                 if name in given and name not in ("resume", "data", "quiet", "json_out")]
        if extra:
            raise ConfigError(f"--resume takes the run's own options from {resume}/checkpoints/config.json; "
                              f"drop {', '.join(extra)} (start a new run to change them).")
        out = resume
    elif data is None:
        raise ConfigError("Missing DATA: give an image folder or a table file (or --resume RUN).")
    else:
        out = out or Path("runs") / (f"{Path(options['model']).name}-{options['strategy']}-"
                                     f"{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        if resume is not None:
            result = fit(data, resume=resume, progress=not quiet)
        else:
            result = fit(data, val=val, test=test, out=out, overwrite=overwrite, progress=not quiet,
                         **given_options(options))
    except KeyboardInterrupt:
        raise Interrupted(interrupted_note(out, started)) from None
    if distributed.is_main():  # under a multi-process launch, one summary
        _show(result, data, json_out)


def interrupted_note(out: Path, started: float) -> str:
    """What a fit stopped after ``started`` (a time.time()) left in ``out``, and how to go on."""
    from headstart.training import checkpoints  # lazy: `--help` need not load torch (start-up time)

    if checkpoints.is_unfinished(out) and checkpoints.saved_epoch(out) > 0:
        return (f"epoch {checkpoints.saved_epoch(out)} is saved in {out}; continue with "
                f"`headstart fit --resume {out}`.")
    if _saved_since(out, started):
        return f"stopped after the run was saved: {out} holds it, complete (report.html included)."
    return (f"stopped before any epoch was saved; {out} was left as it was before. Features computed so far "
            "stay in the feature cache, so running the command again starts from them.")


def _saved_since(out: Path, started: float) -> bool:
    """Whether ``out`` holds a finished run saved after ``started`` (the run folder is renamed in whole)."""
    try:
        return (out / "report.html").is_file() and (out / "metrics.json").stat().st_mtime >= started
    except OSError:
        return False


def _show(result, data, json_out: bool) -> None:
    if json_out:  # the misclassified items' previews (thumbnails, tens of kB) are for the report
        metrics = {k: v for k, v in result.metrics.items() if k != "misclassified"}
        print_json({"run": str(result.run_dir), "metrics": metrics, "info": result.info,
                    "skipped": [s.__dict__ for s in result.skipped]})
        return
    for s in result.skipped:
        console.print(f"[yellow]skipped[/] {s.origin}: {s.reason}", highlight=False)
    for line in auto_lines(result.info):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(summary_table([{"strategy": result.strategy, "metrics": result.metrics}],
                                f"{result.model} on {data or ((result.data or {}).get('train') or {}).get('path')}"))
    console.print(f"Saved to [bold]{result.run_dir}[/]. Next: headstart predict {result.run_dir} INPUTS",
                  highlight=False)
