"""The typer application: wires the verbs and turns headstart's errors into one clear line."""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Any, Callable, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from headstart.cli import advise, audit, cache, compare, demo, evaluate, fit, label, models, predict, serve, suggest
from headstart.cli import export as export_verb
from headstart import __version__
from headstart.core.errors import HeadstartError, Interrupted

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
                     ("audit", audit.audit_cli), ("export", export_verb.export_cli),
                     ("suggest", suggest.suggest_cli)):
    app.command(_name)(_stoppable(_name, _verb))
app.command("serve")(serve.serve_cli)  # a server stops on Ctrl-C or SIGTERM by design: not wrapped
app.command("label")(label.label_cli)  # the labelling page's server, likewise


def main() -> None:
    """Entry point of the `headstart` script."""
    console = Console(stderr=True)
    try:
        app()
    except (Interrupted, KeyboardInterrupt) as exc:
        said = escape(str(exc)) or "stopped by the user (Ctrl-C)."
        console.print(f"[bold yellow]interrupted:[/] {said}", highlight=False, soft_wrap=True)
        sys.exit(130)
    except HeadstartError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # [x] is text
        sys.exit(2)
    except OSError as exc:
        output_failed(exc, console)
    except SystemExit as done:
        distributed = sys.modules.get("headstart.training.distributed")  # loaded only by the verbs that train
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
    said = escape(f"could not write{where}: {exc.strerror or exc}; the output is incomplete.")
    console.print(f"[bold red]error:[/] {said} Free some space on that disk, or send the output elsewhere.",
                  highlight=False, soft_wrap=True)
    sys.exit(2)
