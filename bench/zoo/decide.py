"""Decide a default on the zoo: two cells compared set by set, by the issue's rule.

    python -m bench.zoo.decide linear linear@224     # old default, candidate

A candidate is adopted when it wins on aggregate (mean test score over the sets that have both cells) and
loses by more than 1 point on no set. Leave-one-set-out: for each set, the choice that the other sets'
mean makes, and what it scores on the held-out set.
"""

from __future__ import annotations

import sys

from bench.zoo.run import RESULTS, merged


def compare(cells: dict, old: str, new: str) -> list[tuple[str, float, float, float | None, float | None]]:
    """Per set with both cells finished: (set, old test, new test, old val, new val)."""
    rows = []
    for key, got in sorted(cells.items()):
        name, _, cell = key.partition("/")
        other = cells.get(f"{name}/{new}")
        if cell == old and "score" in got and other and "score" in other:
            rows.append((name, got["score"], other["score"], got.get("val_score"), other.get("val_score")))
    return rows


def report(rows: list, old: str, new: str) -> str:
    """The decision in words and numbers (points are hundredths of the set's main metric)."""
    if not rows:
        return f"no set has both {old} and {new} finished"
    lines = [f"| set | {old} | {new} | difference (points) | val {old} | val {new} |", "|---|---|---|---|---|---|"]
    for name, a, b, va, vb in rows:
        val = " | ".join("-" if v is None else f"{v:.3f}" for v in (va, vb))
        lines.append(f"| {name} | {a:.3f} | {b:.3f} | {100 * (b - a):+.1f} | {val} |")
    diffs = [100 * (b - a) for _, a, b, _, _ in rows]
    mean = sum(diffs) / len(diffs)
    loso = []
    for i, (name, a, b, _, _) in enumerate(rows):
        rest = diffs[:i] + diffs[i + 1:]
        pick_new = bool(rest) and sum(rest) / len(rest) > 0
        loso.append(100 * ((b if pick_new else a) - max(a, b)))
    adopt = mean > 0 and min(diffs) >= -1.0
    lines += ["", f"mean difference {mean:+.2f} points over {len(rows)} sets; worst set {min(diffs):+.1f}; "
              f"leave-one-set-out regret (points lost on the held-out set against its better choice): "
              f"mean {sum(loso) / len(loso):.2f}, worst {min(loso):.1f}",
              f"rule (wins on aggregate, loses > 1 point on no set): {'adopt' if adopt else 'keep'} {new if adopt else old}"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    old, new = argv
    print(report(compare(merged(RESULTS.parent)["cells"], old, new), old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
