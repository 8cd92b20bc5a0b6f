"""What the labels are: the task (single-label, multi-label, regression), decided once from all the labels read.

A label arrives as a string (tables, folders), a number, or a list (a JSON Lines list, a Python list in
``(items, labels)``). ``decide_task`` looks at every label of the training data before any row is dropped, so
``--skip-bad`` can never turn one task into another:

- lists, or strings of which at least ``SEPARATED_SHARE`` hold the separator (``--label-sep``, else ``|`` or
  ``;`` when one is found), are **multi-label**: each item has a set of labels, possibly empty;
- numbers with more than ``MAX_NUMERIC_CLASSES`` distinct values are **regression**, as are any numbers under
  ``--task regression``; a few non-numbers among them are bad rows, named in the error;
- anything else is **single-label**: one class per item (numbers with few distinct values are classes).

``parse_labels`` turns each label into the task's form: a class name, a sorted tuple of names, or a float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headstart.core.errors import ConfigError, option

TASKS = ("single-label", "multi-label", "regression")
TASK_CHOICES = ("auto", *TASKS)
SEPARATORS = ("|", ";")  # tried in this order when --label-sep is not given
SEPARATED_SHARE = 0.1  # this share of the string labels holding the separator makes the labels lists
MAX_NUMERIC_CLASSES = 20  # numbers with more distinct values than this are a quantity, not classes
NUMERIC_SHARE = 0.9  # auto: at least this share of numbers makes the column numeric (the rest are bad rows)
# Regression targets larger than this are bad rows: models train and predict in float32 (at most 3.4e38), and
# the targets' spread is folded into the head's weights, so larger ones overflow to inf and nan.
MAX_TARGET = 1e30


@dataclass(frozen=True)
class TaskChoice:
    """The task decided, why (for the terminal and the record), and the separator a multi-label column used."""

    task: str
    reason: str
    sep: str | None = None

    def to_dict(self) -> dict:
        return {"task": self.task, "reason": self.reason, "label_sep": self.sep}


def check_task(task: str) -> str:
    """``task`` when it is one of ``TASK_CHOICES`` (aliases: ``classification``, ``multilabel``), else ConfigError."""
    aliases = {"classification": "single-label", "single": "single-label", "multilabel": "multi-label",
               "multi": "multi-label"}
    task = aliases.get(task, task)
    if task not in TASK_CHOICES:
        raise ConfigError(f"{option('task')}={task!r} is not a task; use one of {', '.join(TASK_CHOICES)}.")
    return task


def decide_task(asked: str, labels: Sequence[Any], sep: str | None = None) -> TaskChoice:
    """The task for these (training) labels: ``asked`` unless it is ``auto``, else as the module says. A ``sep``
    given for labels that are not multi-label would be ignored: a ConfigError says so."""
    choice = _decide(asked, labels, sep)
    if sep is not None and choice.task != "multi-label":
        strings = [label for label in labels if isinstance(label, str)]
        holding = f"; {sum(sep in s for s in strings)} of {len(strings)} labels hold {sep!r}" if strings else ""
        raise ConfigError(f"{option('label_sep', sep)} separates the labels of a multi-label task, but the task is "
                          f"{choice.task} ({choice.reason}{holding}), so it would be ignored. Use "
                          f"{option('task', 'multi-label')} to split the labels on {sep!r}, or leave out "
                          f"{option('label_sep')}.")
    return choice


def _decide(asked: str, labels: Sequence[Any], sep: str | None) -> TaskChoice:
    asked = check_task(asked)
    present = [label for label in labels if label is not None]
    if asked == "multi-label":
        return TaskChoice(asked, "asked for", sep or _separator(present) or SEPARATORS[0])
    if asked != "auto":
        return TaskChoice(asked, "asked for")
    if any(isinstance(label, tuple) for label in present):
        return TaskChoice("multi-label", "the labels are lists", sep)
    found = sep or _separator(present)
    strings = [label for label in present if isinstance(label, str)]
    if found and strings and sum(found in s for s in strings) >= SEPARATED_SHARE * len(strings):
        share = sum(found in s for s in strings) / len(strings)
        return TaskChoice("multi-label", f"{share:.0%} of the labels hold several names separated by "
                                         f"{found!r}", found)
    numbers = [number for number in map(as_number, present) if number is not None]
    distinct = len(set(numbers))
    if present and len(numbers) >= NUMERIC_SHARE * len(present):
        if distinct > MAX_NUMERIC_CLASSES:
            return TaskChoice("regression", f"the labels are numbers with {distinct} distinct values "
                                            f"(more than {MAX_NUMERIC_CLASSES})")
        return TaskChoice("single-label", f"the labels are numbers with only {distinct} distinct values, taken "
                                          "as classes (--task regression takes them as numbers)")
    return TaskChoice("single-label", "one class per item")


def parse_labels(choice: TaskChoice, labels: Sequence[Any], origins: Sequence[str],
                 where: str = "") -> tuple[list[Any], list[tuple[int, str, str]]]:
    """Each label in ``choice.task``'s form, and the bad ones as ``(index, problem, fix)`` (their label None).

    Single-label: a string (a list label is bad). Multi-label: a sorted tuple of distinct names. Regression: a
    float (a non-number is bad). ``where`` names the column in messages, e.g. " in column 'y'".
    """
    parsed: list[Any] = []
    bad: list[tuple[int, str, str]] = []
    for index, label in enumerate(labels):
        value, problem = _parse_one(choice, label)
        if problem:
            bad.append((index, f"the label {problem}{where}", _fix(choice)))
        parsed.append(value)
    return parsed, bad


def _parse_one(choice: TaskChoice, label: Any) -> tuple[Any, str | None]:
    if label is None:
        return None, None  # reported as missing by the reader
    if choice.task == "multi-label":
        names = label if isinstance(label, tuple) else str(label).split(choice.sep or SEPARATORS[0])
        return tuple(sorted({name.strip() for name in names if name.strip()})), None
    if choice.task == "regression":
        number = as_number(label)
        if number is None:
            return None, f"{str(label)[:40]!r} is not a number"
        if abs(number) > MAX_TARGET:
            return None, (f"{str(label)[:40]!r} is too large a target (at most {MAX_TARGET:g} in size, as models "
                          "compute in float32: rescale the column, e.g. to millions or to its logarithm)")
        return number, None
    if isinstance(label, tuple):
        return None, f"{list(label)!r} is a list, but the task is single-label"
    return str(label), None


def _fix(choice: TaskChoice) -> str:
    if choice.task == "regression":
        return "Write a number there (the task is regression)"
    return "Give one class name per item, or use --task multi-label for several"


def as_number(label: Any) -> float | None:
    """``label`` as a finite float when it is a number or a numeric string, else None."""
    if isinstance(label, bool) or isinstance(label, tuple):
        return None
    try:
        number = float(label)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _separator(labels: Sequence[Any]) -> str | None:
    """The first of ``SEPARATORS`` found in the string labels, or None."""
    strings = [label for label in labels if isinstance(label, str)]
    for sep in SEPARATORS:
        if any(sep in label for label in strings):
            return sep
    return None

