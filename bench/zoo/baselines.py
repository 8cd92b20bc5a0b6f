"""The zoo's hand-written yardsticks: what a practitioner would write without headstart.

* ``frozen_probe``: the backbone's features at its own input size (224 px for MobileNetV2, 128 tokens for MiniLM),
  standardised, then scikit-learn's ``LogisticRegressionCV`` (one-vs-rest for multi-label, threshold 0.5) or
  ``RidgeCV``; the strength cross-validated on the training set alone.
* ``logmel_probe`` (sounds): the mean and spread over time of a 64-band log-mel spectrogram and of its first
  difference, then the same logistic regression.
* ``hand_finetune``: a plain full fine-tune: the same backbone (images at the size headstart's rule chooses,
  as bench/recipes.py's hand loop: 224 px costs 3-5x more per epoch on this CPU), a fresh linear head, AdamW
  (backbone 1e-4 for images and sounds, 5e-5 for texts; head 1e-3; weight decay 0.01), cosine decay over every
  step, no warm-up, no augmentation, BatchNorm in train mode, a fixed number of epochs, scored once at the end.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.zoo.sets import Split, ZooSet

HAND_LR = {"image": 1e-4, "text": 5e-5, "audio": 1e-4}
HAND_BATCH = {"image": 32, "text": 16, "audio": 16}


def score(task: str, y_true, y_pred) -> float:
    """The task's main metric: accuracy, micro-F1 (label-indicator rows) or R²."""
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    if task == "regression":
        return float(r2_score(y_true, y_pred))
    if task == "multi-label":
        return float(f1_score(y_true, y_pred, average="micro", zero_division=0))
    return float(accuracy_score(y_true, y_pred))


def _targets(task: str, labels: list, classes: list):
    if task == "multi-label":
        return np.array([[c in set(row) for c in classes] for row in labels], dtype=np.float32)
    if task == "regression":
        return np.asarray(labels, dtype=np.float64)
    return np.array([classes.index(y) for y in labels])


def _classes(task: str, labels: list) -> list:
    if task == "multi-label":
        return sorted({c for row in labels for c in row})
    return sorted(set(labels)) if task == "single-label" else []


def sklearn_probe(task: str, x_train: np.ndarray, train: list, x_test: np.ndarray, test: list) -> float:
    """Standardised features, then the cross-validated linear model of the task; the test score."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = _classes(task, train)
    y_train, y_test = _targets(task, train, classes), _targets(task, test, classes)
    if task == "regression":
        model = RidgeCV(alphas=np.logspace(-2, 5, 15))
    else:
        folds = 3 if task == "multi-label" else min(5, int(np.bincount(y_train).min()))
        model = LogisticRegressionCV(Cs=10, cv=folds, max_iter=3000)
        model = OneVsRestClassifier(model) if task == "multi-label" else model
    model = make_pipeline(StandardScaler(), model).fit(x_train, y_train)
    return score(task, y_test, model.predict(x_test))


def _backbone(spec: ZooSet, items: list, rule_size: bool = False):
    """The set's backbone; audio clipped as headstart would; ``rule_size``: images at headstart's chosen size."""
    import headstart
    from headstart.data.resolution import choose_image_size

    backbone = headstart.load_backbone(spec.model)
    if rule_size and spec.modality == "image":
        native = int(np.median([min(x.shape[:2]) for x in items]))
        backbone.preprocessing = backbone.preprocessing.with_size(choose_image_size(native, 224))
    if spec.modality == "audio":
        from headstart.data.audio import choose_clip_seconds

        backbone.preprocessing = backbone.preprocessing.with_clip(choose_clip_seconds(items))
    return backbone


def _features(backbone, items: list, batch: int = 64) -> np.ndarray:
    collate = backbone.preprocessing.collate(augment=False)
    backbone.module.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(items), batch):
            inputs, _ = collate([(x, 0) for x in items[i:i + batch]])
            out.append(backbone.features(inputs).float().numpy())
    return np.concatenate(out)


def frozen_probe(spec: ZooSet, split: Split) -> dict:
    """Frozen features at the backbone's own input size + cross-validated logistic/ridge regression."""
    backbone = _backbone(spec, split.train[0])
    x_train, x_test = _features(backbone, split.train[0]), _features(backbone, split.test[0])
    return {"score": sklearn_probe(spec.task, x_train, split.train[1], x_test, split.test[1]),
            "image_size": getattr(backbone.preprocessing, "size", None)}


def logmel_stats(path: str, rate: int = 16000, n_fft: int = 512, hop: int = 160, bands: int = 64) -> np.ndarray:
    """Mean and standard deviation over time of a log-mel spectrogram and of its first difference."""
    import soundfile

    from headstart.backbones.families.sfx_cnn import htk_mel_filters

    wave, sr = soundfile.read(path, dtype="float32", always_2d=True)
    if sr != rate:
        raise ValueError(f"{path}: {sr} Hz, the log-mel baseline expects {rate}")
    spec = torch.stft(torch.from_numpy(wave.mean(axis=1)), n_fft, hop, window=torch.hann_window(n_fft),
                      return_complex=True).abs().pow(2).numpy()
    mel = np.log(htk_mel_filters(bands, rate, n_fft) @ spec + 1e-6)
    delta = np.diff(mel, axis=1)
    return np.concatenate([mel.mean(1), mel.std(1), delta.mean(1), delta.std(1)])


def logmel_probe(spec: ZooSet, split: Split) -> dict:
    """Log-mel statistics + cross-validated logistic regression (sounds only)."""
    x_train = np.stack([logmel_stats(p) for p in split.train[0]])
    x_test = np.stack([logmel_stats(p) for p in split.test[0]])
    return {"score": sklearn_probe(spec.task, x_train, split.train[1], x_test, split.test[1])}


def _loss(task: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "multi-label":
        return F.binary_cross_entropy_with_logits(logits, y)
    if task == "regression":
        return F.mse_loss(logits.squeeze(1), y)
    return F.cross_entropy(logits, y)


def hand_finetune(spec: ZooSet, split: Split, epochs: int = 3, seed: int = 0) -> dict:
    """A plain full fine-tune (see the module docstring); the test score after the last epoch."""
    from headstart.backbones import batch_to

    torch.manual_seed(seed)
    backbone = _backbone(spec, split.train[0], rule_size=True)
    classes = _classes(spec.task, split.train[1])
    y_train = _targets(spec.task, split.train[1], classes)
    mean, std = (float(y_train.mean()), float(y_train.std()) or 1.0) if spec.task == "regression" else (0.0, 1.0)
    y_train = torch.as_tensor(y_train) if spec.task == "single-label" else \
        torch.as_tensor((y_train - mean) / std, dtype=torch.float32)
    head = nn.Linear(backbone.feature_dim, len(classes) or 1)
    body = backbone.module.requires_grad_(True)
    image = spec.modality == "image"
    if image:
        body = body.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([{"params": body.parameters(), "lr": HAND_LR[spec.modality]},
                                   {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01)
    collate = backbone.preprocessing.collate(augment=False)
    batch = HAND_BATCH[spec.modality]
    steps = epochs * -(-len(y_train) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        body.train()
        for idx in torch.randperm(len(y_train), generator=generator).split(batch):
            inputs, _ = collate([(split.train[0][i], 0) for i in idx])
            loss = _loss(spec.task, head(backbone.features(batch_to(inputs, torch.device("cpu"), image))), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    body.eval()
    with torch.inference_mode():
        out = []
        for i in range(0, len(split.test[0]), 64):
            inputs, _ = collate([(x, 0) for x in split.test[0][i:i + 64]])
            out.append(head(backbone.features(batch_to(inputs, torch.device("cpu"), image))).float())
        logits = torch.cat(out).numpy()
    if spec.task == "regression":
        pred = logits[:, 0] * std + mean
    elif spec.task == "multi-label":
        pred = (logits > 0).astype(np.float32)
    else:
        pred = logits.argmax(1)
    return {"score": score(spec.task, _targets(spec.task, split.test[1], classes), pred), "epochs": epochs,
            "image_size": getattr(backbone.preprocessing, "size", None)}
