"""Options several verbs share, defined once; strategy options' flags take their help from the strategy.

The built-in strategies' option declarations (headstart.strategies.declared) import without torch, so
`headstart --help` starts fast.
"""

from __future__ import annotations

from typing import Any

import typer

from headstart.strategies.declared import BUILT_IN
from headstart.strategies.options import option_fields, option_help

DATA_HELP = "Image folder (root/<class>/*), or a CSV/TSV/JSONL/Parquet table."
TEXT_COL_HELP = "Table column with the texts."
LABEL_COL_HELP = "Table column with the labels."
IMAGE_COL_HELP = "Table column with image paths (relative to the table)."
SHOTS_HELP = "Few-shot: keep this many training examples per class."
MAX_LENGTH_HELP = "Text: tokens kept per item [default: 128]."
METAVARS = {"cs": "C,C,...", "target_modules": "NAME,NAME,...", "unfreeze": "N", "lr": "RATE", "head_lr": "RATE",
            "lr_decay": "FACTOR"}  # what a strategy option's value looks like, where its type says too little


def owners(name: str) -> list[str]:
    """The built-in strategies that take option ``name``."""
    return [s for s, cls in BUILT_IN.items() if name in option_fields(cls)]


def strategy_option(name: str, *flags: str) -> Any:
    """A flag for a strategy's option ``name`` (default None: the strategy's own), its help the field's,
    prefixed with the strategies that take it."""
    who = owners(name)
    return typer.Option(None, *flags, metavar=METAVARS.get(name),
                        help=f"{' / '.join(who)}: {option_help(BUILT_IN[who[0]], name)}")


def comma_list(value: str | None, kind: type = str) -> tuple | None:
    """``"a,b"`` as ``("a", "b")`` (each converted by ``kind``); None stays None."""
    if value is None:
        return None
    return tuple(kind(part.strip()) for part in value.split(",") if part.strip())
