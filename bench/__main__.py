"""headstart's benchmark, in one command: ``make bench`` (or ``python -m bench``); writes bench/RESULTS.md.

Side by side, in one run, on the packaged models and data (MNIST at 96 and 224 px with MobileNetV2, BBC
News with MiniLM-L6), every measurement in a fresh process (bench/tasks.py) so its peak memory is its own:

  a. the limit: bare inference-mode forward passes, preprocessed inputs, best batch size;
  b. headstart ``linear`` end to end, cold cache, and its feature extraction alone;
  c. the usual frozen-backbone loop that runs the backbone every epoch (10 epochs);
  d. fine-tuning step throughput: headstart's loop against a minimal hand-written loop;
  e. partial fine-tuning on cached boundary activations against recomputing the frozen groups;
  f. peers: fastai ``vision_learner(...).fine_tune`` and a Hugging Face ``Trainer`` (``make bench-setup``);
  g. peak resident memory of each, and of ``linear`` on 10x more data;
  h. recipe quality (bench/recipes.py): every strategy's test accuracy and time on three small real sets,
     beside a hand-written full fine-tune and fastai / a Trainer, with issue 10's targets;
  i. start-up (bench/startup.py): `--help`, `models`, one-line `predict` and a cached refit as whole
     processes, against `python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.recipes import recipes_section
from bench.startup import startup_section
from bench.report import write_results

HERE = Path(__file__).resolve().parent
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
SECTIONS = ("transfer", "finetune", "peers", "memory", "recipes", "startup")


def run_task(name: str, spec: dict, work: Path, module: str = "bench.tasks") -> dict:
    """Run one measurement in a fresh process; its JSON result (``error`` set when it failed).

    ``spec["label"]`` only names the run in the progress lines; the task never sees it.
    """
    spec = dict(spec)
    label = spec.pop("label", "")
    spec_file = work / f"spec-{name}-{time.monotonic_ns()}.json"
    out_file = spec_file.with_name(spec_file.name.replace("spec-", "out-"))
    spec_file.write_text(json.dumps(spec))
    if module == "bench.tasks":
        cmd = [sys.executable, "-m", module, name, str(spec_file), str(out_file)]
    else:
        cmd = [sys.executable, "-m", module, name, "--spec", str(spec_file), "--out", str(out_file)]
    print(f"  {name} {label}", flush=True)
    done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"    failed: {' | '.join(tail)}", flush=True)
        return {"error": " | ".join(tail)}
    return json.loads(out_file.read_text())


def bbc_subset(dest: Path, per_class: int) -> Path:
    """The first ``per_class`` BBC News articles of each topic, as a folder of text files (made once)."""
    from headstart.data import bbc_news_folder

    if dest.is_dir():
        return dest
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    for topic in sorted(p for p in bbc_news_folder().iterdir() if p.is_dir()):
        (staging / topic.name).mkdir()
        for path in sorted(topic.glob("*.txt"))[:per_class]:
            shutil.copy(path, staging / topic.name / path.name)
    os.replace(staging, dest)
    return dest


def workloads(work: Path, quick: bool) -> dict[str, dict]:
    from headstart.data import mnist_folder

    n = 50 if quick else 200
    mnist = str(mnist_folder(work / f"mnist-{n}", per_class=n))
    bbc = str(bbc_subset(work / f"bbc-{n}", per_class=n))
    return {
        "MNIST @96": {"data": mnist, "model": "mobilenetv2", "image_size": 96, **SPLIT},
        "MNIST @224": {"data": mnist, "model": "mobilenetv2", "image_size": 224, **SPLIT},
        "BBC News": {"data": bbc, "model": "minilm-l6", "max_length": 128, **SPLIT},
    }


def transfer_section(loads: dict, work: Path) -> dict:
    """(a) bare forward, (b) linear end to end and extraction, bf16 vs fp32, (c) the usual loop."""
    out = {}
    for label, w in loads.items():
        bare = run_task("bare_forward", {**w, "label": label}, work)
        out[label] = {
            "bare": bare,
            "interleaved": run_task("interleaved", {**w, "label": label, "batch_size": bare.get("batch_size", 32)},
                                    work),
            "linear": run_task("headstart_fit", {**w, "label": label, "strategy": "linear"}, work),
            "linear_fp32": run_task("headstart_fit", {**w, "label": label, "strategy": "linear",
                                                      "options": {"precision": "fp32"}}, work),
            "usual": run_task("usual_frozen_loop", {**w, "label": label, "epochs": 10}, work),
        }
    return out


def finetune_section(loads: dict, work: Path, epochs: int) -> dict:
    """(d) step throughput, headstart against a hand-written loop; (e) boundary cache against recomputing."""
    out = {}
    for label in ("MNIST @96", "BBC News"):
        w = {**loads[label], "label": label}
        out[label] = {
            "headstart_full": run_task("headstart_fit", {**w, "strategy": "full", "options": {
                "epochs": 2, "augment": False, "patience": 5}}, work),
            "hand_full": run_task("hand_finetune", {**w, "epochs": 2}, work),
        }
        for cached in (True, False):
            out[label][f"partial_{'cached' if cached else 'recompute'}"] = run_task("headstart_fit", {
                **w, "strategy": "partial", "options": {"unfreeze": 2, "epochs": epochs, "augment": False,
                                                        "cache_boundary": cached}}, work)
    return out


def peers_section(loads: dict, work: Path, epochs: int) -> dict:
    """(f) fastai on MNIST @96 and a Trainer on BBC News against headstart, same split and epochs."""
    out = {}
    for label, peer, strategies in (("MNIST @96", "fastai", ("lp-ft", "partial")),
                                    ("BBC News", "trainer", ("full", "partial"))):
        w = {**loads[label], "label": label}
        splits = run_task("split_items", w, work)
        splits.pop("peak_rss_mb", None)
        settings = {"epochs": epochs, "batch_size": 32, "seed": 0}
        settings.update({"image_size": w["image_size"], "freeze_epochs": 1} if peer == "fastai"
                        else {"max_length": w["max_length"]})
        if peer == "fastai":
            settings["epochs"] = epochs - 1  # fine_tune(epochs, freeze_epochs=1): one frozen epoch first
        row = {peer: run_task(peer, {**splits, **settings, "label": label}, work, module="bench.peers")}
        for strategy in strategies:
            row[strategy] = run_task("headstart_fit", {**w, "strategy": strategy, "options": {"epochs": epochs}},
                                     work)
        out[label] = row
    return out


def memory_section(work: Path, scratch: Path, quick: bool) -> dict:
    """(g) ``linear`` on a data set and on one 10x larger: seconds and peak resident memory."""
    from headstart.data import mnist_folder

    small, large = (10, 100) if quick else (50, 500)
    out = {}
    for n in (small, large):
        data = str(mnist_folder(work / f"mnist-{n}", per_class=n))
        out[n * 10] = run_task("headstart_fit", {"data": data, "model": "mobilenetv2", "image_size": 96,
                                                 "strategy": "linear", "label": f"{n * 10} images", **SPLIT}, scratch)
    return out


def environment() -> dict:
    import torch

    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True)
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "python": platform.python_version(), "commit": rev.stdout.strip() or "unknown",
            "versions": {p: v(p) for p in ("torch", "torchvision", "timm", "transformers", "accelerate", "fastai")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, to check the benchmark itself runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-bench",
                        help="data folders and scratch files (kept, so a second run skips writing data)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: " + ",".join(SECTIONS))
    parser.add_argument("--recipe-sets", default="", help="recipes section: comma-separated sets to run "
                        "(mnist,lfw,bbc; default all)")
    parser.add_argument("--reuse", type=Path, help="a RESULTS.json whose sections fill in the skipped ones "
                        "(RESULTS.md then names the run each came from)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    start = time.perf_counter()
    loads = workloads(args.work, args.quick) if {"transfer", "finetune", "peers"} - skip else {}
    epochs, partial_epochs = (2, 2) if args.quick else (3, 5)
    results = {"environment": environment(), "workloads": loads, "epochs": epochs, "partial_epochs": partial_epochs}
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=args.work))  # task specs and results
    sections = {"transfer": lambda: transfer_section(loads, scratch),
                "finetune": lambda: finetune_section(loads, scratch, partial_epochs),
                "peers": lambda: peers_section(loads, scratch, epochs),
                "memory": lambda: memory_section(args.work, scratch, args.quick),
                "recipes": lambda: recipes_section(args.work, scratch, args.quick, run_task,
                                                            set(filter(None, args.recipe_sets.split(","))) or None),
                "startup": lambda: startup_section(args.work)}
    try:
        for name, section in sections.items():
            if name not in skip:
                print(f"{name}:", flush=True)
                results[name] = section()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["seconds"] = time.perf_counter() - start
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        reused = [name for name in sections if name in skip and name in earlier]
        results.update({name: earlier[name] for name in reused})
        if {"transfer", "finetune", "peers"} <= skip:  # their settings, as that run had them
            results.update({k: earlier[k] for k in ("workloads", "epochs", "partial_epochs") if k in earlier})
        results["reused"] = {"sections": reused, "date": earlier["environment"]["date"],
                             "commit": earlier["environment"]["commit"]}
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    write_results(results, args.out)
    print(f"wrote {args.out} ({results['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
