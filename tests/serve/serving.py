"""Helpers of the `headstart serve` tests: tiny fitted runs, the real server as a process on a free port of
127.0.0.1, and a plain HTTP client (http.client) to talk to it.

Not a conftest: a second ``conftest`` module would shadow tests/conftest.py for `from conftest import`.
Runs are fitted once per session into pytest's base temporary folder and reused by every module.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from PIL import Image

import headstart

HOST = "127.0.0.1"  # the tests never listen on any other address
SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200",
       "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def fitted_runs(base: Path, names: list[str], tiny_text_dir: Path, texts: list[str], image_folder: Path) -> dict:
    """``{name: run folder}`` of tiny linear runs (text: single, multi, regression; image; audio), each fitted
    the first time a module asks for it in this session."""
    runs = {}
    for name in names:
        out = base / "serve-runs" / name
        if not (out / "model" / "headstart.json").is_file():
            torch.manual_seed(0)
            data, model, options = recipe(name, base, tiny_text_dir, texts, image_folder)
            headstart.fit(data, model, "linear", out=str(out), progress=False, cache_dir=str(base / "serve-cache"),
                          **options)
        runs[name] = out
    return runs


def recipe(name: str, base: Path, tiny_text_dir: Path, texts: list[str], image_folder: Path) -> tuple:
    """The data, model and options of the run called ``name``."""
    half = len(texts) // 2
    if name == "topics":
        return (texts, ["sports"] * half + ["cooking"] * half), str(tiny_text_dir), {}
    if name == "tags":
        tags = [["sport" if i < half else "food"] + (["short"] if len(t) < 45 else []) for i, t in enumerate(texts)]
        return (texts, tags), str(tiny_text_dir), {}
    if name == "scores":
        return (texts, [(10.0 if i < half else 0.0) + len(t) / 20 for i, t in enumerate(texts)]), \
            str(tiny_text_dir), {"task": "regression"}
    if name == "colours":
        return str(image_folder), "random:mobilenetv2", {"image_size": 32}
    if name == "tones":
        return str(tone_folder(base / "tones")), "random:aisfx-cnn", {"clip_seconds": 0.5}
    raise ValueError(name)


def tone_folder(root: Path, per_class: int = 6) -> Path:
    """root/low/*.wav and root/high/*.wav: half-second 16 kHz tones (220-260 Hz against 2-2.4 kHz) in noise."""
    rng = np.random.default_rng(0)
    for name, base in (("low", 220.0), ("high", 2000.0)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            soundfile.write(root / name / f"{name}_{i}.wav", tone(base + 8 * i, rng), 16000, subtype="PCM_16")
    return root


def tone(freq: float, rng: np.random.Generator | None = None, seconds: float = 0.5) -> np.ndarray:
    """A sine at ``freq`` Hz (16 kHz), with a little noise."""
    t = np.arange(int(16000 * seconds)) / 16000
    noise = rng.normal(0, 0.02, t.shape) if rng is not None else 0.0
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    """A 16-bit WAV file's bytes."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def png_bytes(rgb: tuple[int, int, int], size: tuple[int, int] = (24, 24)) -> bytes:
    """A plain PNG image's bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        """The ``error`` object of a JSON error body."""
        return self.json()["error"]


class Server:
    """`headstart serve ARGS` as a real process on a free port of 127.0.0.1; its output goes to ``log``."""

    def __init__(self, args: list[str], log: Path, key: str | None = None, ready_within: float = 180.0):
        self.port, self.key, self.log = free_port(), key, log
        env = {**os.environ, **ENV}
        if key:
            env["HEADSTART_API_KEY"] = key
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "headstart", "serve", *map(str, args), "--host", HOST,
                                          "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=env)
        self.wait_ready(ready_within)

    def wait_ready(self, within: float) -> None:
        """Until /readyz answers 200; an error with the server's output if it exits or takes too long."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.call("GET", "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the server was not ready within {within} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def call(self, method: str, path: str, body: bytes | str | dict | None = None, headers: dict | None = None,
             timeout: float = 60, auth: bool = True) -> Reply:
        """One HTTP request on a new connection; a dict body is sent as JSON."""
        headers = dict(headers or {})
        if isinstance(body, dict):
            body, headers["Content-Type"] = json.dumps(body), "application/json"
        if auth and self.key and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.key}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def predict(self, model: str, payload: dict, **kwargs) -> Reply:
        return self.call("POST", f"/v1/models/{model}/predict", payload, **kwargs)

    def multipart(self, model: str, files: list[tuple[str, bytes]], fields: dict | None = None, name: str = "files",
                  **kwargs) -> Reply:
        """A multipart/form-data POST: each file as a part called ``name``, plus plain fields."""
        boundary = "headstart-test-boundary"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                 for key, value in (fields or {}).items()]
        parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for filename, data in files]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.call("POST", f"/v1/models/{model}/predict", body,
                         {"Content-Type": f"multipart/form-data; boundary={boundary}"}, **kwargs)

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 60 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
