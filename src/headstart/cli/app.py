"""The typer application: wires the verbs and turns headstart's errors into one clear line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from headstart.cli import advise, audit, cache, compare, demo, evaluate, fit, models, predict, serve
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
app.command("serve")(serve.serve_cli)


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
    except SystemExit as done:
        distributed = sys.modules.get("headstart.distributed")  # loaded only by the verbs that train
        if not done.code and distributed:  # a clean finish (every process is past its collectives): leave the
            distributed.teardown()  # process group
        raise
