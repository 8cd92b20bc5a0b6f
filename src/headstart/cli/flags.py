"""Flags made from declarations: fit, compare, advise and audit take their options from FitConfig's fields
(headstart.core.fields) and the strategies' declared options (headstart.strategies.options), never re-typed here.

A verb is written with the parameters only it has (DATA, --out, --json...) and a ``**options`` catch-all;
``generated(groups, strategy_options=...)`` turns it into a callable whose signature, read by typer when the
command is built, holds one ``typer.Option`` per declared option: its flag names, type, default and help. Values
arrive typed (click converts them; comma-separated lists become tuples), so the verb hands them on as they are.
The signature is made each time typer asks, so a strategy registered later (``register_strategy``) has its flags.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, Iterable, Optional

import typer

from headstart.core.errors import ConfigError, FlagError
from headstart.core.fields import shared_fields, shared_names, shared_types
from headstart.strategies.declared import DECLARED
from headstart.strategies.options import option_fields, option_help

METAVARS = {"cs": "C,C,...", "target_modules": "NAME,NAME,...", "unfreeze": "N", "lr": "RATE", "head_lr": "RATE",
            "lr_decay": "FACTOR"}  # what a strategy option's value looks like, where its type says too little
SCALARS = (bool, int, float, str)


def comma_separated(kind: type, flag: str) -> Callable[[Any], tuple]:
    """A parser of ``"a,b"`` into a tuple of ``kind`` (a value that is a tuple already stays); a part that is not
    a ``kind`` is a FlagError naming ``flag``."""
    def parse(value: Any) -> tuple:
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",") if part.strip()]
        for part in parts:
            try:
                kind(part)
            except ValueError:
                raise FlagError(f"{flag} {value}: {part!r} is not a number; give numbers separated by commas, "
                                "e.g. 0.01,0.1,1.") from None
        return tuple(kind(part) for part in parts)

    parse.__name__ = "list"  # click names the value's type after its parser (what a config file may give: text)
    return parse


def _base(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` as ``(X, True)``; other annotations as ``(annotation, False)``."""
    args = typing.get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return annotation, False


def option_for(name: str, annotation: Any, default: Any, help: str, flags: Iterable[str] = (),
               metavar: str | None = None) -> tuple[Any, Any]:
    """The ``(annotation, typer.Option)`` of a flag for option ``name``: a bool with default True is
    ``--name/--no-name``, one with default False ``--name``, an optional bool both ways with default None; a
    tuple (or a union that is not X | None) is text, lists comma-separated."""
    kind, optional = _base(annotation)
    flag = f"--{name.replace('_', '-')}"
    names = tuple(flags) or (flag,)
    if kind is bool:
        if default is not False or optional:
            names = (f"{flag}/--no-{name.replace('_', '-')}",)
        return (Optional[bool] if optional else bool), typer.Option(default, *names, help=help)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        default = ",".join(map(str, default)) if isinstance(default, tuple) and default else None
        return Optional[str], typer.Option(default, *names, help=help, parser=comma_separated(item, flag),
                                           metavar=metavar or f"{item.__name__.upper()},...")
    if kind not in SCALARS:  # e.g. ``str | float`` (a budget, a number of seconds from Python): text
        kind = str
    return (Optional[kind] if optional or default is None else kind), typer.Option(default, *names, help=help,
                                                                                    metavar=metavar)


def shared_options(groups: Iterable[str], leave_out: Iterable[str] = ()) -> list[inspect.Parameter]:
    """Parameters for FitConfig's fields in ``groups`` (headstart.core.fields.GROUPS), but ``leave_out``."""
    hints = shared_types()
    wanted, skipped = set(groups), set(leave_out)
    params = []
    for name, f in shared_fields().items():
        if f.metadata["group"] in wanted and name not in skipped:
            meta = f.metadata
            annotation, info = option_for(name, hints[name], f.default, meta["help"], meta["flags"], meta["metavar"])
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                            annotation=annotation))
    return params


def strategy_options() -> list[inspect.Parameter]:
    """One parameter per option any declared strategy takes (default None: the strategy's own default), its help
    the field's, prefixed with the strategies that take it. A name FitConfig also has is an error (see
    headstart.strategies.registry.check_no_shadowing): it cannot be both."""
    owners: dict[str, list[str]] = {}
    for strategy, cls in DECLARED.items():
        for name in option_fields(cls):
            owners.setdefault(name, []).append(strategy)
    clash = sorted(set(owners) & shared_names())
    if clash:
        raise ConfigError(f"Strategy options {', '.join(clash)} have the names of options every fit shares.")
    params = []
    for name, who in owners.items():
        cls = DECLARED[who[0]]
        annotation = typing.get_type_hints(cls)[name]
        kind, info = option_for(name, annotation, None, f"{' / '.join(who)}: {option_help(cls, name)}",
                                metavar=METAVARS.get(name))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind))
    return params


class Generated:
    """A verb whose ``**options`` are the declared options of ``groups`` (and, with ``strategy_options``, every
    strategy's), as typer reads a signature: the verb's own parameters, then the generated ones."""

    def __init__(self, verb: Callable[..., None], groups: Iterable[str], leave_out: Iterable[str] = (),
                 with_strategy_options: bool = False):
        self.verb, self.groups, self.leave_out = verb, tuple(groups), tuple(leave_out)
        self.with_strategy_options = with_strategy_options
        functools.update_wrapper(self, verb, updated=())
        del self.__wrapped__  # typer must read this signature, not the verb's
        self.__annotations__: dict[str, Any] = {}  # the types are the signature's (a wrapper copies these)

    @property
    def __signature__(self) -> inspect.Signature:
        own = inspect.signature(self.verb, eval_str=True)
        fixed = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        made = shared_options(self.groups, self.leave_out)
        if self.with_strategy_options:
            made += strategy_options()
        taken = {p.name for p in fixed}
        return own.replace(parameters=[*fixed, *(p for p in made if p.name not in taken)])

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return self.verb(*args, **kwargs)


def generated(groups: Iterable[str], leave_out: Iterable[str] = (),
              with_strategy_options: bool = False) -> Callable[[Callable[..., None]], Generated]:
    """Decorator: see ``Generated``."""
    return lambda verb: Generated(verb, groups, leave_out, with_strategy_options)


def given_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options a verb hands on: its generated values, strategy options left at None dropped (their default)."""
    shared = shared_names()
    return {k: v for k, v in options.items() if k in shared or v is not None}
