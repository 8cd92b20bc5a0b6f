"""Tables and JSON for the terminal."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from headstart.core.fileio import to_json
from headstart.tasks.kinds import SHORT_NAMES, kind_of

# pipes and CI logs get full rows, unless COLUMNS sets the width
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout: strict JSON, non-finite numbers as null (headstart.core.fileio)."""
    print(to_json(payload, indent=2, default=str))


def fmt_count(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)




def summary_table(rows: list[dict], title: str) -> Table:
    """One row per fitted strategy: the task's main metric on validation and test (with its interval), a second
    metric, trainable/total parameters, time, memory."""
    table = Table(title=title)
    task = kind_of(rows[0]["metrics"] if rows else None)
    main, second = task.main_metric, task.second_metric
    main_name, second_name = SHORT_NAMES[main], SHORT_NAMES[second]
    for col in ("strategy", f"val {main_name}", f"test {main_name}", f"test {second_name}", "trainable / total",
                "time", "peak mem"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for r in rows:
        m = r["metrics"]
        test = m.get("test")
        lo, hi = (test or m["val"])[f"{main}_ci95"]
        table.add_row(
            r["strategy"], f"{m['val'][main]:.3f}",
            f"{test[main]:.3f} [{lo:.2f}, {hi:.2f}]" if test else "-",
            f"{test[second]:.3f}" if test else "-",
            f"{fmt_count(m['trainable_params'])} / {fmt_count(m['total_params'])} ({m['trainable_share']:.1%})",
            f"{m['seconds']:.1f} s", f"{m['peak_rss_mb']:.0f} MB",
        )
    return table


def auto_lines(info: dict) -> list[str]:
    """What ``--strategy auto`` did, in words: the advice's reasons, every fit it checked, the one kept, the time."""
    auto = info.get("auto")
    if not auto:
        return []
    reasons = ((auto.get("advice") or {}).get("recommendation") or {}).get("reasons") or []
    seconds = auto.get("seconds") or {}
    metric = auto.get("metric", "accuracy")  # the select metric auto kept the best by
    checked = ", ".join(f"{name} (val {SHORT_NAMES.get(metric, metric)} {score:.3f}"
                        + (f", {seconds[name]:.0f} s)" if name in seconds else ")")
                        for name, score in (auto.get(f"val_{metric}") or {}).items())
    total = f"; {auto['total_seconds']:.0f} s in all, the advice included" if "total_seconds" in auto else ""
    return ([f"auto: advised {auto['recommended']}, because:"] + [f"  - {r}" for r in reasons]
            + [f"auto: fitted {checked}{total}; kept {auto['kept']}."])
