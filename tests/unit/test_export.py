"""headstart export: ONNX, Hugging Face and timm/torchvision exports reproduce the run's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import headstart
from headstart import export as export_module
from headstart.cli.app import app
from headstart.errors import ConfigError, RunError
from headstart.export import ExportError, export
from tests_texts import TEXTS  # noqa: F401  (placeholder replaced below)
