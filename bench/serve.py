"""`headstart serve` under load: ``python -m bench.serve`` prints the table and writes bench/serve.json.

Issue 22's bar, on the packaged MiniLM-L6 (a ``linear`` run on BBC News texts) and MobileNetV2 (a ``linear``
run on MNIST digits at 96 px): a real HTTP client (one keep-alive connection per client thread) against the
real server process on a port of 127.0.0.1, one item per request, at 1, 8 and 32 concurrent clients;
against it, ``load_run(...).predict`` on the same items in-process, batched (``--max-batch``). Reported:
items per second and its ratio to in-process (target at 32 clients: 0.8x), p50/p95/p99 latency, failed
requests (target 0 over at least 2,000), and the server's resident memory after warm-up and after the run,
each after 2 s idle (target: under 10% growth); each with ``--backend torch`` and ``--backend onnx``. Client and server share this machine's cores, as a load test on one host does.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bench.startup import small_bbc_csv
from headstart.serve.batching import IDLE_SECONDS

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
CONCURRENCY = (1, 8, 32)
REQUESTS = {1: 200, 8: 800, 32: 1000}  # per model: 2,000 requests each
MAX_BATCH = 32
BACKENDS = ("torch", "onnx")
IMAGES_PER_CLASS = 20


def fit_runs(work: Path) -> dict[str, Path]:
    """The two runs: MiniLM-L6 on BBC News texts, MobileNetV2 on MNIST digits at 96 px (both ``linear``)."""
    import headstart
    from headstart.data import mnist_folder

    runs = {"bbc": work / "bbc", "mnist": work / "mnist"}
    headstart.fit(str(small_bbc_csv(work / "bbc.csv")), "minilm-l6", "linear", out=str(runs["bbc"]), progress=False)
    headstart.fit(str(mnist_folder(work / "digits", per_class=IMAGES_PER_CLASS)), "mobilenetv2", "linear",
                  out=str(runs["mnist"]), progress=False, image_size=96)
    return runs


def request_items(work: Path) -> dict[str, tuple[list, list[str]]]:
    """Per model: (items for in-process predict, the same as the JSON strings of requests)."""
    import csv

    with open(work / "bbc.csv", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    images = sorted(str(p) for p in (work / "digits").rglob("*.png"))
    return {"bbc": (texts, texts), "mnist": (images, [base64.b64encode(Path(p).read_bytes()).decode() for p in images])}


def in_process(run: Path, items: list, count: int, repeats: int = 3) -> float:
    """Items per second of ``load_run(run).predict`` on ``count`` items, batched: the best of ``repeats`` calls
    (the first call on many items is slower than the next ones, as a server's first requests are)."""
    from headstart import load_run

    predictor = load_run(run)
    chosen = [items[i % len(items)] for i in range(count)]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(chosen, batch_size=MAX_BATCH)
        best = min(best, time.perf_counter() - start)
    return count / best


def fresh_in_process(run: Path, items: list, work: Path) -> float:
    """``in_process`` in a fresh process (as the server is one), on the first ``REQUESTS[32]`` requests' items."""
    spec = work / "in-process.json"
    spec.write_text(json.dumps({"run": str(run), "items": items}), encoding="utf-8")
    code = ("import json, sys; from pathlib import Path; from bench.serve import in_process, REQUESTS; "
            "s = json.loads(Path(sys.argv[1]).read_text()); "
            "print(in_process(Path(s['run']), s['items'], REQUESTS[32]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, env=env,
                          cwd=HERE.parent, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def start_server(runs: dict[str, Path], port: int, log: Path, backend: str) -> subprocess.Popen:
    """`headstart serve --backend BACKEND` on ``port``, returned once /readyz says ready."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "headstart", "serve", *map(str, runs.values()), "--port",
                                 str(port), "--max-batch", str(MAX_BATCH), "--backend", backend,
                                 "--log-level", "warning"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError("the server was not ready within 5 minutes")


def load(port: int, model: str, inputs: list[str], clients: int, total: int) -> dict:
    """``total`` one-item requests from ``clients`` threads; items/s, latency percentiles (ms), failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    per_client = [total // clients + (1 if c < total % clients else 0) for c in range(clients)]

    def client(c: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        for n in range(per_client[c]):
            body = json.dumps({"inputs": [inputs[(c * 7919 + n) % len(inputs)]]})
            start = time.perf_counter()
            try:
                connection.request("POST", f"/v1/models/{model}/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                ok = response.status == 200 and len(json.loads(response.read())["predictions"]) == 1
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - start)
                failures[0] += not ok
        connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"clients": clients, "requests": total, "items_per_s": total / seconds, "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p99, "failed": failures[0]}


def rss_mb(proc: subprocess.Popen) -> float:
    """Resident memory of the server process (and any children), MB."""
    process = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2 ** 20


def settled_rss_mb(proc: subprocess.Popen) -> float:
    """``rss_mb`` once the server has been idle long enough to hand freed memory back (its worker does after a
    second without requests: headstart.serve.batching.IDLE_SECONDS)."""
    time.sleep(IDLE_SECONDS + 1)
    return rss_mb(proc)


def serve_section(work: Path) -> dict:
    """Every measurement of the table: per model, in-process items/s, and per backend the server at each
    concurrency, its memory and its exit status after SIGTERM."""
    runs = fit_runs(work)
    items = request_items(work)
    before = {name: fresh_in_process(run, items[name][0], work) for name, run in runs.items()}
    served = {backend: measure_server(runs, items, backend, work) for backend in BACKENDS}
    after = {name: fresh_in_process(run, items[name][0], work) for name, run in runs.items()}
    baseline = {name: max(before[name], after[name]) for name in runs}  # the better of the two: the load varies
    for backend in served.values():
        for name, measured in backend["rows"].items():
            for row in measured:
                row["over_in_process"] = row["items_per_s"] / baseline[name]
    return {"in_process_items_per_s": baseline, "in_process_before_after": {n: [before[n], after[n]] for n in runs},
            "backends": served, "cpus": os.cpu_count(), "max_batch": MAX_BATCH}


def measure_server(runs: dict[str, Path], items: dict, backend: str, work: Path) -> dict:
    """One server process with both runs: its rows at each concurrency, memory, exit status."""
    port = free_port()
    proc = start_server(runs, port, work / f"server-{backend}.log", backend)
    try:
        memory = {"after_warm_up_mb": settled_rss_mb(proc)}
        rows = {name: [load(port, name, items[name][1], c, REQUESTS[c]) for c in CONCURRENCY] for name in runs}
        memory["after_run_mb"] = settled_rss_mb(proc)
    finally:
        proc.terminate()
        code = proc.wait(120)
    memory["growth"] = memory["after_run_mb"] / memory["after_warm_up_mb"] - 1
    return {"rows": rows, "memory": memory, "exit_code": code}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def serve_lines(section: dict) -> list[str]:
    """The section as a markdown table."""
    lines = [f"## Serving: `headstart serve` over HTTP against in-process `predict` ({section['cpus']} CPUs, "
             f"--max-batch {section['max_batch']}, one item per request)", "",
             "| model | backend | clients | requests | items/s | / in-process | p50 ms | p95 ms | p99 ms | failed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    names = {"bbc": "MiniLM-L6, BBC News", "mnist": "MobileNetV2 @96, MNIST"}
    for name, label in names.items():
        lines.append(f"| {label} | in-process predict | - | - | {section['in_process_items_per_s'][name]:.1f} "
                     "| 1.00 | - | - | - | - |")
        for backend, served in section["backends"].items():
            for r in served["rows"][name]:
                lines.append(f"| {label} | {backend} | {r['clients']} | {r['requests']} | {r['items_per_s']:.1f} | "
                             f"{r['over_in_process']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                             f"{r['p99_ms']:.0f} | {r['failed']} |")
    lines.append("")
    runs = section["in_process_before_after"]
    lines.append("In-process items/s before and after the servers ran (the better is the baseline): "
                 + "; ".join(f"{names[n]}: {a:.1f}, {b:.1f}" for n, (a, b) in runs.items()) + ".")
    for backend, served in section["backends"].items():
        m = served["memory"]
        lines.append(f"Server memory (RSS, {backend}): {m['after_warm_up_mb']:.0f} MB after warm-up, "
                     f"{m['after_run_mb']:.0f} MB after the run ({m['growth']:+.1%}); exit status after SIGTERM: "
                     f"{served['exit_code']}.")
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="headstart-bench-serve-") as tmp:
        section = serve_section(Path(tmp))
    (HERE / "serve.json").write_text(json.dumps(section, indent=2) + "\n", encoding="utf-8")
    print("\n".join(serve_lines(section)))


if __name__ == "__main__":
    main()
