"""The FastAPI app of ``headstart serve``: runs behind ``/v1/models/NAME/predict``, with health, readiness,
metrics and OpenAPI docs (``/docs``).

Requests are decoded and bounded here (headstart.serve.limits), predicted in dynamic batches by one worker
thread per model (headstart.serve.batching), and answered with the rows of ``headstart predict --json``.
The app holds no state between requests beyond its models and counters: replicas scale behind any load
balancer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.core.errors import ConfigError, HeadstartError
from headstart.data.dataset import modality as data_modality
from headstart.runs.folder import Predictor, keep_top, load_predictor
from headstart.serve.backends import OnnxOutputs, TorchOutputs
from headstart.serve.batching import Batcher
from headstart.serve.guards import AccessLog, BearerAuth, BodyLimit, log_access
from headstart.serve.limits import (Limits, RequestError, bad, base64_bytes, check_count, image_item, json_inputs,
                                    sound_item, text_item, top_k_value)
from headstart.serve.metrics import ServeMetrics
from headstart.tasks.kinds import kind

DECODE_THREADS = max(2, os.cpu_count() or 1)
ENVIRONMENT = "HEADSTART_SERVE"  # what each worker process of ``--workers N`` loads: ServeOptions as JSON
REQUEST_BODY = {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
        "inputs": {"type": "array", "items": {"type": "string"},
                   "description": "Texts (text runs), or base64-encoded image or sound files."},
        "top_k": {"type": "integer", "minimum": 1, "description": "Only the K most probable classes."}}},
        "example": {"inputs": ["The striker scored twice"], "top_k": 2}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "Image or sound files (image and audio runs)."},
        "inputs": {"type": "array", "items": {"type": "string"}, "description": "Texts (text runs)."},
        "top_k": {"type": "integer", "minimum": 1}}}}}}


@dataclass(frozen=True)
class ServeOptions:
    """Everything a server process needs: the runs by name, the bounds, batching, device, auth and CORS."""

    runs: dict[str, str] = field(default_factory=dict)  # name -> run directory
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 32
    max_wait_ms: float = 5.0
    device: str = "auto"
    backend: str = "torch"  # or onnx: then ``exports`` names each run's ONNX export folder
    exports: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The options as JSON (for the worker processes of ``--workers N``)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeOptions":
        """The options ``to_json`` wrote."""
        record = json.loads(text)
        return cls(**{**record, "limits": Limits(**record["limits"]), "cors_origins": tuple(record["cors_origins"])})


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``--workers N``: the options the CLI put in ``HEADSTART_SERVE``."""
    if ENVIRONMENT not in os.environ:
        raise ConfigError(f"{ENVIRONMENT} is not set: start the server with `headstart serve RUN`.")
    options = ServeOptions.from_json(os.environ[ENVIRONMENT])
    log_access()
    return create_app({name: load_predictor(Path(run)) for name, run in options.runs.items()}, options)


def create_app(models: dict[str, Predictor], options: ServeOptions) -> FastAPI:
    """The app serving ``models`` by name; their worker threads start (and warm up) with it."""
    metrics = ServeMetrics()
    batchers = {name: Batcher(name, predictor, backend_of(name, predictor, options), metrics, options.max_batch,
                              options.max_wait_ms) for name, predictor in models.items()}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # decoding images and sounds runs in anyio's threads: as many as the cores (anyio's default is 40, each
        # thread holding memory of its own once it has decoded)
        to_thread.current_default_thread_limiter().total_tokens = DECODE_THREADS
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():  # after uvicorn has answered the requests in flight
            await run_in_threadpool(batcher.stop)

    app = FastAPI(title="headstart serve", version="1", lifespan=lifespan,
                  description="Predictions of headstart runs, in the shape of `headstart predict --json`.")
    add_handlers(app)
    add_routes(app, batchers, options.limits, metrics)
    app.add_middleware(BodyLimit, limit=options.limits.max_body_bytes)
    if options.api_key:
        app.add_middleware(BearerAuth, api_key=options.api_key)
    if options.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(AccessLog)
    return app


def backend_of(name: str, predictor: Predictor, options: ServeOptions) -> TorchOutputs | OnnxOutputs:
    """What computes the outputs of the model called ``name``."""
    if options.backend == "onnx":
        return OnnxOutputs(predictor, Path(options.exports[name]), options.max_batch)
    return TorchOutputs(predictor, options.device, options.max_batch)


def add_routes(app: FastAPI, batchers: dict[str, Batcher], limits: Limits, metrics: ServeMetrics) -> None:
    """Health, readiness, metrics, the model list and the prediction endpoint."""

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Every model is loaded and warmed up")
    async def readyz() -> JSONResponse:
        states = {name: state(b) for name, b in batchers.items()}
        ready = all(s == "ready" for s in states.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "models": states}, 200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", summary="The models served, with their task, classes or target and preprocessing")
    async def list_models() -> dict:
        return {"models": [describe(name, b.predictor) for name, b in batchers.items()]}

    @app.get("/v1/models/{name}", summary="One model")
    async def show_model(name: str) -> dict:
        return describe(name, lookup(batchers, name).predictor)

    @app.post("/v1/models/{name}/predict", summary="Predict: the rows of `headstart predict --json`",
              openapi_extra={"requestBody": REQUEST_BODY})
    async def predict(name: str, request: Request) -> dict:
        batcher = lookup(batchers, name)
        start, status = time.perf_counter(), 500
        try:
            items, origins, top_k = await read_request(request, batcher.predictor, limits)
            rows = await batcher.predict(items, origins)
            status = 200
        except RequestError as exc:
            status = exc.status
            raise
        except HeadstartError as exc:  # the run refused the items (after decoding, rare): the client's to fix
            status = 422
            raise bad("inputs", str(exc)) from None
        finally:
            metrics.requests.labels(name, str(status)).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - start)
        return {"model": name, "predictions": [keep_top(row, top_k) for row in rows] if top_k else rows}


def add_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"error": {"field", "message"}}``; never a traceback to the client."""

    @app.exception_handler(RequestError)
    async def refused(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": {"field": None, "message": str(exc.detail)}}, exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"field": None, "message": f"Internal error ({type(exc).__name__}); the "
                                       "server's log has the details."}}, 500)


def lookup(batchers: dict[str, Batcher], name: str) -> Batcher:
    """The model called ``name``, or a 404 naming those there are."""
    if name not in batchers:
        raise RequestError(404, "name", f"No model named {name!r} here; this server has {', '.join(batchers)} "
                                        "(GET /v1/models lists them).")
    return batchers[name]


def state(batcher: Batcher) -> str:
    """``ready``, ``warming up`` or ``failed: ...``."""
    if not batcher.ready.is_set():
        return "warming up"
    return "ready" if batcher.failed is None else f"failed: {batcher.failed}"


def describe(name: str, predictor: Predictor) -> dict[str, Any]:
    """What a client needs to know of a model: its task, modality, classes (or target) and preprocessing."""
    task = predictor.task
    record: dict[str, Any] = {"name": name, "task": task.name, "modality": predictor.backbone.modality,
                              "backbone": public_name(predictor.backbone.name)}
    if kind(task.name).has_classes:
        record["classes"] = list(predictor.classes)
    else:
        record["target"] = task.target
    thresholds = getattr(task, "thresholds", None)  # multi-label's, tuned per label
    if thresholds is not None:
        record["thresholds"] = {c: float(t) for c, t in zip(predictor.classes, thresholds)}
    record["preprocessing"] = predictor.backbone.preprocessing.to_dict()
    return record


def public_name(model: str) -> str:
    """A backbone's name without the server's folders (a local model directory is named by its last part)."""
    return Path(model).name if Path(model).is_absolute() else model


async def read_request(request: Request, predictor: Predictor, limits: Limits) -> tuple[list, list[str], int | None]:
    """``(items, origins, top_k)`` of a JSON or multipart request, each item decoded and within ``limits``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        raw, fields, origins, top_k = await form_parts(request, predictor.backbone.modality, limits)
    else:
        try:
            payload = json.loads(await request.body())
        except (ValueError, RecursionError) as exc:
            raise bad("body", f"The body is not valid JSON ({' '.join(str(exc).split())[:100]}): send "
                              "{\"inputs\": [...]} with Content-Type: application/json.", 400) from None
        raw, top_k = json_inputs(payload, limits)
        fields = origins = [f"inputs[{i}]" for i in range(len(raw))]
    if top_k is not None and not kind(predictor.task.name).has_classes:
        raise bad("top_k", "'top_k' ranks classes, and this model is a regression (one value per input): drop it.")
    if data_modality(predictor.backbone.modality).texts:  # checks only: no need for a thread
        return decode_all(raw, fields, predictor, limits), origins, top_k
    return await run_in_threadpool(decode_all, raw, fields, predictor, limits), origins, top_k


async def form_parts(request: Request, modality: str, limits: Limits) -> tuple[list, list[str], list[str], int | None]:
    """``(values, fields, origins, top_k)`` of a multipart form: ``files`` (images, sounds; an upload's origin
    is its file name) or ``inputs`` (texts)."""
    texts = data_modality(modality).texts
    wanted = "inputs" if texts else "files"
    try:
        form = await request.form(max_files=limits.max_items + 1, max_fields=limits.max_items + 2)
    except (HTTPException, ValueError, AssertionError) as exc:
        raise bad("body", f"The multipart form cannot be read ({getattr(exc, 'detail', exc)}).", 400) from None
    parts = form.getlist(wanted)
    check_count(len(parts), wanted, limits)
    fields = [f"{wanted}[{i}]" for i in range(len(parts))]
    for where, part in zip(fields, parts):
        if isinstance(part, str) != texts:
            raise bad(where, f"This model reads {modality}s: send them as form field '{wanted}'"
                      + (" (text values)." if texts else " (file uploads)."))
    values = [part if isinstance(part, str) else await part.read() for part in parts]
    origins = [where if isinstance(part, str) else (part.filename or where) for where, part in zip(fields, parts)]
    return values, fields, origins, top_k_value(form.get("top_k"))


def decode_all(raw: list, fields: list[str], predictor: Predictor, limits: Limits) -> list:
    """Every item decoded for the run's modality (texts checked, files decoded), each error naming its field."""
    name, preprocessing = predictor.backbone.modality, predictor.backbone.preprocessing
    if data_modality(name).texts:
        return [text_item(value, where, limits) for where, value in zip(fields, raw)]
    out = []
    for where, value in zip(fields, raw):
        data = value if isinstance(value, bytes) else base64_bytes(value, where, name)
        out.append(sound_item(data, where, limits, preprocessing.sample_rate)
                   if isinstance(preprocessing, AudioPreprocessing) else image_item(data, where, limits))
    return out
