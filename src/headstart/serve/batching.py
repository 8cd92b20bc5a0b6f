"""Dynamic batching: one worker thread per model gathers concurrent requests into one forward pass.

A request puts its (already decoded) items on the model's queue and awaits a future. The worker takes the
first waiting request, then more until ``max_batch`` items are gathered or ``max_wait_ms`` has passed since
the first, predicts them in one call of the backend (headstart.serve.backends: the run's preprocessing, then torch on
its device and precision, or ONNX Runtime) and ``Predictor.rows`` (the rows of ``headstart predict``), and
hands each request its rows. A request is never split: one
that would overflow the batch waits for the next one (a single request over ``max_batch`` items is a batch
of its own, cut into forward passes of ``max_batch``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from headstart.data import Dataset
from headstart.runs.folder import Predictor
from headstart.serve.metrics import ServeMetrics


@dataclass
class Job:
    """One request's items and where to hand its rows."""

    items: list[Any]
    origins: list[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop

    def settle(self, rows: list[dict] | None = None, error: BaseException | None = None) -> None:
        """Hand the rows (or the error) to the awaiting request, on its event loop; a request whose client
        went away is left alone."""
        def deliver() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(rows)
        self.loop.call_soon_threadsafe(deliver)


class Batcher:
    """The worker thread of one model: warm-up first (``ready`` is set after it), then batches until stopped."""

    def __init__(self, name: str, predictor: Predictor, outputs: Callable[[Dataset], np.ndarray], metrics: ServeMetrics,
                 max_batch: int = 32, max_wait_ms: float = 5.0):
        self.name, self.predictor, self.outputs, self.metrics = name, predictor, outputs, metrics
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.ready = threading.Event()
        self.failed: BaseException | None = None  # the warm-up's error, if it failed
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._held: Job | None = None  # the job that did not fit the last batch: first of the next
        self._thread = threading.Thread(target=self._work, name=f"headstart-batcher-{name}", daemon=True)

    def start(self) -> None:
        """Start the worker thread (it warms the model up, then serves)."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the batches already queued, then end the worker thread; whether it ended within ``timeout``."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    async def predict(self, items: list[Any], origins: list[str]) -> list[dict]:
        """Rows for ``items`` (one per item, as ``predict --json``), from the next batch that holds them."""
        loop = asyncio.get_running_loop()
        job = Job(items, origins, loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def _work(self) -> None:
        try:
            self._warm_up()
        except Exception as exc:  # reported by /readyz; requests get the same error
            self.failed = exc
        self.ready.set()
        while (jobs := self._gather()) is not None:
            self._serve(jobs)

    def _warm_up(self) -> None:
        """Forward passes of the largest input in batches of 1, 2, 4... up to a full one, before the model is ready
        (the kernels of those shapes are then made, and the memory they hold is taken before /readyz says ready)."""
        item = neutral_item(self.predictor)
        for size in warm_up_sizes(self.max_batch):
            self.predict_now([item] * size, ["warm-up"] * size)

    def predict_now(self, items: list[Any], origins: list[str]) -> list[dict]:
        """Rows for ``items`` from one call of the backend, in this thread."""
        data = Dataset(items, None, self.predictor.backbone.modality, origins)
        return self.predictor.rows(data, self.outputs(data))

    def _gather(self) -> list[Job] | None:
        """The next batch's requests; None once stopped and drained."""
        first = self._held or self._queue.get()
        self._held = None
        if first is None:
            return None
        jobs, count = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while count < self.max_batch and (left := deadline - time.monotonic()) > 0:
            try:
                job = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # the stop mark: the worker ends after this batch
                break
            if count + len(job.items) > self.max_batch:
                self._held = job  # first of the next batch
                break
            jobs.append(job)
            count += len(job.items)
        return jobs

    def _serve(self, jobs: list[Job]) -> None:
        """Predict every item of ``jobs`` in one call and hand each job its rows."""
        if self.failed is not None:
            for job in jobs:
                job.settle(error=self.failed)
            return
        items = [item for job in jobs for item in job.items]
        start = time.perf_counter()
        try:
            rows = self.predict_now(items, [o for job in jobs for o in job.origins])
        except Exception as exc:  # the awaiting requests answer with it; the worker goes on
            for job in jobs:
                job.settle(error=exc)
            return
        self.metrics.forward.labels(self.name).observe(time.perf_counter() - start)
        self.metrics.batch_size.labels(self.name).observe(len(items))
        self.metrics.items.labels(self.name).inc(len(items))
        offset = 0
        for job in jobs:
            job.settle(rows[offset:offset + len(job.items)])
            offset += len(job.items)


def warm_up_sizes(max_batch: int) -> list[int]:
    """1, 2, 4... below ``max_batch``, then ``max_batch``."""
    return sorted({min(2 ** k, max_batch) for k in range(max_batch.bit_length() + 1)})


def neutral_item(predictor: Predictor) -> Any:
    """An input of the run's modality that says nothing, as large as the model takes (so that warm-up meets the
    largest buffers a request can ask for): a text of ``max_length`` words, a grey image, a quiet tone."""
    return predictor.backbone.preprocessing.neutral_item()
