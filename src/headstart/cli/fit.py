"""`headstart fit`: adapt a model to a data set and save the run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from headstart import checkpoints, distributed
from headstart.api import fit
from headstart.cli.output import console, print_json, summary_table
from headstart.errors import ConfigError, Interrupted


def fit_cli(
    ctx: typer.Context,
    data: Optional[str] = typer.Argument(None, help="Image folder (root/<class>/*), or a CSV/TSV/JSONL/Parquet table."),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Built-in name, timm name, HF id or local dir."),
    strategy: str = typer.Option("linear", "--strategy", "-s",
                                 help="linear | partial | full | lp-ft | lora | contrastive (text) | auto"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<model>-<strategy>-<time>]"),
    val: Optional[str] = typer.Option(None, help="Validation data; default: a stratified split of DATA."),
    test: Optional[str] = typer.Option(None, help="Test data, scored once at the end."),
    text_col: Optional[str] = typer.Option(None, help="Table column with the texts."),
    label_col: Optional[str] = typer.Option(None, help="Table column with the labels."),
    image_col: Optional[str] = typer.Option(None, help="Table column with image paths (relative to the table)."),
    val_fraction: float = typer.Option(0.2, help="Share of DATA held out for validation when --val is not given."),
    test_fraction: float = typer.Option(0.0, help="Share of DATA held out as a test set when --test is not given."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable or invalid items and list them."),
    seed: int = typer.Option(0, help="Seed of the split, the head and the training order."),
    shots: Optional[int] = typer.Option(None, help="Few-shot: keep this many training examples per class."),
    budget: Optional[str] = typer.Option(None, help="--strategy auto: time for the recommended fine-tuning, e.g. 15m."),
    unfreeze: Optional[int] = typer.Option(None, help="partial / lp-ft: train the last N layer groups."),
    lr: Optional[float] = typer.Option(None, help="Learning rate of the top layer group."),
    head_lr: Optional[float] = typer.Option(None, help="Learning rate of the head."),
    lr_decay: Optional[float] = typer.Option(None, help="Layer-wise decay: each lower group gets lr * decay."),
    rank: Optional[int] = typer.Option(None, help="lora: adapter rank [default: 8]."),
    alpha: Optional[int] = typer.Option(None, help="lora: adapter scaling alpha [default: 16]."),
    epochs: int = typer.Option(10, help="Most epochs of fine-tuning (early stopping may end sooner)."),
    batch_size: int = typer.Option(32, help="Fine-tuning batch size."),
    patience: int = typer.Option(3, help="Epochs without validation improvement before stopping."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Light augmentation when fine-tuning "
                                 "(images: crops, flips; sound: time shift, gain, noise, time/frequency masks)."),
    hflip: bool = typer.Option(True, "--hflip/--no-hflip", help="Random horizontal flips (turn off for digits, text)."),
    l2sp: float = typer.Option(0.0, "--l2sp", help="L2-SP weight: pull fine-tuned backbone weights toward the "
                               "pretrained ones (instead of their weight decay); 0 = off."),
    cache_boundary: Optional[bool] = typer.Option(
        None, "--cache-boundary/--no-cache-boundary", help="partial without augmentation: run the frozen groups "
        "once and train on their cached output (memory-mapped float16) [default: on CPUs]."),
    bn: str = typer.Option("auto", "--bn", help="BatchNorm statistics while fine-tuning: frozen | train | auto "
                           "(frozen below 5,000 training items or batches of 16)."),
    label_smoothing: float = typer.Option(0.0, help="Label smoothing of the fine-tuning loss (0 = off)."),
    find_lr: bool = typer.Option(False, "--find-lr", help="Fine-tuning: pick the learning rates with a short "
                                 "range test (the defaults scaled together; recorded in config.json)."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels [default: from the images' own size, "
                                             "at most the weights' size]."),
    max_length: Optional[int] = typer.Option(None, help="Text: tokens kept per item [default: 128]."),
    clip_seconds: Optional[float] = typer.Option(
        None, help="Audio: clip length in seconds [default: from the data's durations]."),
    weights: Optional[str] = typer.Option(None, help="Checkpoint file for the architecture named by --model."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 (auto: bf16 where the hardware has it)."),
    num_workers: Optional[int] = typer.Option(None, help="DataLoader worker processes [default: by device and cores]."),
    cache_dir: Optional[str] = typer.Option(None, help="Feature cache [default: ~/.cache/headstart]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run at --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a stopped (killed, crashed) fit "
                                          "from its run directory's last saved epoch; needs no other options."),
) -> None:
    """Fit MODEL to DATA with STRATEGY and save the run.

    Example: headstart fit data/pets --model mobilenetv2 --strategy partial --out runs/pets

    Fine-tuning saves its state in OUT/checkpoints after every epoch; after a crash,
    `headstart fit --resume OUT` continues it and ends as the uninterrupted run would.
    """
    if resume is not None:
        given = {name for name in ctx.params  # typer vendors click: compare the source's name, not its class
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}
        extra = [f"--{name.replace('_', '-')}" for name in ctx.params
                 if name in given and name not in ("resume", "data", "quiet", "json_out")]
        if extra:
            raise ConfigError(f"--resume takes the run's own options from {resume}/checkpoints/config.json; "
                              f"drop {', '.join(extra)} (start a new run to change them).")
        out = resume
    elif data is None:
        raise ConfigError("Missing DATA: give an image folder or a table file (or --resume RUN).")
    else:
        out = out or Path("runs") / f"{Path(model).name}-{strategy}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        if resume is not None:
            result = fit(data, resume=resume, progress=not quiet)
        else:
            result = fit(data, model, strategy, val=val, test=test, out=out, overwrite=overwrite, progress=not quiet,
                         text_col=text_col, label_col=label_col, image_col=image_col, val_fraction=val_fraction,
                         test_fraction=test_fraction, skip_bad=skip_bad, seed=seed, unfreeze=unfreeze, lr=lr,
                         head_lr=head_lr, lr_decay=lr_decay, rank=rank, alpha=alpha, shots=shots, budget=budget,
                         epochs=epochs, batch_size=batch_size, patience=patience, augment=augment, hflip=hflip,
                         image_size=image_size, max_length=max_length, weights=weights, device=device,
                         clip_seconds=clip_seconds,
                         precision=precision, num_workers=num_workers, cache_dir=cache_dir, l2sp=l2sp,
                         cache_boundary=cache_boundary, bn=bn, label_smoothing=label_smoothing,
                         find_lr=find_lr)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_note(out)) from None
    if distributed.is_main():  # under a multi-process launch, one summary
        _show(result, data, json_out)


def interrupted_note(out: Path) -> str:
    """What a stopped fit left in ``out``, and how to go on."""
    if checkpoints.is_unfinished(out) and checkpoints.saved_epoch(out) > 0:
        return (f"epoch {checkpoints.saved_epoch(out)} is saved in {out}; continue with "
                f"`headstart fit --resume {out}`.")
    return (f"stopped before any epoch was saved; {out} was left as it was before. Features computed so far "
            "stay in the feature cache, so running the command again starts from them.")


def _show(result, data, json_out: bool) -> None:
    if json_out:
        print_json({"run": str(result.run_dir), "metrics": result.metrics, "info": result.info,
                    "skipped": [s.__dict__ for s in result.skipped]})
        return
    for s in result.skipped:
        console.print(f"[yellow]skipped[/] {s.origin}: {s.reason}", highlight=False)
    console.print(summary_table([{"strategy": result.strategy, "metrics": result.metrics}],
                                f"{result.model} on {data or ((result.data or {}).get('train') or {}).get('path')}"))
    console.print(f"Saved to [bold]{result.run_dir}[/]. Next: headstart predict {result.run_dir} INPUTS",
                  highlight=False)
