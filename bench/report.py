"""bench/RESULTS.md from the benchmark's results: machine, versions, one table per question, the targets."""

from __future__ import annotations

from pathlib import Path


def _f(value, spec: str = ".1f", missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _get(row: dict, *keys):
    for key in keys:
        if not isinstance(row, dict) or key not in row or (isinstance(row, dict) and "error" in row):
            return None
        row = row[key]
    return row


def _ratio(a, b):
    return a / b if a is not None and b else None


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def transfer_rows(section: dict, targets: list) -> list[list[str]]:
    rows = []
    for label, r in section.items():
        bare, mix, lin, usual = r["bare"], r["interleaved"], r["linear"], r["usual"]
        ext_ratio, lin_ratio = _get(mix, "extract_over_bare"), _get(mix, "linear_over_bare")
        usual_ratio = _ratio(_get(usual, "seconds"), _get(lin, "seconds"))
        acc = _get(lin, "accuracy")
        acc32 = _get(r["linear_fp32"], "accuracy")
        targets.append((f"{label}: extraction / bare forward", ext_ratio, ">= 0.90", ext_ratio and ext_ratio >= 0.9))
        targets.append((f"{label}: linear end to end / bare forward", lin_ratio, "<= 1.25",
                        lin_ratio and lin_ratio <= 1.25))
        if acc is not None and acc32 is not None:
            targets.append((f"{label}: bf16 - fp32 linear test accuracy (points)", 100 * (acc - acc32),
                            "within 0.5", abs(acc - acc32) <= 0.005))
        rows.append([
            label, _f(_get(bare, "items"), "d"),
            f"{_f(_get(bare, 'items_per_s'))} (bs {_get(bare, 'batch_size')}, {_get(bare, 'precision')})",
            " / ".join(_f(_get(mix, "seconds", k), ".1f") for k in ("bare", "extract", "linear")),
            _f(ext_ratio, ".2f"), _f(lin_ratio, ".2f"),
            _f(_get(lin, "seconds")), _f(_get(usual, "seconds")), _f(usual_ratio, ".1f"),
            _f(acc, ".3f"), _f(acc32, ".3f"), _f(_get(usual, "accuracy"), ".3f"),
            " / ".join(_f(_get(x, "peak_rss_mb"), ".0f") for x in (bare, lin, usual)),
        ])
    return rows


def finetune_rows(section: dict, targets: list) -> tuple[list[list[str]], list[list[str]]]:
    steps, partial = [], []
    for label, r in section.items():
        n = _get(r["hand_full"], "train_items")
        hs = _ratio(n, (_get(r["headstart_full"], "epoch_seconds") or [None, None])[-1])
        hand = _ratio(n, (_get(r["hand_full"], "epoch_seconds") or [None, None])[-1])
        ratio = _ratio(hs, hand)
        targets.append((f"{label}: fine-tuning throughput, headstart / hand-written", ratio, ">= 0.90",
                        ratio and ratio >= 0.9))
        steps.append([label, str(_get(r["hand_full"], "precision")), _f(n, "d"), _f(hs), _f(hand), _f(ratio, ".2f"),
                      " / ".join(_f(_get(r[k], "peak_rss_mb"), ".0f") for k in ("headstart_full", "hand_full"))])
        fast, slow = r["partial_cached"], r["partial_recompute"]
        speed = _ratio(_get(slow, "seconds"), _get(fast, "seconds"))
        targets.append((f"{label}: partial (last 2 groups), cached / recomputed speed-up", speed, ">= 3",
                        speed and speed >= 3))
        partial.append([label, _f(_get(fast, "seconds")), _f(_get(slow, "seconds")), _f(speed, ".2f"),
                        _f(_get(fast, "accuracy"), ".3f"), _f(_get(slow, "accuracy"), ".3f"),
                        str(_get(fast, "info", "boundary_cached")),
                        " / ".join(_f(_get(x, "peak_rss_mb"), ".0f") for x in (fast, slow))])
    return steps, partial


def peer_rows(section: dict) -> list[list[str]]:
    rows = []
    for label, r in section.items():
        for tool, res in r.items():
            name = tool if tool in ("fastai", "trainer") else f"headstart {tool}"
            rows.append([label, name, _f(_get(res, "seconds")), _f(_get(res, "accuracy"), ".3f"),
                         _f(_get(res, "val_accuracy"), ".3f"), _f(_get(res, "peak_rss_mb"), ".0f"),
                         res.get("error", "") if isinstance(res, dict) else ""])
    return rows


def write_results(results: dict, path: Path) -> None:
    env = results["environment"]
    targets: list = []
    lines = ["# headstart benchmark", "",
             f"`python -m bench` on {env['date']}, commit {env['commit']}, {results['seconds'] / 60:.1f} min in all.",
             f"Machine: {env['cpu']}, {env['cores']} cores, torch threads {env['torch_threads']}, GPU {env['gpu']}; "
             f"Python {env['python']}, " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
             "Every figure comes from a fresh process; library imports happen before any clock starts (peak RSS "
             "includes them). "
             "This machine is shared: ratios measured minutes apart carry its noise.", ""]
    if results.get("reused"):
        r = results["reused"]
        lines += [f"Sections {', '.join(r['sections'])} come from the run of {r['date']} (commit {r['commit']}); "
                  "the others from this one.", ""]
    if "transfer" in results:
        lines += ["## Transfer learning: `linear` against the bare forward pass and the usual loop", "",
                  "(a) bare `torch.inference_mode()` forward over every item, preprocessed beforehand, best batch "
                  "size; (b) `headstart.fit(..., 'linear')` end to end with a cold cache (load, decode, extract, "
                  "cache, head fit, evaluate); (c) a frozen backbone run on every batch of 10 epochs, AdamW head. "
                  "The ratios come from one process that alternates (a), headstart's extraction alone and (b) three "
                  "times: each ratio within one round, the median round reported (interleaved seconds are medians); "
                  "the other columns from a process of their own.", ""]
        lines += _table(["workload", "items", "(a) bare items/s", "interleaved s: (a) / extraction / (b)",
                         "extraction speed / (a)", "(b) / (a) time", "(b) alone s", "(c) usual loop s",
                         "(c) / (b)", "linear acc (bf16)",
                         "linear acc (fp32)", "usual acc", "peak RSS MB a / b / c"],
                        transfer_rows(results["transfer"], targets)) + [""]
    if "finetune" in results:
        steps, partial = finetune_rows(results["finetune"], targets)
        lines += ["## Fine-tuning step throughput: headstart against a hand-written loop", "",
                  "Whole model trainable, no augmentation, batch 32; items/s of the second epoch (train + "
                  "validation pass), same dtype and layout.", ""]
        lines += _table(["workload", "precision", "train items", "headstart items/s", "hand-written items/s",
                         "ratio", "peak RSS MB hs / hand"], steps) + [""]
        lines += [f"## Partial fine-tuning (last 2 groups, {results['partial_epochs']} epochs): boundary cache against "
                  "recomputing", ""]
        lines += _table(["workload", "cached s", "recomputed s", "speed-up", "cached test acc", "recomputed test acc",
                         "cache used", "peak RSS MB cached / recomputed"], partial) + [""]
    if "peers" in results:
        lines += [f"## Peers, same split, {results['epochs']} epochs", "",
                  "fastai: `vision_learner(dls, mobilenet_v2).fine_tune(epochs - 1, freeze_epochs=1)` with the same "
                  "packaged weights; Trainer: `AutoModelForSequenceClassification` from the same MiniLM-L6.", ""]
        lines += _table(["workload", "tool", "seconds", "test acc", "val acc", "peak RSS MB", "error"],
                        peer_rows(results["peers"])) + [""]
    if "memory" in results:
        lines += ["## Memory: `linear` on 10x more data (MNIST @96)", ""]
        lines += _table(["images", "seconds", "test acc", "peak RSS MB"],
                        [[str(n), _f(_get(r, "seconds")), _f(_get(r, "accuracy"), ".3f"),
                          _f(_get(r, "peak_rss_mb"), ".0f")] for n, r in results["memory"].items()]) + [""]
    lines += ["## Targets", ""]
    lines += _table(["what", "measured", "target", "met"],
                    [[what, _f(value, ".2f"), goal, "yes" if ok else "NO"] for what, value, goal, ok in targets])
    notes = path.parent / "NOTES.md"  # the analysis of the gaps, kept by hand (bench/profile_partial.py etc.)
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    path.write_text("\n".join(lines) + "\n")
