"""The typer application: wires the verbs and turns headstart's errors into one clear line."""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn

import typer
from rich.console import Console

from headstart.cli import advise, audit, cache, compare, demo, evaluate, fit, models, predict
from headstart.cli import export as export_verb
from headstart import __version__
from headstart.errors import HeadstartError, Interrupted

app = typer.Typer(
    name="headstart", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Adapt a pretrained image or text model to your labelled data: transfer learning or fine-tuning.",
)


def _version(value: bool) -> None:
    if value:
        print(f"headstart {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print headstart's version and exit.")) -> None:
    """Adapt a pretrained image or text model to your labelled data: transfer learning or fine-tuning."""


app.command("fit")(fit.fit_cli)
app.command("compare")(compare.compare_cli)
app.command("advise")(advise.advise_cli)
app.command("predict")(predict.predict_cli)
app.command("evaluate")(evaluate.evaluate_cli)
app.command("models")(models.models_cli)
app.command("cache")(cache.cache_cli)
app.command("demo")(demo.demo_cli)
app.command("audit")(audit.audit_cli)
app.command("export")(export_verb.export_cli)


def main() -> None:
    """Entry point of the `headstart` script."""
    console = Console(stderr=True)
    try:
        app()
    except (Interrupted, KeyboardInterrupt) as exc:
        console.print(f"[bold yellow]interrupted:[/] {exc or 'stopped by the user.'}", highlight=False, soft_wrap=True)
        sys.exit(130)
    except HeadstartError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        output_failed(exc, console)
    except SystemExit as done:
        distributed = sys.modules.get("headstart.distributed")  # loaded only by the verbs that train
        if not done.code and distributed:  # a clean finish (every process is past its collectives): leave the
            distributed.teardown()  # process group
        try:
            sys.stdout.flush()  # what is still buffered: a closed pipe or a full disk shows here
        except OSError as exc:
            output_failed(exc, console)
        raise


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # what a full disk (or quota, or file size limit) raises


def output_failed(exc: OSError, console: Console) -> NoReturn:
    """End a command whose writing failed: quietly (exit 1) for a closed pipe (``| head``), as Unix tools do; with
    an error (exit 2) for a full disk (``> file`` on it); any other OSError goes on up."""
    if not isinstance(exc, BrokenPipeError) and exc.errno not in NO_SPACE:
        raise exc
    try:
        sys.stdout.flush()
    except OSError:  # Python's last flush would fail again, with a traceback: stdout goes to the null device
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), sys.stdout.fileno())
    if isinstance(exc, BrokenPipeError):
        sys.exit(1)
    where = f" to {exc.filename}" if exc.filename else ""
    console.print(f"[bold red]error:[/] could not write{where}: {exc.strerror or exc}; the output is incomplete. "
                  "Free some space on that disk, or send the output elsewhere.", highlight=False, soft_wrap=True)
    sys.exit(2)
