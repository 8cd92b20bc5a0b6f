"""`headstart demo`: transfer learning against fine-tuning on packaged data, side by side."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from headstart.cli.output import console, fmt_count


def demo_cli(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo's runs are saved."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run transfer learning and fine-tuning on MNIST digits and BBC News, offline, and compare them."""
    start = time.perf_counter()
    from headstart.demo import run_demo  # lazy: `--help` need not load torch (start-up time)

    results = run_demo(out, progress=not quiet)
    table = Table(title="Transfer learning vs fine-tuning (held-out test set)")
    for col in ("data", "model", "strategy", "test accuracy [95% CI]", "macro-F1", "trainable params", "time"):
        table.add_column(col, justify="left" if col in ("data", "model", "strategy") else "right")
    for title, r in results:
        m, t = r.metrics, r.metrics["test"]
        lo, hi = t["accuracy_ci95"]
        table.add_row(title, r.model, r.strategy, f"{t['accuracy']:.3f} [{lo:.2f}, {hi:.2f}]",
                      f"{t['macro_f1']:.3f}",
                      f"{fmt_count(m['trainable_params'])} ({m['trainable_share']:.1%})", f"{m['seconds']:.1f} s")
    console.print(table)
    console.print(f"Demo finished in {time.perf_counter() - start:.0f} s. Runs saved under {out}; "
                  f"try: headstart predict {out}/minilm-l6-linear - <<< 'Shares fell after the merger'",
                  highlight=False)
