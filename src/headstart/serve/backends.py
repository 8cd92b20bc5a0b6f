"""What computes a batch's outputs: ``torch`` (the run's model, on its device and precision, as ``predict``) or
``onnx`` (ONNX Runtime on the run's ONNX export, which ``headstart export`` checks against torch before it is
written). Either gives the raw outputs ``[n, outputs]`` that ``Predictor.rows`` turns into predict's rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headstart.data import Dataset
from headstart.core.errors import ConfigError
from headstart.runs.folder import Predictor

BACKENDS = ("torch", "onnx")


class TorchOutputs:
    """The run's own model: ``Predictor.outputs`` (device, precision and preprocessing of ``predict``)."""

    def __init__(self, predictor: Predictor, device: str, batch_size: int):
        self.predictor, self.device, self.batch_size = predictor, device, batch_size

    def __call__(self, data: Dataset) -> np.ndarray:
        return self.predictor.outputs(data, self.device, self.batch_size)


class OnnxOutputs:
    """An ONNX Runtime session (CPU) of ``folder/model.onnx``, fed by the run's own preprocessing."""

    def __init__(self, predictor: Predictor, folder: Path, batch_size: int):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(Path(folder) / "model.onnx"), providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.collate = predictor.backbone.preprocessing.collate(False)
        self.batch_size = batch_size

    def __call__(self, data: Dataset) -> np.ndarray:
        outs = []
        for start in range(0, len(data.items), self.batch_size):
            batch, _ = self.collate([(item, 0) for item in data.items[start:start + self.batch_size]])
            feeds = {n: (batch[n] if isinstance(batch, dict) else batch).numpy() for n in self.names}
            outs.append(self.session.run(["logits"], feeds)[0])
        return np.concatenate(outs).astype(np.float64)


def export_onnx(run: Path, folder: Path) -> Path:
    """The run as a parity-checked ONNX export in ``folder`` (``headstart export --format onnx``)."""
    try:
        import onnxruntime  # noqa: F401  (the export would be written unchecked without it)
    except ImportError:
        raise ConfigError("--backend onnx needs onnxruntime: pip install 'headstart[export]', or serve with "
                          "--backend torch.") from None
    from headstart.runs.export import export

    return export(run, "onnx", folder).path
