"""The labelling page behind ``headstart label``: a FastAPI app on 127.0.0.1 that shows suggested items one at a
time and writes each answer to labels.csv at once (headstart.label.answers).

The page (headstart.label.page_assets) fetches the next item as JSON and puts every text into the page as text
(``textContent``), never as HTML; a Content-Security-Policy allows only the page's own script. Files are served
by their position in the list of picks, never by a path the browser names, and only answers are written, only to
``--out``. Requests must name the page's own host (127.0.0.1 or localhost: a page of another site that looks its
name up to 127.0.0.1 is refused) and send JSON, which a form of another site cannot.
"""

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.audio import is_audio_name
from headstart.label.answers import PATH, TEXT, Answers
from headstart.label.page_assets import PAGE, SCRIPT

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
       "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HOSTS = ("127.0.0.1", "localhost")
WRITING, PICTURE, SOUND = "writing", "picture", "sound"  # how an item is shown (page_assets' script)


@dataclass(frozen=True)
class Item:
    """One suggested item: what is shown (a path or a text), how labels.csv writes it, the model's guess."""

    shown: str
    written: str
    shown_as: str  # how the page shows it: WRITING (a text), PICTURE (an image file) or SOUND (a player)
    guess: str = ""
    probability: str = ""
    reason: str = ""


class Session:
    """The labelling state: the picks still to answer (in rank order; a skipped one goes to the back), the
    classes, and labels.csv. One lock keeps answers from two tabs in order."""

    def __init__(self, items: list[Item], classes: list[str], answers: Answers) -> None:
        self.items, self.classes, self.answers = items, classes, answers
        done = answers.done()
        self.pending = [i for i, item in enumerate(items) if item.written not in done]
        self.given = len(items) - len(self.pending)
        self.lock = threading.Lock()

    def state(self) -> dict:
        """What the page shows: the next item (or none), the classes, and the counts."""
        with self.lock:
            current = self.pending[0] if self.pending else None
            item = None if current is None else self.items[current]
            return {"classes": self.classes, "total": len(self.items), "labelled": self.given,
                    "left": len(self.pending), "out": str(self.answers.out),
                    "item": None if item is None else {
                        "id": current, "shown_as": item.shown_as,
                        "text": item.shown if item.shown_as == WRITING else "",
                        "name": "" if item.shown_as == WRITING else Path(item.shown).name, "guess": item.guess,
                        "probability": item.probability, "reason": item.reason}}

    def label(self, index: int, label: str) -> bool:
        """Write ``label`` for item ``index`` if it is still to answer and the class is known."""
        with self.lock:
            if index not in self.pending or label not in self.classes:
                return False
            self.answers.add(self.items[index].written, label)
            self.pending.remove(index)
            self.given += 1
            return True

    def skip(self, index: int) -> bool:
        """Move item ``index`` to the back of the queue (nothing is written: a restart shows it again)."""
        with self.lock:
            if index not in self.pending:
                return False
            self.pending.remove(index)
            self.pending.append(index)
            return True

    def undo(self) -> bool:
        """Remove the last answer given to one of the picks from labels.csv; that item comes next again."""
        with self.lock:
            written = {item.written: i for i, item in enumerate(self.items)}
            removed = self.answers.undo(set(written))
            if removed is None:
                return False
            self.pending.insert(0, written[removed])
            self.given -= 1
            return True

    def file(self, index: int) -> Item | None:
        """The item ``index`` if it is a file (image or sound)."""
        if 0 <= index < len(self.items) and self.items[index].shown_as != WRITING:
            return self.items[index]
        return None


def shown_as(shown: str, writing: bool) -> str:
    """How the page shows an item: WRITING, SOUND (a file the audio readers take) or PICTURE."""
    return WRITING if writing else SOUND if is_audio_name(shown) else PICTURE


def make_app(session: Session):
    """The FastAPI app of ``session``: /, /page.js, /api/state, /api/label, /api/skip, /api/undo,
    /api/file/{i}, /api/spectrogram/{i}."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(HOSTS))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0] != "application/json":
            return Response("JSON only", status_code=415)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/page.js")
    def script() -> Response:
        return Response(SCRIPT, media_type="text/javascript")

    @app.get("/api/state")
    def state() -> dict:
        return session.state()

    @app.post("/api/label")
    async def label(request: Request) -> dict:
        index, name = await answer(request)
        return {"ok": await run_in_threadpool(session.label, index, name), **session.state()}

    @app.post("/api/skip")
    async def skip(request: Request) -> dict:
        index, _ = await answer(request)
        return {"ok": session.skip(index), **session.state()}

    @app.post("/api/undo")
    def undo() -> dict:
        return {"ok": session.undo(), **session.state()}

    @app.get("/api/file/{index}")
    def file(index: int) -> FileResponse:
        item = session.file(index)
        if item is None:
            raise HTTPException(404)
        return FileResponse(item.shown)

    @app.get("/api/spectrogram/{index}")
    def spectrogram(index: int) -> Response:
        item = session.file(index)
        if item is None or item.shown_as != SOUND:
            raise HTTPException(404)
        return Response(spectrogram_png(item.shown), media_type="image/png")

    return app


async def answer(request) -> tuple[int, str]:
    """``(id, label)`` of a JSON request body ``{"id": 3, "label": "cat"}``; 400 when it is not that."""
    from fastapi import HTTPException

    try:
        body = await request.json()
        index, name = body["id"], body.get("label", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HTTPException(400, 'send {"id": N, "label": NAME}') from None
    if not isinstance(index, int) or not isinstance(name, str):
        raise HTTPException(400, 'send {"id": N, "label": NAME}')
    return index, name


def spectrogram_png(path: str) -> bytes:
    """A log-power spectrogram of the sound at ``path`` (mono), as a PNG: time across, frequency up."""
    import soundfile
    from matplotlib import image as images
    from scipy.signal import spectrogram

    samples, rate = soundfile.read(path, always_2d=True, dtype="float32")
    _, _, power = spectrogram(samples.mean(axis=1), fs=rate, nperseg=512, noverlap=384)
    image = np.log10(power + 1e-10)[::-1]
    buffer = io.BytesIO()
    images.imsave(buffer, image, cmap="magma", format="png")
    return buffer.getvalue()


def labelling_session(pool: Any, out: Path, classes: list[str], n: int, **options: Any) -> tuple[Session, str]:
    """The session of ``headstart label``: ``n`` picks of ``headstart.suggest`` (``options``: its keywords), the
    answers already in ``out``, and how the picks were made."""
    from headstart.label.suggest import suggest

    picks = suggest(pool, n, **options)
    key = TEXT if any(TEXT in row for row in picks.rows) else PATH
    answers = Answers(out, key)
    items = [Item(row[key], answers.item(row[key]), shown_as(row[key], key == TEXT), row.get("guess", ""),
                  row.get("probability", ""), row.get("reason", "")) for row in picks.rows]
    return Session(items, classes, answers), picks.method
