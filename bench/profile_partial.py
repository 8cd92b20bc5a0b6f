"""Where a partial fine-tuning step's time goes (MiniLM-L6, last 2 of 6 blocks, batch 32 x 128 tokens, bf16).

    python -m bench.profile_partial

Prints, per batch: the frozen part's forward (embeddings and 4 blocks, inference mode: what the boundary
cache saves), the top's forward and training step with and without dropout, the recomputing step, and
torch.profiler's top operators of one top training step. The boundary cache can at best turn a
recomputing step into a top step, so their ratio bounds its speed-up per epoch.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from headstart.backbones import load_backbone
from headstart.training.boundary import split_at
from headstart.data import bbc_news_folder
from headstart.training.engine import freeze, set_train_mode
from headstart.training.heads import Classifier

BATCHES, BATCH = 6, 32


def _mean_ms(fn, inputs: list) -> float:
    fn(inputs[0])  # warm-up
    start = time.perf_counter()
    for x in inputs:
        fn(x)
    return (time.perf_counter() - start) / len(inputs) * 1e3


def main() -> None:
    texts = [p.read_text(encoding="latin-1") for p in sorted(bbc_news_folder().glob("*/*.txt"))[:BATCH * BATCHES]]
    backbone = load_backbone("minilm-l6")
    model = Classifier(copy.deepcopy(backbone.module), torch.nn.Linear(backbone.feature_dim, 5))
    groups = backbone.layer_groups()
    freeze(model, {f"backbone.{n}" for g in groups[-2:] for n in g} | {"head.weight", "head.bias"})
    split = split_at(backbone, model.backbone, 2)
    top = Classifier(split.top, model.head)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collate = backbone.preprocessing.collate()
    batches = [collate([(t, 0) for t in texts[i:i + BATCH]])[0] for i in range(0, len(texts), BATCH)]
    y = torch.randint(0, 5, (BATCH,))
    set_train_mode(model)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        acts = [{"hidden": split.frozen_part(b).float(), "attention_mask": b["attention_mask"]} for b in batches]

    def frozen(b):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            split.frozen_part(b)

    def forward(m, x):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            m(x)

    def step(m, x):
        with torch.autocast("cpu", torch.bfloat16):
            loss = F.cross_entropy(m(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rows = {"frozen part forward (embeddings + 4 blocks)": _mean_ms(frozen, batches),
            "top forward (2 blocks, dropout on)": _mean_ms(lambda x: forward(top, x), acts),
            "top training step (dropout on)": _mean_ms(lambda x: step(top, x), acts),
            "recomputing training step (6 blocks forward, 2 backward)": _mean_ms(lambda b: step(model, b), batches)}
    split.top.eval()  # dropout off: the fused attention kernel instead of the math path, no Bernoulli masks
    rows["top forward (dropout off)"] = _mean_ms(lambda x: forward(top, x), acts)
    rows["top training step (dropout off)"] = _mean_ms(lambda x: step(top, x), acts)
    for what, ms in rows.items():
        print(f"{ms:8.0f} ms  {what}")
    bound = rows["recomputing training step (6 blocks forward, 2 backward)"] / rows["top training step (dropout on)"]
    print(f"per-step bound on the boundary cache's speed-up: {bound:.2f}x")
    split.top.train()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step(top, acts[0])
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
