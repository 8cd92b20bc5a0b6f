"""`headstart cache`: where cached features live, how big they are, and clearing them."""

from __future__ import annotations

from typing import Optional

import typer

from headstart.cli.output import console


def cache_cli(
    clear: bool = typer.Option(False, "--clear", help="Delete every cached feature file."),
    cache_dir: Optional[str] = typer.Option(None, help="Feature cache [default: ~/.cache/headstart]."),
) -> None:
    """Show the feature cache's location and size, or clear it.

    Example: headstart cache --clear
    """
    from headstart.features import FeatureCache  # lazy: `--help` need not load torch (start-up time)

    cache = FeatureCache(cache_dir)
    if clear:
        console.print(f"Removed {cache.clear()} files from {cache.root}.", highlight=False)
        return
    files = [f for f in (cache.root / "features").rglob("*.safetensors")]
    size = sum(f.stat().st_size for f in files)
    keys = {f.parent.name for f in files}
    console.print(f"{cache.root}: {len(keys)} backbone settings, {len(files)} shards, {size / 2**20:.1f} MB",
                  highlight=False)
