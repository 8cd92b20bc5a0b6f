"""Start-up time of the command line, as whole processes, against the floor ``python -c "import torch"``.

Issue 13's target: a one-line ``headstart predict RUN -`` and a cached ``linear`` refit within 1.5x of the
floor (they need torch; ``--help`` and ``models`` need not wait for it). Each command runs ``REPEATS`` times
in a fresh process; the median wall time is reported, and the median CPU time (user + system) beside it: on a
machine shared with other jobs the CPU time moves less than the wall time. Alone: ``python -m bench.startup`` prints the table.
"""

from __future__ import annotations

import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 3
TARGET = 1.5  # predict and refit against the floor
PER_CLASS = 20  # BBC News texts per topic in the saved run


def wall(cmd: list[str], stdin: str | None = None, cwd: Path | None = None) -> float:
    """Seconds one process takes from start to exit; an error if it fails."""
    return timed(cmd, stdin, cwd)[0]


def timed(cmd: list[str], stdin: str | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one process from start to exit; an error if it fails."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def small_bbc_csv(dest: Path) -> Path:
    """The first ``PER_CLASS`` BBC News articles of each topic as a text,label CSV."""
    from headstart.data import bbc_news_folder

    with open(dest, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        for topic in sorted(p for p in bbc_news_folder().iterdir() if p.is_dir()):
            for path in sorted(topic.glob("*.txt"))[:PER_CLASS]:
                writer.writerow([path.read_text(encoding="latin-1").strip(), topic.name])
    return dest


def startup_section(work: Path) -> dict:
    """Median seconds of each command and of the floor, and their ratio to it (MiniLM-L6 on BBC News)."""
    work.mkdir(parents=True, exist_ok=True)
    data = small_bbc_csv(work / "bbc-small.csv")
    run, cache = work / "startup-run", work / "startup-cache"
    hs = [sys.executable, "-m", "headstart"]
    refit = [*hs, "fit", str(data), "--model", "minilm-l6", "--strategy", "linear", "--out", str(run),
             "--overwrite", "--quiet", "--cache-dir", str(cache)]
    wall(refit)  # fills the feature cache and saves the run that predict reads
    commands = {
        "python -c 'import torch' (floor)": ([sys.executable, "-c", "import torch"], None),
        "headstart --help": ([*hs, "--help"], None),
        "headstart fit --help": ([*hs, "fit", "--help"], None),
        "headstart models": ([*hs, "models"], None),
        "headstart predict RUN - (one line)": ([*hs, "predict", str(run), "-"], "The striker scored twice\n"),
        "headstart fit ... linear (cached refit)": (refit, None),
    }
    rows = {}
    for label, (cmd, stdin) in commands.items():
        times = [timed(cmd, stdin, work) for _ in range(REPEATS)]
        rows[label] = {"seconds": statistics.median(t[0] for t in times), "all": [t[0] for t in times],
                       "cpu_seconds": statistics.median(t[1] for t in times)}
    floor = next(iter(rows.values()))
    for row in rows.values():
        row["over_floor"] = row["seconds"] / floor["seconds"]
        row["cpu_over_floor"] = row["cpu_seconds"] / floor["cpu_seconds"]
    return {"repeats": REPEATS, "rows": rows}


def startup_lines(section: dict, targets: list) -> list[str]:
    """The start-up section of RESULTS.md; predict and refit join the targets."""
    lines = ["## Start-up: whole processes against `python -c \"import torch\"`", "",
             f"Median wall time of {section['repeats']} fresh processes each (MiniLM-L6, linear, "
             f"{PER_CLASS} BBC News texts a topic; the refit finds its features cached).", "",
             "| command | seconds | / floor | CPU seconds | CPU / floor |", "|---|---|---|---|---|"]
    for label, row in section["rows"].items():
        cpu = f"{row['cpu_seconds']:.2f} | {row['cpu_over_floor']:.2f}" if "cpu_seconds" in row else "- | -"
        lines.append(f"| {label} | {row['seconds']:.2f} | {row['over_floor']:.2f} | {cpu} |")
        if "predict" in label or "refit" in label:
            targets.append((f"start-up: {label} / import torch", row["over_floor"], f"<= {TARGET}",
                            row["over_floor"] <= TARGET))
    return lines + [""]


if __name__ == "__main__":
    section = startup_section(Path(tempfile.gettempdir()) / "headstart-bench")
    print("\n".join(startup_lines(section, [])))
