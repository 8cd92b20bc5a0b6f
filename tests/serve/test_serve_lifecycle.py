"""`headstart serve` starting and stopping: SIGTERM during a request finishes it and exits 0; what the CLI
refuses before it listens (a port in use, a folder that is not a run, two runs of one name) is one `error:`
line and exit 2, like every verb.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import headstart

from serving import HOST, Server, fitted_runs
from headstart.cli.app import main
from headstart.serve.backends import TorchOutputs
from headstart.serve.batching import Batcher
from headstart.serve.metrics import ServeMetrics


@pytest.fixture(scope="module")
def topics(tmp_path_factory, tiny_text_dir, text_pairs, image_folder):
    return fitted_runs(tmp_path_factory.getbasetemp(), ["topics"], tiny_text_dir, text_pairs[0], image_folder)["topics"]


def test_sigterm_during_a_request_finishes_it_then_exits_0(topics, tmp_path):
    # a batch waits up to 6 s for more requests: the request below is in flight when SIGTERM comes
    server = Server([topics, "--max-wait-ms", "6000", "--max-batch", "64"], tmp_path / "server.log")
    answers = []
    client = threading.Thread(target=lambda: answers.append(server.predict("topics", {"inputs": ["Bake the bread"]})))
    client.start()
    time.sleep(2.5)
    server.proc.send_signal(15)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((HOST, server.port), timeout=5):
        pass  # no longer accepting
    client.join(30)
    assert answers and answers[0].status == 200, server.output()
    assert answers[0].json()["predictions"][0]["text"] == "Bake the bread"
    assert server.proc.wait(30) == 0, server.output()
    assert "Finished server process" in server.output() and "Traceback" not in server.output()


def test_stopping_while_a_batch_gathers_serves_it_and_ends_the_worker_at_once(topics):
    predictor = headstart.load_run(topics)
    batcher = Batcher("topics", predictor, TorchOutputs(predictor, "cpu", 8), ServeMetrics(), 8, max_wait_ms=3000)
    batcher.start()
    assert batcher.ready.wait(120), "the warm-up took over 2 minutes"
    assert batcher.failed is None, repr(batcher.failed)

    async def stop_while_gathering() -> tuple[list[dict], bool, float]:
        pending = asyncio.ensure_future(batcher.predict(["Bake the bread"], ["inputs[0]"]))
        await asyncio.sleep(0.5)  # the worker now waits up to 3 s for more requests
        start = time.monotonic()
        ended = await asyncio.get_running_loop().run_in_executor(None, batcher.stop, 10.0)
        return await pending, ended, time.monotonic() - start

    rows, ended, seconds = asyncio.run(stop_while_gathering())
    assert rows[0]["text"] == "Bake the bread" and rows[0]["input"] == "inputs[0]"
    assert ended and seconds < 8  # the stop mark is kept, not lost while the batch gathered


def run_cli(args: list, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr("sys.argv", ["headstart", "serve", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, " ".join(capsys.readouterr().err.split())


def test_a_port_in_use_is_one_error_line(topics, monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        code, err = run_cli([topics, "--port", taken.getsockname()[1]], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: Port") and "is in use" in err and "--port" in err


def test_a_folder_that_is_not_a_run_or_a_name_served_twice_is_refused(topics, tmp_path, monkeypatch, capsys):
    code, err = run_cli([tmp_path], monkeypatch, capsys)
    assert code == 2 and "is not a headstart run directory" in err
    code, err = run_cli([topics, f"topics={topics}"], monkeypatch, capsys)
    assert code == 2 and "Two runs would be served as 'topics'" in err and "NAME=RUN" in err
    code, err = run_cli([f"my model={topics}"], monkeypatch, capsys)
    assert code == 2 and "a model name may hold" in err
    code, err = run_cli([topics, "--backend", "tensorrt"], monkeypatch, capsys)
    assert code == 2 and "--backend tensorrt: choose one of torch, onnx" in err


def test_onnx_backend_in_two_worker_processes_answers_as_predict_with_cors_for_its_origin(topics, tmp_path):
    server = Server([topics, "--backend", "onnx", "--workers", "2", "--cors-origin", "https://app.example"],
                    tmp_path / "server.log")
    texts = ["The striker scored twice", "Whisk the eggs with sugar"]
    try:
        replies = [server.predict("topics", {"inputs": texts}) for _ in range(4)]  # over both workers
        preflight = server.call("OPTIONS", "/v1/models/topics/predict", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        other = server.call("OPTIONS", "/v1/models/topics/predict", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    finally:
        code = server.stop()
    expected = headstart.load_run(topics).predict(texts)
    for reply in replies:
        assert reply.status == 200, reply.body
        for row, want in zip(reply.json()["predictions"], expected):
            assert row["label"] == want["label"] and row["probabilities"] == pytest.approx(want["probabilities"],
                                                                                           abs=1e-4)
    assert preflight.headers.get("access-control-allow-origin") == "https://app.example"
    assert other.status == 400 and "access-control-allow-origin" not in other.headers
    assert code == 0, server.output()
    assert server.output().count("Finished server process") == 2, server.output()
