"""Integration: a real linear run of the packaged MobileNetV2 on MNIST digits, exported to ONNX and timm format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import headstart
from headstart.data import mnist_folder
from headstart.export import export

pytestmark = pytest.mark.integration

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export-real")
    data = mnist_folder(tmp / "m", per_class=10)
    out = tmp / "run"
    headstart.fit(str(data), "mobilenetv2", "linear", out=str(out), progress=False, image_size=64,
                  cache_dir=str(tmp / "cache"))
    images = sorted(str(p) for p in data.rglob("*.png"))[::7]
    return out, images


def _fp32_logits_and_batch(run, images):
    predictor = headstart.load_run(run)
    predictor.precision = "fp32"  # the exports are float32; a bf16 run predicts in bf16 where the CPU can
    predictor.model.float().eval()
    transform = predictor.backbone.preprocessing.transform()
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():
        return predictor, predictor.model(batch).numpy(), batch


def test_real_run_exports_to_onnx_with_parity(mnist_run, tmp_path):
    run, images = mnist_run
    result = export(run, "onnx", tmp_path / "onnx", samples=images[:4])
    assert result.max_abs_diff <= 1e-4
    predictor, logits, batch = _fp32_logits_and_batch(run, images)
    session = ort.InferenceSession(str(result.path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"pixel_values": batch.numpy()})[0]
    assert np.abs(got - logits).max() <= 1e-4
    assert (got.argmax(1) == logits.argmax(1)).all()


def test_real_run_exports_to_torchvision_weights_with_parity(mnist_run, tmp_path):
    import torchvision

    run, images = mnist_run
    result = export(run, "timm", tmp_path / "timm")
    predictor, logits, batch = _fp32_logits_and_batch(run, images)
    model = torchvision.models.mobilenet_v2(num_classes=len(predictor.classes))
    model.load_state_dict(load_file(str(result.path / "model.safetensors")), strict=True)
    with torch.no_grad():
        got = model.eval()(batch).numpy()
    assert np.abs(got - logits).max() <= 1e-5
    rows = predictor.predict(images, device="cpu")
    assert [predictor.classes[i] for i in got.argmax(1)] == [r["label"] for r in rows]
