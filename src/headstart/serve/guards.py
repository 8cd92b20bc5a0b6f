"""ASGI middleware in front of the app: bearer-token auth, the body-size bound, one JSON access-log line a request.

They are plain ASGI (not FastAPI dependencies) so that a request is refused before its body is read: an
unauthenticated client never gets to upload, and a body over the bound is cut off at the bound.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})  # probes and docs need no key
access_log = logging.getLogger("headstart.serve.access")


def log_access(level: str = "info") -> None:
    """Access lines on stderr, one JSON object each, at ``level`` (``warning`` and above: none)."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False
    access_log.setLevel(level.upper())


async def send_error(send: Send, status: int, field: str | None, message: str,
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A JSON error response ``{"error": {"field": ..., "message": ...}}``."""
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header's value (the first, when repeated), or None."""
    return next((value for key, value in scope.get("headers", ()) if key.lower() == name), None)


class BearerAuth:
    """401 unless ``Authorization: Bearer <key>``, compared in constant time (``hmac.compare_digest``)."""

    def __init__(self, app: App, api_key: str):
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and \
                not hmac.compare_digest(header(scope, b"authorization") or b"", self.expected):
            await send_error(send, 401, "Authorization", "Missing or wrong API key: send the header "
                             "'Authorization: Bearer KEY' with the key the server was started with "
                             "(--api-key or HEADSTART_API_KEY).", ((b"www-authenticate", b"Bearer"),))
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over ``limit`` bytes: by its Content-Length before reading, else as soon as it passes it."""

    def __init__(self, app: App, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.too_large(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self.too_large(send)
                return
            more = message.get("more_body", False)
        await self.app(scope, replay(b"".join(chunks), receive), send)

    async def too_large(self, send: Send) -> None:
        await send_error(send, 413, "body", f"The request body is over the limit of {self.limit} bytes "
                         "(--max-body-mb): send fewer or smaller items per request.")


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then waits on the connection (for a disconnect)."""
    given = False

    async def again() -> dict:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return again


class AccessLog:
    """One JSON line a request on the ``headstart.serve.access`` logger: method, path, status, milliseconds."""

    def __init__(self, app: App):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def noted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, noted)
        finally:
            if access_log.isEnabledFor(logging.INFO):  # the line is built only when it is written
                access_log.info(json.dumps({"method": scope["method"], "path": scope["path"], "status": status[0],
                                            "ms": round((time.perf_counter() - start) * 1000, 2),
                                            "client": (scope.get("client") or ("", 0))[0]}))
