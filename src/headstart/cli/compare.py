"""`headstart compare`: every strategy on the same data and backbone, measured side by side."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from headstart.workflows.budget import hms
from headstart.cli.flags import generated, given_options
from headstart.cli.options import DATA_HELP, config_option
from headstart.cli.output import SHORT_NAMES, console, fmt_count, print_json
from headstart.strategies.declared import COMPARED

if TYPE_CHECKING:
    from headstart.workflows.compare import Comparison

COMPARE_GROUPS = ("model", "input", "data", "training", "hardware")  # every fit option but auto's budget, tracking


@generated(COMPARE_GROUPS, leave_out=("strategy",), with_strategy_options=True)
def compare_cli(
    data: str = typer.Argument(..., help=DATA_HELP),
    strategies: str = typer.Option(",".join(COMPARED),
                                   help="Comma-separated strategies to compare (also lora; contrastive for text)."),
    budget: Optional[str] = typer.Option(None, help="Time budget for the whole comparison, e.g. 90s, 15m, 1h: "
                                         "cheap fits first; fits estimated not to finish are skipped."),
    seeds: Optional[int] = typer.Option(None, help="Repeat over this many split seeds [default: 3 below 500 "
                                        "training or 100 validation examples]."),
    folds: Optional[int] = typer.Option(None, help="Repeat over K stratified folds instead of seeds."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to save [default: runs/compare-<time>]"),
    val: Optional[str] = typer.Option(None, help="Validation data; default: a stratified split of DATA."),
    test: Optional[str] = typer.Option(None, help="Test data, scored once per fit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing comparison at --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    config: Optional[str] = config_option(),
    **options: Any,
) -> None:
    """Compare transfer learning and fine-tuning strategies on DATA with MODEL.

    Every option of `headstart fit` applies to each strategy that takes it; --select-metric is also what the
    recommendation optimises.

    Example: headstart compare data/pets --model mobilenetv2 --strategies linear,partial,full --budget 15m
    """
    from headstart.api import compare  # lazy: `--help` need not load torch (start-up time)

    started = time.perf_counter()
    out = out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    result = compare(data, strategies=names, budget=budget, seeds=seeds, folds=folds, val=val, test=test,
                     out=out, overwrite=overwrite, progress=not quiet, **given_options(options))
    if json_out:
        print_json(result.to_dict())
        return
    console.print(comparison_table(result, f"{result.model} on {data}"))
    for row in result.rows:
        if row["reason"] and row["status"] != "skipped":  # a skipped row's reason is its status
            console.print(f"[yellow]{row['strategy']}[/]: {row['reason']}", highlight=False, soft_wrap=True)
    for warning in result.warnings():
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if result.budget_s is not None:
        console.print(f"Budget {hms(result.budget_s)}: used {hms(time.perf_counter() - started)}, saving included.",
                      highlight=False)
    rec = result.recommendation()
    if rec:
        console.print(f"Recommendation: [bold]{rec['strategy']}[/]", highlight=False)
        for reason in rec["reasons"]:
            console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    console.print(f"Saved to [bold]{out}[/] (comparison.json, report.html, runs/<strategy>).", highlight=False,
                  soft_wrap=True)


def _ci(stat: dict | None) -> str:
    if not stat or stat.get("n", 1) == 0:
        return "-"
    lo, hi = stat["ci95"]
    return f"{stat['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def comparison_table(c: Comparison, title: str) -> Table:
    """Scope, data needs, cost, adaptability and overfitting, one row per strategy; the title says what ran.
    Scores are the task's: its main metric (with intervals, the learning curve, the gap), a second one, and the
    select metric the recommendation optimises when it is neither."""
    main, second, *select = c.metrics
    name = {m: SHORT_NAMES.get(m, m) for m in c.metrics}
    curve_col = f"learning curve (val {name[main]})"
    cols = ("strategy", "trainable (share)", f"val {name[main]} [95% CI]", f"val {name[second]}",
            *[f"val {name[m]} [95% CI]" for m in select], f"test {name[main]} [95% CI]", "train-val gap",
            curve_col, "time / fit", "peak mem", "status")
    table = Table(title=f"{title} ({c.ran()}{f'; {c.shots} shots' if c.shots else ''})")
    for col in cols:
        table.add_column(col, justify="left" if col in ("strategy", curve_col, "status") else "right")
    for row in c.rows:
        if row["status"] == "skipped":
            table.add_row(row["strategy"], *["-"] * (len(cols) - 2), row["status_text"])
            continue
        curve = " ".join(f"{p['n']}:{p[main]['mean']:.2f}" for p in c.learning_curve[row["strategy"]])
        table.add_row(
            row["strategy"], f"{fmt_count(row['trainable_params'])} ({row['trainable_share']:.1%})",
            _ci(row[f"val_{main}"]), f"{row[f'val_{second}']['mean']:.3f}",
            *[_ci(row[f"val_{m}"]) for m in select], _ci(row[f"test_{main}"]),
            f"{row['gap']['mean']:+.3f}", curve, f"{row['seconds']:.1f} s", f"{row['peak_rss_mb']:.0f} MB",
            row["status_text"],
        )
    return table
