"""`headstart serve`: fitted runs behind an HTTP endpoint (see headstart.serve)."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from headstart.core.errors import ConfigError, RunError

if TYPE_CHECKING:  # the verb's start-up imports neither torch nor the server
    from headstart.runs.folder import Predictor
    from headstart.serve.app import ServeOptions

LOOPBACK = ("127.0.0.1", "::1", "localhost")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve_cli(
    runs: list[str] = typer.Argument(..., help="Run directories written by `headstart fit`, each served under its "
                                     "folder name, or NAME=RUN to choose the name."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 opens it to the network (then set "
                             "--api-key)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Server processes (each loads every model once)."),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most items in one forward pass."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0, help="Longest wait for more requests to fill "
                                      "a batch, after the first."),
    device: str = typer.Option("auto", help="auto | cpu | cuda (--backend torch)"),
    backend: str = typer.Option("torch", "--backend", help="torch | onnx: ONNX Runtime on CPU, from the run's ONNX "
                                "export (written to a temporary folder at start-up, checked against torch)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="HEADSTART_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' on every request but "
                                          "/healthz, /readyz and /docs."),
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin", help="Allow browser pages from this "
                                                    "origin (several allowed); CORS is off without it."),
    max_body_mb: float = typer.Option(8.0, "--max-body-mb", min=0.001, help="Largest request body."),
    max_items: int = typer.Option(64, "--max-items", min=1, help="Most items in one request."),
    max_text_chars: int = typer.Option(20_000, "--max-text-chars", min=1, help="Longest text."),
    max_pixels: int = typer.Option(25_000_000, "--max-pixels", min=1, help="Largest image, width x height "
                                   "(checked before decoding)."),
    max_audio_seconds: float = typer.Option(60.0, "--max-audio-seconds", min=0.01, help="Longest sound."),
    log_level: str = typer.Option("info", "--log-level", help="critical | error | warning | info | debug"),
) -> None:
    """Serve RUNS over HTTP: POST /v1/models/NAME/predict, GET /v1/models, /healthz, /readyz, /metrics, /docs.

    Concurrent requests are batched into one forward pass (--max-batch, --max-wait-ms); /readyz answers 200
    once every model is warmed up. SIGTERM stops accepting, finishes the requests in flight and exits 0.

    Example: headstart serve runs/helpdesk  then
    curl -s localhost:8000/v1/models/helpdesk/predict -H 'Content-Type: application/json' -d '{"inputs": ["refund please"]}'
    """
    from headstart.runs.folder import load_predictor
    try:
        from headstart.serve.app import ServeOptions
        from headstart.serve.backends import BACKENDS, export_onnx
        from headstart.serve.limits import Limits
    except ModuleNotFoundError as exc:  # the serve extra is optional
        raise ConfigError(f"headstart serve needs {exc.name}, part of the serve extra: pip install "
                          "'headstart[serve]'.") from None

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}.")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level}: choose one of {', '.join(LOG_LEVELS)}.")
    named = run_names(runs)
    models = {name: load_predictor(path) for name, path in named.items()}  # predict's refusals, before binding
    check_port(host, port)
    with tempfile.TemporaryDirectory(prefix="headstart-serve-") as exports:
        folders = {name: str(export_onnx(path, Path(exports) / name)) for name, path in named.items()} \
            if backend == "onnx" else {}
        limits = Limits(int(max_body_mb * 1024 * 1024), max_items, max_text_chars, max_pixels, max_audio_seconds)
        options = ServeOptions({name: str(path) for name, path in named.items()}, limits, max_batch, max_wait_ms,
                               device, backend, folders, api_key or None, tuple(cors_origin or ()))
        serve(models, options, host, port, workers, log_level)


def serve(models: dict[str, Predictor], options: ServeOptions, host: str, port: int, workers: int,
          log_level: str) -> None:
    """uvicorn on ``host:port`` with the app of ``models`` (one process), or ``workers`` processes that each
    load the runs; returns after a graceful shutdown."""
    import uvicorn

    from headstart.serve.app import ENVIRONMENT, create_app
    from headstart.serve.guards import log_access

    if host not in LOOPBACK and not options.api_key:
        print(f"warning: serving on {host} without --api-key: anyone who can reach this port can use the models.",
              file=sys.stderr)
    log_access(log_level)
    settings = {"host": host, "port": port, "log_level": log_level, "access_log": False,
                "timeout_graceful_shutdown": 60}
    with terminate_cleanly():
        if workers == 1:
            uvicorn.Server(uvicorn.Config(create_app(models, options), **settings)).run()
            return
        models.clear()  # each worker process loads its own
        os.environ[ENVIRONMENT] = options.to_json()
        uvicorn.run("headstart.serve.app:app_from_environment", factory=True, workers=workers, **settings)


def run_names(runs: list[str]) -> dict[str, Path]:
    """``{name: run directory}``: NAME=RUN, else the folder's name; a name used twice is a ConfigError."""
    named: dict[str, Path] = {}
    for arg in runs:
        name, _, path = arg.partition("=") if "=" in arg and not Path(arg).exists() else ("", "", arg)
        name = name or Path(path).resolve().name
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{arg}: a model name may hold letters, digits, '-', '_' and '.' only (it is part of "
                              "the URL); choose one with NAME=RUN.")
        if name in named:
            raise ConfigError(f"Two runs would be served as {name!r} ({named[name]} and {path}): name one of them "
                              "with NAME=RUN.")
        named[name] = Path(path)
    return named


def check_port(host: str, port: int) -> None:
    """RunError, before any model is served, when ``host:port`` cannot be bound (in use, or no such address)."""
    try:
        family = socket.AF_INET6 if ":" in host and ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror or exc})"
            raise RunError(f"Port {port} on {host} {why}: choose another with --port, or another --host.") from None


@contextmanager
def terminate_cleanly() -> Iterator[None]:
    """SIGTERM ends the process with status 0 once uvicorn has shut down gracefully (uvicorn re-raises the
    signal it caught after shutting down; without a handler of ours that would kill the process)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
