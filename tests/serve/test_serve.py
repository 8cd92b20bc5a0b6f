"""`headstart serve` as a user meets it: the real server process on a free port of 127.0.0.1, over HTTP.

Every task (single-label, multi-label, regression) on text runs, an image run (base64 and multipart) and a
sound run, answers in the shape of `headstart predict --json`, batches formed from concurrent requests, and
/metrics read by the Prometheus client's own parser.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

import headstart
from serving import Server, b64, fitted_runs, png_bytes, tone, wav_bytes

RUNS = ["topics", "tags", "scores", "colours", "tones"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_text_dir, text_pairs, image_folder):
    return fitted_runs(tmp_path_factory.getbasetemp(), RUNS, tiny_text_dir, text_pairs[0], image_folder)


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    served = Server([*runs.values(), "--max-wait-ms", "50", "--max-batch", "32"],
                    tmp_path_factory.mktemp("serve-log") / "server.log")
    yield served
    assert served.stop() == 0, served.output()


def test_models_lists_each_run_with_its_task_classes_or_target_and_preprocessing(server):
    reply = server.call("GET", "/v1/models")
    assert reply.status == 200
    models = {m["name"]: m for m in reply.json()["models"]}
    assert set(models) == set(RUNS)
    assert models["topics"]["task"] == "single-label" and models["topics"]["classes"] == ["cooking", "sports"]
    assert models["tags"]["task"] == "multi-label" and set(models["tags"]["thresholds"]) == {"food", "short", "sport"}
    assert models["scores"]["task"] == "regression" and "target" in models["scores"]
    assert {m["modality"] for m in models.values()} == {"text", "image", "audio"}
    assert models["colours"]["preprocessing"]["kind"] == "image" and models["colours"]["preprocessing"]["size"] == 32
    assert server.call("GET", "/v1/models/tones").json()["preprocessing"]["kind"] == "audio"


@pytest.mark.parametrize("model", ["topics", "tags", "scores"])
def test_text_answers_are_predict_json_rows_for_every_task(server, runs, model):
    texts = ["The striker scored twice in the final", "Simmer the onions in butter", "A late try won the game"]
    reply = server.predict(model, {"inputs": texts})
    assert reply.status == 200, reply.body
    got = reply.json()
    assert got["model"] == model
    expected = headstart.load_run(runs[model]).predict(texts)  # what `headstart predict --json` prints
    for i, (row, want) in enumerate(zip(got["predictions"], expected, strict=True)):
        assert set(row) == set(want) and row["input"] == f"inputs[{i}]" and row["text"] == texts[i]
        for key in ("label", "labels"):
            assert row.get(key) == want.get(key)
        assert row.get("value") == pytest.approx(want.get("value"), abs=1e-4)
        assert row.get("probabilities", {}) == pytest.approx(want.get("probabilities", {}), abs=1e-4)


def test_top_k_ranks_classes_and_is_refused_on_a_regression(server):
    row = server.predict("topics", {"inputs": ["Bake the bread"], "top_k": 1}).json()["predictions"][0]
    assert "probabilities" not in row and len(row["top_k"]) == 1 and row["top_k"][0]["label"] == row["label"]
    refused = server.predict("scores", {"inputs": ["Bake the bread"], "top_k": 1})
    assert refused.status == 422 and refused.error["field"] == "top_k" and "regression" in refused.error["message"]


def test_images_come_as_base64_or_multipart_files_with_the_same_answer(server):
    red, blue = png_bytes((220, 30, 30)), png_bytes((30, 30, 220), (40, 30))
    as_json = server.predict("colours", {"inputs": [b64(red), "data:image/png;base64," + b64(blue)]})
    as_files = server.multipart("colours", [("red.png", red), ("blue.png", blue)], {"top_k": "3"})
    assert as_json.status == 200 and as_files.status == 200, (as_json.body, as_files.body)
    json_rows, file_rows = as_json.json()["predictions"], as_files.json()["predictions"]
    assert [r["input"] for r in file_rows] == ["red.png", "blue.png"]
    assert set(json_rows[0]["probabilities"]) == {"blue", "green", "red"}
    for by_json, by_file in zip(json_rows, file_rows):
        assert {t["label"]: t["probability"] for t in by_file["top_k"]} == pytest.approx(by_json["probabilities"])


def test_sounds_come_as_base64_or_multipart_files(server):
    low, high = wav_bytes(tone(230.0)), wav_bytes(tone(2100.0, seconds=0.8))
    as_json = server.predict("tones", {"inputs": [b64(low), b64(high)]})
    as_files = server.multipart("tones", [("low.wav", low), ("high.wav", high)])
    assert as_json.status == 200 and as_files.status == 200, (as_json.body, as_files.body)
    for by_json, by_file in zip(as_json.json()["predictions"], as_files.json()["predictions"]):
        assert set(by_json["probabilities"]) == {"high", "low"}
        assert by_file["probabilities"] == pytest.approx(by_json["probabilities"])


def batch_counts(server) -> tuple[float, float]:
    """(batches, items) of the topics model so far, from /metrics through the Prometheus parser."""
    families = {f.name: f for f in text_string_to_metric_families(server.call("GET", "/metrics").body.decode())}
    samples = {s.name: s.value for s in families["headstart_batch_size"].samples if s.labels.get("model") == "topics"}
    return samples.get("headstart_batch_size_count", 0.0), samples.get("headstart_batch_size_sum", 0.0)


def test_concurrent_requests_are_gathered_into_batches_seen_in_metrics(server):
    before = batch_counts(server)
    texts = [f"Match report number {i}: the home side won" for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda t: server.predict("topics", {"inputs": [t]}), texts))
    assert [r.status for r in replies] == [200] * 24
    assert [r.json()["predictions"][0]["text"] for r in replies] == texts  # each request its own rows
    batches, items = (after - was for after, was in zip(batch_counts(server), before))
    assert items == 24 and batches < items  # some forward pass held more than one request's item


def test_metrics_parse_with_the_prometheus_client_and_count_requests_by_status(server):
    server.predict("topics", {"inputs": [""]})  # a 422
    families = {f.name: f for f in text_string_to_metric_families(server.call("GET", "/metrics").body.decode())}
    assert {"headstart_requests", "headstart_items", "headstart_batch_size", "headstart_request_seconds",
            "headstart_batch_seconds"} <= set(families)
    statuses = {s.labels["status"] for s in families["headstart_requests"].samples if s.name.endswith("_total")}
    assert {"200", "422"} <= statuses
    assert families["headstart_request_seconds"].type == "histogram"


def test_health_readiness_and_docs(server):
    assert server.call("GET", "/healthz").json() == {"status": "ok"}
    ready = server.call("GET", "/readyz").json()
    assert ready["status"] == "ready" and set(ready["models"].values()) == {"ready"}
    docs = server.call("GET", "/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    spec = server.call("GET", "/openapi.json").json()
    assert "/v1/models/{name}/predict" in spec["paths"]


def test_cors_is_off_unless_an_origin_is_given(server):
    reply = server.call("OPTIONS", "/v1/models/topics/predict", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in reply.headers
    reply = server.predict("topics", {"inputs": ["a"]}, headers={"Origin": "https://evil.example"})
    assert reply.status == 200 and "access-control-allow-origin" not in reply.headers


def test_an_image_is_read_as_predict_reads_its_file_exif_orientation_included(server, runs, tmp_path):
    from PIL import Image

    pixels = Image.new("RGB", (48, 24), (220, 30, 30))
    pixels.paste((30, 200, 30), (0, 0, 16, 24))  # green on the left third: the turn matters
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown turned 90 degrees
    photo = tmp_path / "turned.jpg"
    pixels.save(photo, "JPEG", exif=exif, quality=95)
    reply = server.multipart("colours", [("turned.jpg", photo.read_bytes())])
    assert reply.status == 200, reply.body
    want = headstart.load_run(runs["colours"]).predict(str(photo))[0]["probabilities"]
    assert reply.json()["predictions"][0]["probabilities"] == pytest.approx(want, abs=1e-6)
