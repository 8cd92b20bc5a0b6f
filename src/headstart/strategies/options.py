"""A strategy's options: declared once, as fields of its dataclass with help text (peft's LoraConfig style).

    @dataclass(frozen=True)
    class Partial:
        unfreeze: int = option(2, "Train the last N layer groups (and the head).")

``FitConfig`` keeps the options of the strategy it names, the CLI's flags take their help from here, and
config.json records every value a fit used (see ``option_values``), so a run is rebuilt from it alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from headstart.errors import ConfigError


def option(default: Any, help: str) -> Any:
    """A strategy option: a dataclass field with its default and its help text."""
    return dataclasses.field(default=default, metadata={"help": help})


def option_fields(cls: type | None) -> dict[str, dataclasses.Field]:
    """The options of a strategy class (or instance): its dataclass init fields, by name."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "name"}  # a subclass's
    # ``name: ClassVar[str]`` under ``from __future__ import annotations`` may be taken for a field


def option_help(cls: type, name: str) -> str:
    """The help text of option ``name`` of ``cls`` (empty when it has none)."""
    return option_fields(cls)[name].metadata.get("help", "")


def option_values(strategy: Any) -> dict[str, Any]:
    """Every option value of a strategy object, defaults included, as JSON takes them (tuples as lists)."""
    return {name: list(v) if isinstance(v, tuple) else v
            for name, v in ((n, getattr(strategy, n)) for n in option_fields(strategy))}


def check_option_names(names: Iterable[str], allowed: dict[str, type], label: str,
                       everyone: dict[str, type]) -> None:
    """ConfigError unless every name in ``names`` is an option of one of the ``allowed`` strategies; ``label``
    says what was asked for ("strategy 'linear'"), and ``everyone`` (every strategy) which ones take it."""
    taken = {n for cls in allowed.values() for n in option_fields(cls)}
    unknown = sorted(set(names) - taken)
    if not unknown:
        return
    hints = []
    for name in unknown:
        owners = [s for s, cls in everyone.items() if name in option_fields(cls)]
        hints.append(f"{name} (an option of: {', '.join(owners)})" if owners else name)
    raise ConfigError(f"{label} does not take {', '.join(hints)}; it takes: "
                      f"{', '.join(sorted(taken)) or 'no options'}, besides the options every fit shares "
                      "(FitConfig's fields; `headstart fit --help`).")
