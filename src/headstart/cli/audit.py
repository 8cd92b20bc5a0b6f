"""`headstart audit`: duplicates, leakage, likely label errors, outliers, imbalance and weak slices."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from headstart.cli.flags import generated, given_options
from headstart.cli.options import DATA_HELP, config_option
from headstart.cli.output import SHORT_NAMES, console, print_json
from headstart.tasks.kinds import kind as task_kind

if TYPE_CHECKING:
    from headstart.workflows.audit import AuditReport

LISTED = 15  # rows per findings table in the terminal; audit.json and report.html hold more


@generated(("model", "input", "data", "hardware"), leave_out=("strategy", "shots"))
def audit_cli(
    data: str = typer.Argument(..., help=DATA_HELP),
    group_col: Optional[str] = typer.Option(None, "--group-col", help="Table column to slice by (e.g. a site)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for audit.json and report.html "
                                       "[default: runs/audit-<data>-<time>]"),
    val: Optional[str] = typer.Option(None, help="Validation data; default: a stratified split of DATA."),
    test: Optional[str] = typer.Option(None, help="Test data, checked for leakage from the training data."),
    folds: int = typer.Option(5, help="Cross-validation folds of the probe that scores every item out of sample."),
    near_threshold: Optional[float] = typer.Option(None, help="Cosine similarity of near duplicates "
                                                   "[default: 0.98 images, 0.97 texts]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder at --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    config: Optional[str] = config_option(),
    **options: Any,
) -> None:
    """Audit labelled DATA on MODEL's frozen features: what to fix before fitting.

    Example: headstart audit reviews.csv --model minilm-l6 --group-col source --out runs/audit
    """
    from headstart.api import audit  # lazy: `--help` need not load torch (start-up time)

    out = out or Path("runs") / f"audit-{Path(data).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    report = audit(data, val=val, test=test, group_col=group_col, folds=folds, near_threshold=near_threshold,
                   out=out, overwrite=overwrite, progress=not quiet, **given_options(options))
    for warning in report.warnings:  # on stderr, as fit's (findings: --quiet keeps them)
        print(f"warning: {warning}", file=sys.stderr)
    if json_out:
        print_json({"out": str(report.out_dir), **report.to_dict()})
        return
    print_report(report, data)
    console.print(f"Saved audit.json and report.html to [bold]{report.out_dir}[/].", highlight=False)


def print_report(report: AuditReport, data: str) -> None:
    """The audit as Rich tables: the checks, then the findings of each kind (first rows)."""
    checks = Table(title=f"Audit of {data} on {report.model} ({sum(report.sizes.values())} items; "
                         f"{report.probe_summary()})")
    for col in ("check", "found", "status"):
        checks.add_column(col, justify="left" if col == "check" else "right")
    for row in report.summary():
        colour = "yellow" if row["status"] == "warn" else "green"
        checks.add_row(row["check"], str(row["count"]), f"[{colour}]{row['status']}[/]")
    console.print(checks)
    _findings("Exact duplicates", ("kind", "items"),
              [(g["kind"], "\n".join(_who(i) for i in g["items"])) for g in report.exact_duplicates])
    _findings("Near duplicates", ("similarity", "kind", "item", "item"),
              [(f"{p['similarity']:.4f}", p["kind"], _who(p["a"]), _who(p["b"])) for p in report.near_duplicates],
              report.near_duplicate_count)
    _label_findings(report)
    _findings("Outliers (mean distance to nearest neighbours)", ("item", "split", "label", "distance", "robust z"),
              [(o["origin"], o["split"], _label(o["label"]), f"{o['score']:.4f}", f"{o['z']:.1f}")
               for o in report.outliers])
    _balance(report)
    if report.slices:
        _slices(report)


def _label_findings(report: AuditReport) -> None:
    """Likely label errors (per class or per label), or a regression's large residuals."""
    _LABEL_FINDINGS[report.task](report.label_issues)


def _residuals(issues: list[dict]) -> None:
    _findings("Large residuals of the cross-validated probe (largest first)",
              ("rank", "item", "split", "given", "predicted", "robust z"),
              [(str(i["rank"]), i["origin"], i["split"], _label(i["label"]), f"{i['predicted']:.4g}",
                f"{i['z']:+.1f}") for i in issues])


def _label_pairs(issues: list[dict]) -> None:
    _findings("Likely label errors per label (most likely first)",
              ("rank", "item", "split", "labels given", "label", "given", "suggested", "self-conf."),
              [(str(i["rank"]), i["origin"], i["split"], _label(i["label"]), i["label_name"], i["given"],
                i["suggested"], f"{i['self_confidence']:.3f}") for i in issues])


def _label_errors(issues: list[dict]) -> None:
    _findings("Likely label errors (most likely first)",
              ("rank", "item", "split", "given", "suggested", "self-conf."),
              [(str(i["rank"]), i["origin"], i["split"], i["label"], i["suggested"], f"{i['self_confidence']:.3f}")
               for i in issues])


_LABEL_FINDINGS = {"single-label": _label_errors, "multi-label": _label_pairs, "regression": _residuals}  # per task


def _balance(report: AuditReport) -> None:
    """Training counts per class or label, or the regression target's summary."""
    target = report.balance.get("target")
    if target:  # a numeric target's summary
        table = Table(title=f"Target (train, {target['n']} items)")
        names = ("mean", "std", "min", "q25", "median", "q75", "max")
        for name in names:
            table.add_column(name, justify="right")
        table.add_row(*(f"{target[name]:.4g}" for name in names))
        console.print(table)
        return
    kind, kinds = task_kind(report.task).output
    balance = Table(title=f"{kinds.capitalize()} (max/min ratio {report.balance['ratio']:.2f})")
    for col in (kind, "train", "all splits"):
        balance.add_column(col, justify="left" if col == kind else "right")
    for c in report.classes:
        few = c in report.balance["few"]
        balance.add_row(f"[yellow]{c}[/]" if few else c, str(report.balance["counts"][c]),
                        str(report.balance["counts_all"][c]))
    console.print(balance)


def _slices(report: AuditReport) -> None:
    worst = report.slices["worst"]["group"]
    table = Table(title=f"Slices of '{report.slices['column']}' (cross-validated probe; weakest first)")
    metric = report.slices.get("metric")
    cols = ("group", "n", SHORT_NAMES.get(metric, metric)) if metric else ("group", "n", "accuracy [95% CI]",
                                                                          "macro-F1")
    for col in cols:
        table.add_column(col, justify="left" if col == "group" else "right")
    for s in report.slices["rows"]:
        name = f"[bold red]{s['group']}[/]" if s["group"] == worst else str(s["group"])
        if metric:
            table.add_row(name, str(s["n"]), "-" if s[metric] is None else f"{s[metric]:.3f}")
        else:
            table.add_row(name, str(s["n"]), f"{s['accuracy']:.3f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]",
                          f"{s['macro_f1']:.3f}")
    console.print(table)


def _label(label: object) -> str:
    from headstart.workflows.audit import label_text  # loaded by the audit already

    return label_text(label)


def _who(item: dict) -> str:
    return f"{item['origin']} ({item['split']}, {_label(item['label'])})"


def _findings(title: str, columns: tuple[str, ...], rows: list[tuple], total: int | None = None) -> None:
    if not rows:
        return
    total = len(rows) if total is None else total
    shown = f" — first {LISTED} of {total}" if total > LISTED else f" ({total})"
    table = Table(title=title + shown)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows[:LISTED]:
        table.add_row(*row)
    console.print(table)
