"""What ``fit --unlabelled`` did, in words: the report's note and the terminal's (headstart.strategies.spread)."""

from __future__ import annotations


def pool_sentence(record: dict) -> str:
    """What the pool did (``probe_with_pool``'s record), in words, for the terminal and the report."""
    key = record["metric"]
    verdict = ("helped or tied on validation: kept" if record["kept"]
               else "did not help on validation: the labelled-only probe was kept")
    return (f"--unlabelled: {record['spread_labels']} of {record['pool']} pool items got spread labels; "
            f"{key.removeprefix('val_')} on validation {record[f'{key}_with_pool']:.3f} with them, "
            f"{record[f'{key}_without_pool']:.3f} without: the pool {verdict}.")
