"""`headstart cache`: where cached features live, how big they are, and clearing them."""

from __future__ import annotations

from typing import Optional

import typer

from headstart.cli.output import console


def cache_cli(
    clear: bool = typer.Option(False, "--clear", help="Delete the cached feature files (the cache's own shards; "
                               "nothing else in the folder)."),
    cache_dir: Optional[str] = typer.Option(None, help="Feature cache [default: ~/.cache/headstart]."),
) -> None:
    """Show the feature cache's location and size, or clear it.

    Example: headstart cache --clear
    """
    from headstart.features.cache import FeatureCache  # lazy: `--help` need not load torch (start-up time)

    cache = FeatureCache(cache_dir)
    if clear:
        done = cache.clear()
        console.print(f"Removed {_files(done.removed)} of cached features from {cache.root}.", highlight=False)
        if done.kept:
            names = ", ".join(str(p.relative_to(cache.root)) for p in done.kept[:5])
            more = f" and {len(done.kept) - 5} more" if len(done.kept) > 5 else ""
            console.print(f"Left {_files(len(done.kept))} the cache did not write: {names}{more}. headstart deletes "
                          "only its own feature shards; move or delete these yourself.", highlight=False,
                          soft_wrap=True)
        return
    files = cache.shards()
    size = sum(f.stat().st_size for f in files)
    keys = {f.parent.name for f in files}
    console.print(f"{cache.root}: {len(keys)} backbone settings, {len(files)} shards, {size / 2**20:.1f} MB",
                  highlight=False)


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"
