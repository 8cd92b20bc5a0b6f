"""Run the zoo: every set's hand-written baselines and headstart's strategies, one cell at a time.

    python -m bench.zoo                          # everything not yet in the results file (resumes)
    python -m bench.zoo --sets faces,bbc --redo  # rerun those sets' cells
    python -m bench.zoo --strategies linear,linear@224 --sets scenes
    python -m bench.zoo --table                  # print the markdown table of what has finished

Cells run cheapest first across all sets (probes, then fine-tuning, then ``auto`` and ``contrastive``), so a
run stopped early still has every set's probes. Each cell's test score, validation score (headstart's) and
seconds go to the results file as soon as it finishes; a failed cell records its error and the run goes on.
headstart cells call ``headstart.fit`` with its defaults plus ``--epochs`` (3) and the set's options, on the
set's fixed split, with a cold feature cache; ``NAME@224`` is the same strategy with ``image_size=224``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.zoo import baselines
from bench.zoo.sets import BY_NAME, SETS, Split, ZooSet

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
MAIN_METRIC = {"single-label": "accuracy", "multi-label": "micro_f1", "regression": "r2"}
PHASES = (("hand-probe", "linear", "linear@224"), ("hand-ft", "partial", "full", "lp-ft"), ("auto", "contrastive"),
          ("partial@224", "lp-ft@224"))
CELLS = tuple(c for phase in PHASES for c in phase)
AUTO_BUDGET = "4m"


def applies(spec: ZooSet, cell: str) -> bool:
    """Whether ``cell`` runs on ``spec``: ``@224`` cells on images only, contrastive on single-label texts."""
    if cell.endswith("@224"):
        return spec.modality == "image"
    if cell == "contrastive":
        return spec.modality == "text" and spec.task == "single-label"
    return True


def run_cell(spec: ZooSet, split: Split, cell: str, epochs: int) -> dict:
    """One cell's figures: ``score`` (test, the task's main metric), ``seconds`` and what the fit chose."""
    start = time.perf_counter()
    if cell == "hand-probe":
        out = (baselines.logmel_probe if spec.modality == "audio" else baselines.frozen_probe)(spec, split)
    elif cell == "hand-ft":
        out = baselines.hand_finetune(spec, split, epochs=epochs)
    else:
        out = headstart_cell(spec, split, cell, epochs)
    return {**out, "seconds": time.perf_counter() - start}


def headstart_cell(spec: ZooSet, split: Split, cell: str, epochs: int) -> dict:
    """``headstart.fit`` with defaults (plus the cell's size and the set's options) on the fixed split."""
    import headstart

    strategy, _, size = cell.partition("@")
    options = {**spec.options, "epochs": epochs, "seed": 0}
    if size:
        options["image_size"] = int(size)
    if strategy == "auto":
        options["budget"] = AUTO_BUDGET
    metric = MAIN_METRIC[spec.task]
    with tempfile.TemporaryDirectory() as cache:
        result = headstart.fit(split.train, spec.model, strategy, val=split.val, test=split.test, progress=False,
                               cache_dir=cache, **options)
    auto = result.info.get("auto") or {}
    return {"score": result.metrics["test"][metric], "val_score": result.metrics["val"][metric],
            "strategy": result.strategy, "image_size": result.config.image_size,
            "batch_size": result.config.batch_size, "best_epoch": result.info.get("best_epoch"),
            "auto_kept": auto.get("kept"), "auto_recommended": auto.get("recommended")}


def load(path: Path) -> dict:
    """The results file (an empty one if there is none yet)."""
    if path.is_file():
        return json.loads(path.read_text())
    return {"cells": {}}


def merged(folder: Path) -> dict:
    """Every ``results*.json`` in ``folder`` as one (several runners may share the work, one file each)."""
    cells: dict = {}
    for path in sorted(folder.glob("results*.json")):
        cells.update(load(path)["cells"])
    return {"cells": cells}


def save(path: Path, results: dict) -> None:
    """Write the results file atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True, default=float))
    os.replace(tmp, path)


def plan(sets: list[ZooSet], cells: list[str], done: dict, redo: bool) -> list[tuple[ZooSet, str]]:
    """The cells to run, cheapest phase first, skipping finished ones unless ``redo``."""
    todo = []
    for cell in cells:
        for spec in sets:
            key = f"{spec.name}/{cell}"
            if applies(spec, cell) and (redo or key not in done or "error" in done[key]):
                todo.append((spec, cell))
    return todo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("--sets", help="comma-separated set names (default: all)")
    parser.add_argument("--strategies", help=f"comma-separated cells (default: all of {', '.join(CELLS)})")
    parser.add_argument("--redo", action="store_true", help="rerun the chosen cells even if they finished")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-zoo")
    parser.add_argument("--table", action="store_true", help="print the markdown table and stop")
    args = parser.parse_args(argv)
    if args.table:
        from bench.zoo.table import markdown

        print(markdown(merged(args.results.parent)))
        return 0
    results = load(args.results)
    names = args.sets.split(",") if args.sets else [s.name for s in SETS]
    cells = args.strategies.split(",") if args.strategies else list(CELLS)
    unknown = [n for n in names if n not in BY_NAME] + [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown sets or cells: {', '.join(unknown)}; sets: {', '.join(BY_NAME)}; cells: "
                     f"{', '.join(CELLS)}")
    results.setdefault("meta", {}).update({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
                                           "torch_threads": torch.get_num_threads(), "epochs": args.epochs})
    args.work.mkdir(parents=True, exist_ok=True)
    splits: dict[str, Split] = {}
    for spec, cell in plan([BY_NAME[n] for n in names], cells, results["cells"], args.redo):
        if spec.name not in splits:
            splits[spec.name] = spec.load(args.work)
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"[{stamp}] {spec.name} / {cell} ...", flush=True)
        try:
            out = run_cell(spec, splits[spec.name], cell, args.epochs)
        except Exception as error:  # a failed cell is recorded and the zoo goes on
            out = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-2000:]}
        out["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        results["cells"][f"{spec.name}/{cell}"] = out
        save(args.results, results)
        print(f"    {out.get('score', out.get('error'))}  {out.get('seconds', 0):.1f} s", flush=True)
    return 0
