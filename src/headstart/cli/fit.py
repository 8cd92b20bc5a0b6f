"""`headstart fit`: adapt a model to a data set and save the run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from headstart.cli.options import (DATA_HELP, IMAGE_COL_HELP, LABEL_COL_HELP, LABEL_SEP_HELP, MAX_LENGTH_HELP,
                                   SELECT_METRIC_HELP, SHOTS_HELP, TASK_HELP, TEXT_COL_HELP, comma_list, config_option,
                                   number_list, strategy_option)
from headstart.cli.output import auto_lines, console, print_json, summary_table
from headstart.core.errors import ConfigError, Interrupted


NOT_FIT_OPTIONS = {"data", "model", "strategy", "out", "val", "test", "overwrite", "json_out", "quiet", "resume"}


def fit_cli(
    ctx: typer.Context,
    data: Optional[str] = typer.Argument(None, help=DATA_HELP),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Built-in name, timm name, HF id or local dir."),
    strategy: str = typer.Option("linear", "--strategy", "-s",
                                 help="linear | partial | full | lp-ft | lora | contrastive (text) | auto"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<model>-<strategy>-<time>]"),
    val: Optional[str] = typer.Option(None, help="Validation data; default: a stratified split of DATA."),
    test: Optional[str] = typer.Option(None, help="Test data, scored once at the end."),
    text_col: Optional[str] = typer.Option(None, help=TEXT_COL_HELP),
    label_col: Optional[str] = typer.Option(None, help=LABEL_COL_HELP),
    image_col: Optional[str] = typer.Option(None, help=IMAGE_COL_HELP),
    val_fraction: float = typer.Option(0.2, help="Share of DATA held out for validation when --val is not given."),
    test_fraction: float = typer.Option(0.0, help="Share of DATA held out as a test set when --test is not given."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable or invalid items and list them."),
    task: str = typer.Option("auto", help=TASK_HELP),
    label_sep: Optional[str] = typer.Option(None, help=LABEL_SEP_HELP),
    seed: int = typer.Option(0, help="Seed of the split, the head and the training order."),
    shots: Optional[int] = typer.Option(None, help=SHOTS_HELP),
    budget: Optional[str] = typer.Option(None, help="--strategy auto: time for the recommended fine-tuning, e.g. 15m."),
    unlabelled: Optional[str] = typer.Option(None, "--unlabelled", help="--strategy linear: a folder or table of "
                                             "unlabelled items to learn from (label spreading on the features; "
                                             "kept only if it validates at least as well)."),
    unfreeze: Optional[int] = strategy_option("unfreeze"),
    lr: Optional[float] = strategy_option("lr"),
    head_lr: Optional[float] = strategy_option("head_lr"),
    lr_decay: Optional[float] = strategy_option("lr_decay"),
    rank: Optional[int] = strategy_option("rank"),
    alpha: Optional[float] = strategy_option("alpha"),
    dropout: Optional[float] = strategy_option("dropout"),
    target_modules: Optional[str] = strategy_option("target_modules"),
    cs: Optional[str] = strategy_option("cs"),
    steps: Optional[int] = strategy_option("steps"),
    epochs: int = typer.Option(10, help="Most epochs of fine-tuning (early stopping may end sooner)."),
    batch_size: int = typer.Option(32, help="Fine-tuning batch size."),
    patience: int = typer.Option(3, help="Epochs without validation improvement before stopping."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Light augmentation when "
                                           "fine-tuning (images: crops, flips; sound: time shift, gain, noise, "
                                           "time/frequency masks) [default: on; off for aisfx-cnn]."),
    hflip: bool = typer.Option(True, "--hflip/--no-hflip", help="Random horizontal flips (turn off for digits, text)."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay of the fine-tuned weights."),
    warmup: float = typer.Option(0.1, help="Share of the fine-tuning steps spent warming the learning rate up."),
    l2sp: float = typer.Option(0.0, "--l2sp", help="L2-SP weight: pull fine-tuned backbone weights toward the "
                               "pretrained ones (instead of their weight decay); 0 = off."),
    cache_boundary: Optional[bool] = typer.Option(
        None, "--cache-boundary/--no-cache-boundary", help="partial without augmentation: run the frozen groups "
        "once and train on their cached output (memory-mapped float16) [default: on CPUs]."),
    bn: str = typer.Option("auto", "--bn", help="BatchNorm statistics while fine-tuning: frozen | train | auto "
                           "(frozen below 5,000 training items or batches of 16)."),
    balance: str = typer.Option("auto", help="Class imbalance: none | weights | sampler | auto (class weights when "
                                "the largest class has over 3x the smallest's examples)."),
    select_metric: str = typer.Option("auto", help=SELECT_METRIC_HELP),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Temperature scaling fitted on "
                                   "validation: the probabilities of predict and exports (ECE in metrics.json)."),
    label_smoothing: float = typer.Option(0.0, help="Label smoothing of the fine-tuning loss (0 = off)."),
    regression_loss: str = typer.Option("mse", help="Fine-tuning a regression: mse | huber (Huber at one standard "
                                        "deviation of the target: a few wild targets pull less)."),
    find_lr: bool = typer.Option(False, "--find-lr", help="Fine-tuning: pick the learning rates with a short "
                                 "range test (the defaults scaled together; recorded in config.json)."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels [default: from the images' own size, "
                                             "at most the weights' size]."),
    max_length: Optional[int] = typer.Option(None, help=MAX_LENGTH_HELP),
    clip_seconds: Optional[float] = typer.Option(
        None, help="Audio: clip length in seconds [default: from the data's durations]."),
    weights: Optional[str] = typer.Option(None, help="Checkpoint file for the architecture named by --model."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 (auto: bf16 where the hardware has it)."),
    num_workers: Optional[int] = typer.Option(None, help="DataLoader worker processes [default: by device and cores]."),
    cache_dir: Optional[str] = typer.Option(None, help="Feature cache [default: ~/.cache/headstart]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run at --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; warnings still print."),
    track: Optional[str] = typer.Option(None, "--track", metavar="TRACKERS", help="Log the config, every epoch, "
                                        "the final metrics and report.html to tensorboard and/or mlflow "
                                        "(comma-separated; offline; pip install 'headstart[track]')."),
    track_dir: Optional[str] = typer.Option(None, "--track-dir", metavar="DIR", help="TensorBoard's log folder and "
                                            "MLflow's SQLite store [default: OUT/tensorboard/TIME; "
                                            "MLFLOW_TRACKING_URI or ./mlflow.db]."),
    config: Optional[str] = config_option(),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a stopped (killed, crashed) fit "
                                          "from its run directory's last saved epoch; needs no other options."),
) -> None:
    """Fit MODEL to DATA with STRATEGY and save the run.

    Example: headstart fit data/pets --model mobilenetv2 --strategy partial --out runs/pets

    Fine-tuning saves its state in OUT/checkpoints after every epoch; after a crash,
    `headstart fit --resume OUT` continues it and ends as the uninterrupted run would.
    """
    started = time.time()
    try:
        from headstart.training import distributed  # lazy: `--help` need not load torch (start-up time)
        from headstart.api import fit
    except KeyboardInterrupt:
        raise Interrupted("stopped while headstart was starting (loading its libraries), before it read the data; "
                          "nothing was written.") from None

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
            options = {k: v for k, v in ctx.params.items() if k not in NOT_FIT_OPTIONS}
            options.update(target_modules=comma_list(target_modules), cs=number_list(cs, "--cs"))
            result = fit(data, model, strategy, val=val, test=test, out=out, overwrite=overwrite, progress=not quiet,
                         **options)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_note(out, started)) from None
    if distributed.is_main():  # under a multi-process launch, one summary
        _show(result, data, json_out)


def interrupted_note(out: Path, started: float) -> str:
    """What a fit stopped after ``started`` (a time.time()) left in ``out``, and how to go on."""
    from headstart.training import checkpoints  # lazy: `--help` need not load torch (start-up time)

    if checkpoints.is_unfinished(out) and checkpoints.saved_epoch(out) > 0:
        return (f"epoch {checkpoints.saved_epoch(out)} is saved in {out}; continue with "
                f"`headstart fit --resume {out}`.")
    if _saved_since(out, started):
        return f"stopped after the run was saved: {out} holds it, complete (report.html included)."
    return (f"stopped before any epoch was saved; {out} was left as it was before. Features computed so far "
            "stay in the feature cache, so running the command again starts from them.")


def _saved_since(out: Path, started: float) -> bool:
    """Whether ``out`` holds a finished run saved after ``started`` (the run folder is renamed in whole)."""
    try:
        return (out / "report.html").is_file() and (out / "metrics.json").stat().st_mtime >= started
    except OSError:
        return False


def _show(result, data, json_out: bool) -> None:
    if json_out:  # the misclassified items' previews (thumbnails, tens of kB) are for the report
        metrics = {k: v for k, v in result.metrics.items() if k != "misclassified"}
        print_json({"run": str(result.run_dir), "metrics": metrics, "info": result.info,
                    "skipped": [s.__dict__ for s in result.skipped]})
        return
    for s in result.skipped:
        console.print(f"[yellow]skipped[/] {s.origin}: {s.reason}", highlight=False)
    for line in auto_lines(result.info):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(summary_table([{"strategy": result.strategy, "metrics": result.metrics}],
                                f"{result.model} on {data or ((result.data or {}).get('train') or {}).get('path')}"))
    console.print(f"Saved to [bold]{result.run_dir}[/]. Next: headstart predict {result.run_dir} INPUTS",
                  highlight=False)
