"""The typer application: wires the verbs and turns headstart's errors into one clear line."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

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


def _stoppable(name: str, verb: Callable[..., None]) -> Callable[..., None]:
    """``verb`` with Ctrl-C turned into Interrupted, which says what stopped: typer ends a KeyboardInterrupt with a
    silent exit 130. A verb that knows what it kept (fit) raises its own Interrupted first."""
    @functools.wraps(verb)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            verb(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(f"headstart {name} was stopped (Ctrl-C) before it finished.") from None

    return run


for _name, _verb in (("fit", fit.fit_cli), ("compare", compare.compare_cli), ("advise", advise.advise_cli),
                     ("predict", predict.predict_cli), ("evaluate", evaluate.evaluate_cli),
                     ("models", models.models_cli), ("cache", cache.cache_cli), ("demo", demo.demo_cli),
                     ("audit", audit.audit_cli), ("export", export_verb.export_cli)):
    app.command(_name)(_stoppable(_name, _verb))


def main() -> None:
    """Entry point of the `headstart` script."""
    console = Console(stderr=True)
    try:
        app()
    except (Interrupted, KeyboardInterrupt) as exc:
        console.print(f"[bold yellow]interrupted:[/] {str(exc) or 'stopped by the user (Ctrl-C).'}", highlight=False,
                      soft_wrap=True)
        sys.exit(130)
    except HeadstartError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit as done:
        distributed = sys.modules.get("headstart.distributed")  # loaded only by the verbs that train
        if not done.code and distributed:  # a clean finish (every process is past its collectives): leave the
            distributed.teardown()  # process group
        raise
