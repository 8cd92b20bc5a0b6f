"""report.html for runs and comparisons: one self-contained page a person would rather look at than read."""

from headstart.report.render import ReportData, read_run, render_report, render_run_report, run_notes, summary_card

__all__ = ["ReportData", "read_run", "render_report", "render_run_report", "run_notes", "summary_card"]
