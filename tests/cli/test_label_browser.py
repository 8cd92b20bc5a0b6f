"""`headstart label` in a real browser: the system Chromium, driven by Playwright, labels five items with the
keyboard; the server is killed with SIGKILL and started again; labels.csv holds exactly those five answers and the
page goes on from the sixth; `headstart fit` reads labels.csv. Tiny random model (the page is the point)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import headstart

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import write_image_folder  # noqa: E402
from serve.serving import ENV, HOST, free_port  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Playwright; a skip, saying what is missing, without either."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (make browser): the labelling page's browser test cannot run.")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                   "playwright==1.65.3): the labelling page's browser test cannot run.")
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def labelling(tmp_path_factory):
    """(run, pool folder, labels.csv path): a linear run of random MobileNetV2 on 3 colours, and a pool of 18
    other colour images (no class folders) inside a data folder that labels.csv sits in."""
    base = tmp_path_factory.mktemp("label")
    torch.manual_seed(0)
    train = write_image_folder(base / "train", per_class=6, seed=1)
    run = base / "run"
    headstart.fit(str(train), "random:mobilenetv2", "linear", out=str(run), progress=False, image_size=32,
                  cache_dir=str(base / "cache"))
    pool = base / "data" / "pool"
    pool.mkdir(parents=True)
    for image in write_image_folder(base / "unsorted", per_class=6, seed=2).rglob("*.png"):
        shutil.copy(image, pool / image.name)
    return run, pool, base / "data" / "labels.csv"


class LabelServer:
    """`headstart label` as a real process on a free port; ready when its page answers."""

    def __init__(self, run: Path, pool: Path, out: Path, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **ENV, "HEADSTART_CACHE": str(log.parent / "label-cache")}
        with open(log, "ab") as handle:
            self.proc = subprocess.Popen([sys.executable, "-m", "headstart", "label", str(pool), "--run", str(run),
                                          "--out", str(out), "--n", "10", "--port", str(self.port), "--quiet"],
                                         stdout=handle, stderr=subprocess.STDOUT, env=env)
        self.log = log
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(self.url + "api/state", timeout=2) as reply:
                    self.first = json.loads(reply.read())
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"the labelling page did not answer in 180 s: {log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def shown_id(page) -> str:
    page.wait_for_function("() => document.body.dataset.id !== undefined")
    return page.evaluate("document.body.dataset.id")


def test_label_five_by_keyboard_kill_restart_resume_and_fit(browser, labelling, tmp_path):
    run, pool, out = labelling
    server = LabelServer(run, pool, out, tmp_path / "server.log")
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("#classes button")
        classes = [b.get_attribute("data-label") for b in page.query_selector_all("#classes button")]
        assert classes == ["blue", "green", "red"]  # the run's classes, as buttons 1-3
        chosen = []
        for step in range(5):
            before = shown_id(page)
            name = page.text_content("#item div")
            if step == 2:  # s skips (nothing written), u after an answer takes it back
                page.keyboard.press("s")
                page.wait_for_function(f"() => document.body.dataset.id !== '{before}'")
                before, name = shown_id(page), page.text_content("#item div")
            key = str(1 + step % 3)
            page.keyboard.press(key)
            page.wait_for_function(f"() => document.body.dataset.id !== '{before}'")
            chosen.append((f"pool/{name}", classes[int(key) - 1]))
        page.keyboard.press("4")  # no fourth class: nothing happens
        page.keyboard.press("u")
        page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('4 labelled')")
        page.keyboard.press(key)  # the undone item is shown again and answered again
        page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('5 labelled')")
        assert [(r["path"], r["label"]) for r in rows(out)] == chosen
        html = page.content()
        assert "<script>" not in html  # the only script is /page.js
    finally:
        server.kill()
    assert [(r["path"], r["label"]) for r in rows(out)] == chosen  # SIGKILL lost nothing

    again = LabelServer(run, pool, out, tmp_path / "server.log")
    try:
        assert again.first["labelled"] == 5 and again.first["left"] == 5
        assert f"pool/{again.first['item']['name']}" not in {path for path, _ in chosen}
    finally:
        again.kill()
    assert [(r["path"], r["label"]) for r in rows(out)] == chosen

    with open(out, "a", encoding="utf-8") as handle:  # a few more answers, so that fit has a validation split
        handle.writelines(f"pool/{c}_{i:02d}.png,{c}\n" for c in classes for i in range(3, 6)
                          if f"pool/{c}_{i:02d}.png" not in {p for p, _ in chosen})
    fitted = headstart.fit(str(out), "random:mobilenetv2", "linear", progress=False, image_size=32,
                           cache_dir=str(tmp_path / "fit-cache"))
    assert sorted(fitted.classes) == sorted({label for _, label in chosen} | set(classes))
