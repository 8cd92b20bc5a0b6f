"""A strategy's options: declared once, as fields of its dataclass with help text (peft's LoraConfig style).

    @dataclass(frozen=True)
    class Partial:
        unfreeze: int = option(2, "Train the last N layer groups (and the head).")

``FitConfig`` keeps the options of the strategy it names, the CLI's flags take their help from here, and
config.json records every value a fit used (see ``option_values``), so a run is rebuilt from it alone.

An option may declare a ``check`` of its values (``check_rate``, ``check_strengths``...): ``Checked`` runs them whenever a
strategy is made, and ``option_problems`` before one is chosen (``--strategy auto``), so every entry point (flag,
config file, Python argument) gets the same error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable

from headstart.core.errors import ConfigError

Check = Callable[[Any], "str | None"]  # a value -> what is wrong with it, or None


def option(default: Any, help: str, check: Check | None = None) -> Any:
    """A strategy option: a dataclass field with its default, its help text and the ``check`` of its values."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_rate(value: Any) -> str | None:
    """A learning rate: a finite number above 0 (None: the default)."""
    if value is None or _is_number(value) and value > 0:
        return None
    return "must be a finite number above 0, e.g. 1e-4"


def check_count(value: Any) -> str | None:
    """A count such as the layer groups unfrozen: a whole number of at least 1 (None: the default)."""
    ok = value is None or isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a whole number of at least 1"


def check_decay(value: Any) -> str | None:
    """A factor in (0, 1]."""
    return None if _is_number(value) and 0 < value <= 1 else "must be a number in (0, 1], e.g. 0.7"


def check_strengths(value: Any) -> str | None:
    """Inverse regularisation strengths: at least one, each a finite number above 0."""
    values = (value,) if isinstance(value, (str, bytes)) else value
    try:
        ok = len(values) > 0 and all(_is_number(c) and c > 0 for c in values)
    except TypeError:  # not a sequence
        ok = False
    return None if ok else "must be one or more finite numbers above 0, e.g. 0.01,0.1,1"


def option_problems(cls: type | None, values: dict[str, Any]) -> list[str]:
    """What is wrong with ``values`` by the checks ``cls``'s options declare, each naming its option."""
    fields = option_fields(cls)
    problems = []
    for name, value in values.items():
        check = fields[name].metadata.get("check") if name in fields else None
        problem = check(value) if check else None
        if problem:
            problems.append(f"{_spelled(name, value)}: {problem}")
    return problems


def _spelled(name: str, value: Any) -> str:
    """An option and its value as a flag and as a Python argument: ``--cs 0.1,-1 (cs=(0.1, -1))``."""
    shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return f"--{name.replace('_', '-')} {shown or repr(shown)} ({name}={value!r})"


class Checked:
    """Base of the options dataclasses: making one runs its options' declared checks (ConfigError naming them).

    A subclass with its own ``__post_init__`` calls ``super().__post_init__()`` first.
    """

    def __post_init__(self) -> None:
        problems = option_problems(type(self), {name: getattr(self, name) for name in option_fields(self)})
        if problems:
            raise ConfigError(f"Invalid {getattr(self, 'name', type(self).__name__)} options: "
                              + "; ".join(problems) + ".")


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
