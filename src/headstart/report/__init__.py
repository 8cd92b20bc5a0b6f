"""report.html for runs and comparisons: one self-contained page a person would rather look at than read."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headstart.report.render import ReportData, read_run, render_report, render_run_report, run_notes, summary_card

__all__ = ["ReportData", "read_run", "render_report", "render_run_report", "run_notes", "summary_card"]


def __getattr__(name: str) -> Any:
    """The rendering names load on first use (PEP 562): they bring matplotlib, which predicting with a run
    (``headstart.report.previews``, imported by the tasks) does not need."""
    if name in __all__:
        return getattr(importlib.import_module("headstart.report.render"), name)
    raise AttributeError(f"module 'headstart.report' has no attribute {name!r}")
