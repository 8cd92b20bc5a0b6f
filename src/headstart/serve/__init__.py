"""``headstart serve``: fitted runs behind an HTTP endpoint (FastAPI on uvicorn), with dynamic batching,
bounds on every request, health, readiness, Prometheus metrics and optional bearer-token auth.

    app.py       the FastAPI app: routes, error bodies, the app of a worker process
    batching.py  one worker thread per model gathers concurrent requests into one forward pass
    limits.py    request bounds, and decoding JSON/base64/multipart items (bombs refused unread)
    guards.py    ASGI middleware: auth, body size, access log
    metrics.py   Prometheus metrics in the app's own registry
"""
