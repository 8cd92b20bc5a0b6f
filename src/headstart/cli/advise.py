"""`headstart advise`: rank backbones on your data and recommend a strategy, with reasons in numbers."""

from __future__ import annotations

import shlex
from typing import Optional

import typer
from rich.table import Table

from headstart.cli.options import LABEL_SEP_HELP, TASK_HELP, config_option
from headstart.cli.output import SHORT_NAMES, console, fmt_count, print_json


def advise_cli(
    data: str = typer.Argument(..., help="Image folder (root/<class>/*), or a CSV/TSV/JSONL/Parquet table."),
    models: str = typer.Option(..., "--models", "-m", help="Comma-separated candidates, e.g. mobilenetv2,efficientnet-lite0"),
    budget: Optional[str] = typer.Option(None, help="Time you can give fine-tuning, e.g. 10m."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    label_col: Optional[str] = typer.Option(None, help="Table column with the labels."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths."),
    task: str = typer.Option("auto", help=TASK_HELP),
    label_sep: Optional[str] = typer.Option(None, help=LABEL_SEP_HELP),
    shots: Optional[int] = typer.Option(None, help="Few-shot: keep this many training examples per class."),
    epochs: int = typer.Option(10, help="Epochs assumed for the fine-tuning time estimate."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels [default: the weights' own]."),
    max_length: Optional[int] = typer.Option(None, help="Text: tokens kept per item [default: 128]."),
    clip_seconds: Optional[float] = typer.Option(
        None, help="Audio: clip length in seconds [default: from the data's durations]."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: bool = typer.Option(False, "--json", help="Print the advice as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    config: Optional[str] = config_option(),
) -> None:
    """Rank candidate backbones by LogME, H-score and a cross-validated probe; recommend a strategy.

    Example: headstart advise data/pets --models mobilenetv2,efficientnet-lite0 --budget 10m
    """
    from headstart.workflows.advise import advise  # lazy: `--help` need not load torch (start-up time)

    names = [m.strip() for m in models.split(",") if m.strip()]
    advice = advise(data, names, budget=budget, progress=not quiet, text_col=text_col, label_col=label_col,
                    image_col=image_col, task=task, label_sep=label_sep, shots=shots, epochs=epochs,
                    image_size=image_size, max_length=max_length,
                    clip_seconds=clip_seconds,
                    device=device)
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
    given = {"--text-col": text_col, "--label-col": label_col, "--image-col": image_col, "--label-sep": label_sep,
             "--task": None if task == "auto" else task, "--shots": shots, "--image-size": image_size,
             "--max-length": max_length, "--clip-seconds": clip_seconds}  # how the data was read: fit reads it so
    same = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given.items() if value is not None)
    console.print(f"Next: headstart fit {shlex.quote(data)} --model {rec['model']} --strategy {rec['strategy']}{same}",
                  highlight=False, soft_wrap=True)
    if len(rec["candidates"]) > 1:
        console.print(f"  (--strategy auto fits the probe, {' and '.join(rec['candidates'])}, and keeps the best on "
                      "validation)", highlight=False, soft_wrap=True)
