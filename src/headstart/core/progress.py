"""What a long step shows on stderr: bars and spinners on a terminal (rich, gone when the step ends), and lines
that stay (an epoch's scores, "resuming from epoch N"); silent when the caller asks for quiet.

Bars and spinners are drawn only when stderr is a terminal: in a pipe or a log file they would leave blank lines.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def _terminal() -> Console | None:
    """A console on stderr when stderr is a terminal, else None."""
    console = Console(stderr=True)
    return console if console.is_terminal else None


@contextlib.contextmanager
def progress_task(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``: a bar on stderr while the block runs, or a no-op when disabled or when
    stderr is not a terminal."""
    console = _terminal() if enabled and total > 0 else None
    if console is None:
        yield lambda n=1, **fields: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total, info="")
        yield lambda n=1, **fields: bar.update(task, advance=n, **fields)


@contextlib.contextmanager
def spinner(description: str, enabled: bool = True) -> Iterator[None]:
    """A spinner with ``description`` on stderr while the block runs (a terminal only; gone afterwards)."""
    console = _terminal() if enabled else None
    if console is None:
        yield
        return
    with console.status(description):
        yield


def say(message: str, enabled: bool = True) -> None:
    """A line on stderr that stays."""
    if enabled:
        print(message, file=sys.stderr, flush=True)


def epoch_line(row: dict, epochs: int) -> str:
    """One epoch's scores: ``epoch 3/10  train loss 0.512  val loss 0.430  val acc 0.875  12.3 s`` (the other
    tasks' main metric in place of accuracy: ``val micro-F1``, ``val R²``)."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss"), ("val_accuracy", "val acc"),
                       ("val_micro_f1", "val micro-F1"), ("val_r2", "val R²")):
        if row.get(key) is not None:
            parts.append(f"{label} {row[key]:.3f}")
    if row.get("seconds") is not None:
        parts.append(f"{row['seconds']:.1f} s")
    return "  ".join(parts)
