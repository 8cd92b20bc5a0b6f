"""`headstart advise`: rank backbones on your data and recommend a strategy, with reasons in numbers."""

from __future__ import annotations

import shlex
from typing import Any, Optional

import typer
from rich.table import Table

from headstart.cli.flags import generated, given_options
from headstart.cli.options import DATA_HELP, config_option
from headstart.cli.output import SHORT_NAMES, console, fmt_count, print_json

SAME_READING = ("text_col", "label_col", "image_col", "label_sep", "task", "shots", "image_size", "max_length",
                "clip_seconds")  # options the suggested `headstart fit` repeats, so it reads the data alike


@generated(("input", "data", "hardware"), leave_out=("weights",))
def advise_cli(
    data: str = typer.Argument(..., help=DATA_HELP),
    models: str = typer.Option(..., "--models", "-m", help="Comma-separated candidates, e.g. mobilenetv2,efficientnet-lite0"),
    budget: Optional[str] = typer.Option(None, help="Time you can give fine-tuning, e.g. 10m."),
    epochs: int = typer.Option(10, help="Epochs assumed for the fine-tuning time estimate."),
    json_out: bool = typer.Option(False, "--json", help="Print the advice as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    config: Optional[str] = config_option(),
    **options: Any,
) -> None:
    """Rank candidate backbones by LogME, H-score and a cross-validated probe; recommend a strategy.

    Example: headstart advise data/pets --models mobilenetv2,efficientnet-lite0 --budget 10m
    """
    from headstart.api import advise  # lazy: `--help` need not load torch (start-up time)

    names = [m.strip() for m in models.split(",") if m.strip()]
    advice = advise(data, names, budget=budget, epochs=epochs, progress=not quiet, **given_options(options))
    if json_out:
        print_json(advice.to_dict())
        return
    table = Table(title=f"Backbones ranked on {data}")
    metric = advice.recommendation.get("metric", "accuracy")
    for col in ("rank", "model", "LogME", "H-score", f"probe {SHORT_NAMES.get(metric, metric)} (5-fold) [95% CI]",
                "curve slope / doubling", "params", "features", "scored in"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for i, r in enumerate(advice.ranking, 1):
        lo, hi = r["probe"]["ci95"]
        h_score = "-" if r["h_score"] is None else f"{r['h_score']:.2f}"  # none for label sets and numbers
        table.add_row(str(i), r["model"], f"{r['logme']:.3f}", h_score,
                      f"{r['probe']['mean']:.3f} [{lo:.2f}, {hi:.2f}]", f"{r['curve']['slope']:+.3f}",
                      fmt_count(r["parameters"]), str(r["feature_dim"]), f"{r['seconds']:.1f} s")
    console.print(table)
    rec = advice.recommendation
    console.print(f"Recommendation: [bold]{rec['model']}[/] with [bold]{rec['strategy']}[/]", highlight=False)
    for reason in rec["reasons"]:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    same = "".join(f" --{name.replace('_', '-')} {shlex.quote(str(options[name]))}" for name in SAME_READING
                   if options.get(name) not in (None, "auto"))  # how the data was read: fit reads it so
    console.print(f"Next: headstart fit {shlex.quote(data)} --model {rec['model']} --strategy {rec['strategy']}{same}",
                  highlight=False, soft_wrap=True)
    if len(rec["candidates"]) > 1:
        console.print(f"  (--strategy auto fits the probe, {' and '.join(rec['candidates'])}, and keeps the best on "
                      "validation)", highlight=False, soft_wrap=True)
