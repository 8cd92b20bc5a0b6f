"""`headstart serve` against a hostile client: each bad request gets its 4xx JSON error naming the field, and
the server keeps answering. The real server process, small bounds, an API key; HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import struct
import zlib

import pytest

from serving import HOST, Server, b64, fitted_runs, png_bytes, tone, wav_bytes

KEY = "s3cret-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_text_dir, text_pairs, image_folder):
    runs = fitted_runs(tmp_path_factory.getbasetemp(), ["topics", "colours", "tones"], tiny_text_dir, text_pairs[0],
                       image_folder)
    served = Server([*runs.values(), "--max-body-mb", "1", "--max-items", "8", "--max-text-chars", "2000",
                     "--max-pixels", "1000000", "--max-audio-seconds", "2", "--max-wait-ms", "10"],
                    tmp_path_factory.mktemp("serve-log") / "server.log", key=KEY)
    yield served
    assert served.stop() == 0, served.output()


def still_answers(server: Server) -> None:
    reply = server.predict("topics", {"inputs": ["The striker scored twice"]})
    assert reply.status == 200 and reply.json()["predictions"][0]["label"] in {"sports", "cooking"}, reply.body


def refused(reply, status: int, field: str | None, words: str = "") -> None:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.error["field"] == field and words in reply.error["message"], reply.error
    assert "Traceback" not in reply.body.decode()


@pytest.mark.parametrize("body, status, field, words", [
    (b'{"inputs": ["unfinished', 400, "body", "not valid JSON"),
    (b"[" * 100_000, 400, "body", "not valid JSON"),  # nested past the parser's recursion limit
    (b"\xff\xfe not utf-8", 400, "body", "not valid JSON"),
    (b'["a", "b"]', 422, None, "JSON object"),
    (b'{"inputs": "one text"}', 422, "inputs", "list"),
    (b'{"inputs": [1, 2]}', 422, "inputs[0]", "string"),
    (b'{"inputs": ["fine", null]}', 422, "inputs[1]", "string"),
    (b'{"inputs": [NaN]}', 422, "inputs[0]", "string"),
    (b'{"inputs": []}', 422, "inputs", "empty"),
    (b'{"inputs": ["   "]}', 422, "inputs[0]", "blank"),
    (b'{"inputs": ["a"], "top_k": 0}', 422, "top_k", "at least 1"),
    (b'{"inputs": ["a"], "top_k": true}', 422, "top_k", "whole number"),
    (b'{"inputs": ["a"], "topk": 2}', 422, "topk", "Unknown field"),
    (json.dumps({"inputs": ["a"] * 9}).encode(), 413, "inputs", "--max-items"),
    (json.dumps({"inputs": ["word " * 500]}).encode(), 413, "inputs[0]", "--max-text-chars"),
])
def test_malformed_and_mistyped_json_gets_a_4xx_naming_the_field(server, body, status, field, words):
    refused(server.call("POST", "/v1/models/topics/predict", body, {"Content-Type": "application/json"}),
            status, field, words)
    still_answers(server)


def test_a_10_mb_body_is_refused_by_its_length_and_a_chunked_one_as_it_passes_the_bound(server):
    big = json.dumps({"inputs": ["x" * 10_000_000]}).encode()
    refused(server.call("POST", "/v1/models/topics/predict", big, {"Content-Type": "application/json"}),
            413, "body", "--max-body-mb")
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)  # no Content-Length: chunked
    connection.request("POST", "/v1/models/topics/predict", body=iter([b'{"inputs": ["'] + [b"y" * 65536] * 40),
                       headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["field"] == "body"
    connection.close()
    still_answers(server)


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real decompression bomb: a 1-bit black PNG of width x height pixels (400 million) in a few tens of kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer, row = zlib.compressobj(9), b"\x00" + b"\x00" * ((width + 7) // 8)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_a_decompression_bomb_png_is_refused_before_it_is_decoded(server):
    bomb = bomb_png()
    assert len(bomb) < 200_000  # small on the wire, 400 million pixels once decoded
    refused(server.predict("colours", {"inputs": [b64(bomb)]}), 413, "inputs[0]", "--max-pixels")
    refused(server.multipart("colours", [("bomb.png", bomb)]), 413, "files[0]", "--max-pixels")
    refused(server.predict("colours", {"inputs": [b64(bomb_png(2000, 1000))]}), 413, "inputs[0]", "2000x1000")
    still_answers(server)


@pytest.mark.parametrize("payload, field, words", [
    ({"inputs": ["a red square"]}, "inputs[0]", "base64"),  # a text for an image run
    ({"inputs": [b64(b"GIF89a but not really an image")]}, "inputs[0]", "cannot be decoded as an image"),
    ({"inputs": [b64(png_bytes((1, 2, 3))), 7]}, "inputs[1]", "base64 string"),
    ({"inputs": [b64(png_bytes((1, 2, 3)))[:-5]]}, "inputs[0]", "base64"),
])
def test_what_is_not_an_image_is_refused_by_an_image_run(server, payload, field, words):
    refused(server.predict("colours", payload), 422, field, words)
    still_answers(server)


def test_a_corrupt_or_too_long_wav_is_refused(server):
    good = wav_bytes(tone(300.0))
    refused(server.predict("tones", {"inputs": [b64(good[:40])]}), 422, "inputs[0]", "cannot be decoded as audio")
    refused(server.predict("tones", {"inputs": [b64(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)]}), 422, "inputs[0]", "audio")
    refused(server.multipart("tones", [("long.wav", wav_bytes(tone(300.0, seconds=3.0)))]), 413, "files[0]",
            "--max-audio-seconds")
    refused(server.multipart("tones", [], {"inputs": "a text"}), 422, "files", "empty")
    assert server.predict("tones", {"inputs": [b64(good)]}).status == 200


def test_a_file_for_a_text_run_and_unknown_models_and_paths(server):
    refused(server.multipart("topics", [("red.png", png_bytes((220, 30, 30)))], name="inputs"), 422, "inputs[0]",
            "reads texts")
    refused(server.predict("nobody", {"inputs": ["a"]}), 404, "name", "topics")
    refused(server.call("GET", "/v1/nothing"), 404, None)
    refused(server.call("GET", "/v1/models/topics/predict"), 405, None)
    still_answers(server)


def test_a_missing_or_wrong_api_key_is_401_and_probes_need_none(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": f"Bearer {KEY}x"}):
        reply = server.call("POST", "/v1/models/topics/predict", {"inputs": ["a"]}, headers, auth=False)
        refused(reply, 401, "Authorization", "API key")
        assert reply.headers["www-authenticate"] == "Bearer"
    refused(server.call("GET", "/metrics", auth=False), 401, "Authorization")
    assert server.call("GET", "/healthz", auth=False).status == 200
    assert server.call("GET", "/readyz", auth=False).status == 200
    still_answers(server)


async def one_connection(port: int, n: int) -> int:
    """One request on its own connection; its HTTP status (0: no answer within the time allowed)."""
    body = json.dumps({"inputs": [f"request {n}: the match went to extra time"]}).encode()
    head = (f"POST /v1/models/topics/predict HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 30)
        writer.write(head + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 90)
        await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return int(status_line.split()[1])
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        return 0


async def many_connections(port: int, count: int) -> list[int]:
    return await asyncio.gather(*(one_connection(port, n) for n in range(count)))


def test_a_thousand_concurrent_connections_are_all_answered(server):
    statuses = asyncio.run(many_connections(server.port, 1000))
    assert statuses.count(200) == 1000, {s: statuses.count(s) for s in set(statuses)}
    still_answers(server)
