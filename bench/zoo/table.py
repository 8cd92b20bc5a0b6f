"""The zoo's markdown table, from the results file: per set, each cell's test score and seconds."""

from __future__ import annotations

from bench.zoo.run import CELLS, applies
from bench.zoo.sets import SETS

METRIC = {"single-label": "acc", "multi-label": "micro-F1", "regression": "R²"}


def cell_text(cell: dict | None) -> str:
    """``0.912 (34 s)``, ``error`` or ``-`` (not run)."""
    if cell is None:
        return "-"
    if "error" in cell:
        return "error"
    text = f"{cell['score']:.3f} ({cell['seconds']:.0f} s)"
    if cell.get("auto_kept") or (cell.get("strategy") and cell.get("strategy") not in ("linear",)
                                 and cell.get("auto_recommended") is not None):
        text += f" {cell.get('auto_kept') or cell['strategy']}"
    return text


def markdown(results: dict) -> str:
    """The table: one row per set, one column per cell; then the errors, if any."""
    cells = results.get("cells", {})
    lines = ["| set | task | " + " | ".join(CELLS) + " |", "|---|---|" + "---|" * len(CELLS)]
    errors = []
    for spec in SETS:
        row = []
        for cell in CELLS:
            got = cells.get(f"{spec.name}/{cell}")
            row.append(cell_text(got) if applies(spec, cell) else "")
            if got and "error" in got:
                errors.append(f"- {spec.name}/{cell}: {got['error']}")
        lines.append(f"| {spec.name}: {spec.title} | {METRIC[spec.task]} | " + " | ".join(row) + " |")
    return "\n".join(lines + ([""] + errors if errors else []))
