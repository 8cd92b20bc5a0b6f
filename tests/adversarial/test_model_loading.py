"""Loading models and runs from folders and files a user did not write: hostile, damaged or edited.

* Code shipped in a model or run folder (``auto_map`` in a config file, a ``.py`` beside it) is never run
  and never asked about: the folder is refused with a clear error and stdin is not read.
* ``--weights FILE`` is used for every model name, built-ins included; a missing, damaged or pickled file
  is an error naming it (never advice to load it unsafely).
* A damaged or edited run folder, an unusable feature cache or a damaged checkpoint under ``--resume``
  gives one ``error:`` paragraph and exit code 2, never a traceback.
* A run's weights get the same permissions as its other files; a killed feature extraction keeps the
  shards it finished, and a rerun forwards only the rest.

CLI tests call ``headstart.cli.app.main`` (what the ``headstart`` script runs) in this process, with stdin
replaced by a stream that answers "y" to any prompt and records whether anything read it.
"""

from __future__ import annotations

import io
import json
import os
import pickle  # only to write a hostile file; nothing here unpickles
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import headstart
from headstart.core import errors
from headstart.training import engine
from headstart.cli.app import main
from headstart.core.errors import HeadstartError, ModelNotFoundError, RunError
from headstart.features.cache import Extraction, FeatureCache
from headstart.runs.folder import read_json

from conftest import write_image_folder


class Crash(Exception):
    """Stands in for a crash right after an epoch's checkpoint was written."""


def cli(monkeypatch, capsys, *args, stdin: str = "y\n") -> tuple[int, str, str, int]:
    """``headstart ARGS`` as the script runs it: ``(exit code, stdout, stderr, characters read from stdin)``."""
    answers = io.StringIO(stdin)
    monkeypatch.setattr(sys, "stdin", answers)
    monkeypatch.setattr(sys, "argv", ["headstart", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("NO_COLOR", "1")
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return done.value.code, out.out, out.err, answers.tell()


def assert_clean_error(code: int, out: str, err: str, *named: str) -> None:
    """Exit code 2, one ``error:`` paragraph naming ``named``, no traceback, no advice to load unsafely."""
    assert code == 2, err
    assert "Traceback" not in out + err
    assert err.startswith("error:"), err
    for text in named:
        assert text in err, (text, err)
    assert "weights_only=False" not in err and "trust_remote_code=True" not in err


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def evil_module(folder: Path, marker: Path, name: str = "evil_code") -> Path:
    """A Python file that leaves ``marker`` behind if anything imports it."""
    code = folder / f"{name}.py"
    code.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('the folder ran its code')\n")
    return code


def edit_json(path: Path, **changes) -> None:
    record = json.loads(path.read_text()) if path.exists() else {}
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    path.write_text(json.dumps(record))


# ---- code from a model or run folder ------------------------------------------------------------------

def ask_for_code(folder: Path, where: str) -> None:
    """Make ``folder`` ask transformers to run evil_code.py, the way a downloaded model would."""
    if where == "tokenizer_config.json":  # no tokenizer_class: transformers would ask before falling back
        edit_json(folder / where, tokenizer_class=None,
                  auto_map={"AutoTokenizer": ["evil_code.EvilTokenizer", "evil_code.EvilTokenizer"]})
    elif where == "config.json":  # a model type transformers does not know, with its code beside it
        edit_json(folder / where, model_type="evil-bert",
                  auto_map={"AutoConfig": "evil_code.EvilConfig", "AutoModel": "evil_code.EvilModel",
                            "AutoTokenizer": ["evil_code.EvilTokenizer", None]})
        edit_json(folder / "tokenizer_config.json", tokenizer_class=None)
    else:
        edit_json(folder / where, auto_map={"AutoImageProcessor": "evil_code.EvilProcessor"})


@pytest.mark.parametrize("where", ["tokenizer_config.json", "config.json"])
def test_predict_with_a_run_that_asks_for_code_refuses_it_without_asking(text_run, tmp_path, monkeypatch, capsys,
                                                                        where):
    run = copy_run(text_run[1], tmp_path / "run")
    marker = tmp_path / "code-ran"
    evil_module(run / "model", marker)
    ask_for_code(run / "model", where)
    texts = tmp_path / "texts.txt"
    texts.write_text("The striker scored twice\n")
    code, out, err, read = cli(monkeypatch, capsys, "predict", run, texts)
    assert not marker.exists()
    assert read == 0, "something read stdin (a prompt)"
    assert "Do you wish to run the custom code" not in out + err
    assert_clean_error(code, out, err, str(run / "model" / where), "never runs code")


def test_load_run_refuses_a_run_that_asks_for_code(text_run, tmp_path, monkeypatch):
    run = copy_run(text_run[1], tmp_path / "run")
    marker = tmp_path / "code-ran"
    evil_module(run / "model", marker)
    ask_for_code(run / "model", "tokenizer_config.json")
    answers = io.StringIO("y\n")
    monkeypatch.setattr(sys, "stdin", answers)
    with pytest.raises(errors.RemoteCodeError, match="never runs code") as refused:
        headstart.load_run(run)
    assert isinstance(refused.value, HeadstartError)
    assert "evil_code.py" in str(refused.value)
    assert not marker.exists() and answers.tell() == 0


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json", "preprocessor_config.json"])
def test_fit_with_a_model_folder_that_asks_for_code_refuses_it_without_asking(tiny_text_dir, text_csv, tmp_path,
                                                                             monkeypatch, capsys, where):
    model = copy_run(tiny_text_dir, tmp_path / "model")
    marker = tmp_path / "code-ran"
    evil_module(model, marker)
    ask_for_code(model, where)
    code, out, err, read = cli(monkeypatch, capsys, "fit", text_csv, "--model", model, "--strategy", "linear",
                               "--out", tmp_path / "run", "--quiet", "--cache-dir", tmp_path / "cache")
    assert not marker.exists()
    assert read == 0, "something read stdin (a prompt)"
    assert "Do you wish to run the custom code" not in out + err
    assert_clean_error(code, out, err, str(model / where), "never runs code")
    assert not (tmp_path / "run").exists()


def test_load_backbone_refuses_a_model_folder_that_asks_for_code(tiny_text_dir, tmp_path, monkeypatch):
    model = copy_run(tiny_text_dir, tmp_path / "model")
    marker = tmp_path / "code-ran"
    evil_module(model, marker)
    ask_for_code(model, "config.json")
    answers = io.StringIO("y\n")
    monkeypatch.setattr(sys, "stdin", answers)
    with pytest.raises(errors.RemoteCodeError, match="never runs code"):
        headstart.load_backbone(str(model))
    assert not marker.exists() and answers.tell() == 0


def test_the_script_refuses_run_code_even_when_stdin_says_yes(text_run, tmp_path):
    """End to end, in a new process: ``echo y | python -m headstart predict RUN texts.txt``."""
    run = copy_run(text_run[1], tmp_path / "run")
    marker = tmp_path / "code-ran"
    evil_module(run / "model", marker)
    ask_for_code(run / "model", "tokenizer_config.json")
    texts = tmp_path / "texts.txt"
    texts.write_text("Bake the bread\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250", "NO_COLOR": "1",
           "HF_MODULES_CACHE": str(tmp_path / "hf-modules"), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "headstart", "predict", str(run), str(texts)], input="y\n",
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert not marker.exists()
    assert "Do you wish to run the custom code" not in proc.stdout + proc.stderr
    assert_clean_error(proc.returncode, proc.stdout, proc.stderr, "tokenizer_config.json", "never runs code")


# ---- --weights ------------------------------------------------------------------------------------------

def test_missing_weights_for_a_builtin_model_is_an_error(image_folder, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.pth"
    code, out, err, _ = cli(monkeypatch, capsys, "fit", image_folder, "--model", "mobilenetv2", "--weights", missing,
                            "--strategy", "linear", "--image-size", 32, "--out", tmp_path / "run", "--quiet",
                            "--cache-dir", tmp_path / "cache")
    assert_clean_error(code, out, err, str(missing))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model, arch", [("mobilenetv2", "mobilenet_v2"),
                                         ("efficientnet-lite0", "tf_efficientnet_lite0")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_for_a_builtin_model_are_the_weights_used(tmp_path, model, arch, suffix):
    import timm
    import torchvision

    torch.manual_seed(7)
    if arch == "mobilenet_v2":
        source = torchvision.models.mobilenet_v2()
        wanted = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    else:
        source = timm.create_model(arch, pretrained=False)
        wanted = {k: v for k, v in source.state_dict().items() if not k.startswith("classifier.")}
    weights = tmp_path / f"mine{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), weights)
    else:
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    backbone = headstart.load_backbone(model, weights=weights, image_size=32)
    got = backbone.module.state_dict()
    assert all(torch.equal(got[k], v) for k, v in wanted.items() if k in got)
    assert sum(k in got for k in wanted) == len(wanted)
    assert str(weights) in backbone.source
    assert backbone.weights_id != headstart.load_backbone(f"random:{model}", image_size=32).weights_id


def test_a_pickle_given_as_weights_is_refused_without_advice_to_unpickle(image_folder, tmp_path, monkeypatch,
                                                                         capsys):
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling it would create the marker
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "payload": Payload()}, evil)
    code, out, err, _ = cli(monkeypatch, capsys, "fit", image_folder, "--model", "test_efficientnet",
                            "--weights", evil, "--strategy", "linear", "--image-size", 32,
                            "--out", tmp_path / "run", "--quiet", "--cache-dir", tmp_path / "cache")
    assert not marker.exists()
    assert_clean_error(code, out, err, str(evil), "not a plain weights file")
    assert "weights_only" not in err


def test_a_plain_pickle_of_a_dict_is_refused_with_no_library_warning(image_folder, tmp_path, monkeypatch, capsys):
    evil = tmp_path / "evil.pth"  # pickle protocol 4: torch warned about it on stderr before the refusal
    evil.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    code, out, err, _ = cli(monkeypatch, capsys, "fit", image_folder, "--model", "test_efficientnet",
                            "--weights", evil, "--out", tmp_path / "run", "--quiet")
    assert_clean_error(code, out, err, str(evil), "not a plain weights file")
    assert "Warning" not in err and "site-packages" not in err


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_a_damaged_weights_file_is_an_error_naming_it(tmp_path, content):
    weights = tmp_path / "damaged.pth"
    weights.write_bytes(content)
    with pytest.raises(ModelNotFoundError, match="damaged.pth") as failed:
        headstart.load_backbone("test_efficientnet", weights=weights)
    assert "weights_only" not in str(failed.value)


# ---- damaged or edited run folders ----------------------------------------------------------------------

def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "weights missing": ("model.safetensors", lambda m: (m / "model.safetensors").unlink()),
    "weights truncated": ("model.safetensors", lambda m: truncate(m / "model.safetensors")),
    "spec not json": ("headstart.json", lambda m: (m / "headstart.json").write_text('{"format": 1, "name": ')),
    "spec not an object": ("headstart.json", lambda m: (m / "headstart.json").write_text("[1, 2]")),
    "spec without arch": ("headstart.json", lambda m: edit_json(m / "headstart.json", arch=None)),
    "spec without classes": ("headstart.json", lambda m: edit_json(m / "headstart.json", classes=None)),
    "classes of wrong type": ("headstart.json", lambda m: edit_json(m / "headstart.json", classes="sports")),
    "format of wrong type": ("headstart.json", lambda m: edit_json(m / "headstart.json", format="1")),
    "a class added": ("headstart.json", lambda m: edit_json(
        m / "headstart.json", classes=json.loads((m / "headstart.json").read_text())["classes"] + ["politics"])),
    "architecture edited": ("headstart.json", lambda m: edit_json(m / "headstart.json", arch={
        **json.loads((m / "headstart.json").read_text())["arch"],
        "config": {**json.loads((m / "headstart.json").read_text())["arch"]["config"], "num_hidden_layers": 3}})),
    "unknown family": ("headstart.json", lambda m: edit_json(m / "headstart.json", arch={"family": "keras"})),
    "max_length of wrong type": ("headstart.json", lambda m: edit_json(
        m / "headstart.json", preprocessing={"kind": "text", "max_length": "long"})),
    "no tokenizer": ("model", lambda m: [(m / f).unlink() for f in ("tokenizer.json", "tokenizer_config.json")]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_predict_with_a_damaged_text_run_is_one_clear_error(text_run, tmp_path, monkeypatch, capsys, damage):
    run = copy_run(text_run[1], tmp_path / "run")
    named, apply = DAMAGE[damage]
    apply(run / "model")
    texts = tmp_path / "texts.txt"
    texts.write_text("Roast the vegetables\n")
    code, out, err, _ = cli(monkeypatch, capsys, "predict", run, texts)
    assert_clean_error(code, out, err, str(run / "model" / named) if named != "model" else str(run / "model"))


@pytest.mark.parametrize("arch", [{"family": "timm", "name": "no_such_network"},
                                  {"family": "timm", "name": "test_efficientnet"},
                                  {"family": "torchvision", "name": "resnet18"}])
def test_predict_with_an_edited_image_architecture_is_one_clear_error(image_run, image_folder, tmp_path,
                                                                     monkeypatch, capsys, arch):
    run = copy_run(image_run[1], tmp_path / "run")
    edit_json(run / "model/headstart.json", arch=arch)
    image = next(image_folder.rglob("*.png"))
    code, out, err, _ = cli(monkeypatch, capsys, "predict", run, image)
    assert_clean_error(code, out, err, str(run / "model"))


def test_unreadable_run_records_are_a_run_error_naming_the_file(text_run, tmp_path):
    run = copy_run(text_run[1], tmp_path / "run")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="metrics.json"):
        read_json(run, "metrics.json")


# ---- an unusable feature cache --------------------------------------------------------------------------

def test_a_cache_dir_under_a_file_is_one_clear_error(text_csv, tiny_text_dir, tmp_path, monkeypatch, capsys):
    """Tests run as root, where an unwritable (chmod) folder is writable: a path under a file stands in."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache's parent folder should be")
    cache = blocker / "cache"
    code, out, err, _ = cli(monkeypatch, capsys, "fit", text_csv, "--model", tiny_text_dir, "--strategy", "linear",
                            "--out", tmp_path / "run", "--quiet", "--cache-dir", cache)
    assert_clean_error(code, out, err, str(cache), "--cache-dir")
    assert blocker.read_text().startswith("a file")


def test_a_cache_dir_that_is_a_file_is_one_clear_error(image_folder, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    for strategy in ("linear", "partial"):  # partial keeps its boundary activations under the cache too
        code, out, err, _ = cli(monkeypatch, capsys, "fit", image_folder, "--model", "random:mobilenetv2",
                                "--strategy", strategy, "--image-size", 32, "--epochs", 1, "--no-augment",
                                "--out", tmp_path / f"run-{strategy}", "--quiet", "--cache-dir", cache)
        assert_clean_error(code, out, err, str(cache), "--cache-dir")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_cache_disk_is_one_clear_error_and_leaves_no_partial_shard(tiny_disk, image_backbone, tmp_path):
    many = write_image_folder(tmp_path / "images", per_class=40)  # 120 x 1280 floats: more than 64 KiB
    data = headstart.load_data(str(many), val_fraction=0.2).train
    with pytest.raises(RunError, match="feature cache") as full:
        FeatureCache(tiny_disk).features(image_backbone, data, Extraction(torch.device("cpu"), progress=False))
    assert "--cache-dir" in str(full.value)
    assert not [p for p in tiny_disk.rglob("*") if p.name.endswith(".tmp")]


# ---- a damaged checkpoint under --resume ----------------------------------------------------------------

@pytest.fixture
def unfinished_run(text_csv, tiny_text_dir, tmp_path, monkeypatch) -> Path:
    """A partial fit of the tiny BERT killed right after its first epoch's checkpoint."""
    real = engine.save_checkpoint

    def save_then_crash(folder, tensors, state):
        real(folder, tensors, state)
        raise Crash("simulated crash after the first epoch")

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(engine, "save_checkpoint", save_then_crash)
        with pytest.raises(Crash):
            headstart.fit(str(text_csv), str(tiny_text_dir), "partial", out=str(run), epochs=2, unfreeze=1,
                          batch_size=8, progress=False)
    assert (run / "checkpoints/state.json").is_file()
    return run


STATE_DAMAGE = {
    "not json": lambda s: s.write_text('{"epoch": 1, "hist'),
    "empty": lambda s: s.write_text(""),
    "a list": lambda s: s.write_text("[]"),
    "no total_steps": lambda s: edit_json(s, total_steps=None),
    "history of wrong type": lambda s: edit_json(s, history="none"),
    "tensors outside the folder": lambda s: edit_json(s, tensors="../outside.safetensors"),
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
def test_resume_with_a_damaged_state_json_is_one_clear_error(unfinished_run, monkeypatch, capsys, damage):
    state = unfinished_run / "checkpoints/state.json"
    tensors = unfinished_run / "checkpoints" / json.loads(state.read_text())["tensors"]
    shutil.copy(tensors, unfinished_run / "outside.safetensors")  # a file state.json must not reach
    STATE_DAMAGE[damage](state)
    code, out, err, _ = cli(monkeypatch, capsys, "fit", "--resume", unfinished_run, "--quiet")
    assert_clean_error(code, out, err, str(state), "--overwrite")


# ---- permissions and interrupted extraction -------------------------------------------------------------

def test_run_weights_have_the_permissions_of_the_other_run_files(text_pairs, text_backbone, tmp_path):
    old = os.umask(0o022)
    try:
        headstart.fit(text_pairs, text_backbone, "linear", out=str(tmp_path / "run"), progress=False)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert modes["model.safetensors"] == 0o644, modes
    assert set(modes.values()) == {0o644}, modes


class Interrupt:
    """A forward pre-hook that stops the extraction (Ctrl-C) when batch ``at`` is about to run."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def __call__(self, module, inputs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt


def test_an_interrupted_extraction_keeps_its_finished_shards_and_a_rerun_forwards_only_the_rest(image_folder,
                                                                                              tmp_path):
    torch.manual_seed(0)
    backbone = headstart.load_backbone("random:mobilenetv2", image_size=32)
    data = headstart.load_data(str(image_folder), val_fraction=0.2).train
    run = Extraction(torch.device("cpu"), "fp32", batch_size=4, progress=False)
    stop = backbone.module.register_forward_pre_hook(Interrupt(at=5))  # after 4 batches: 16 items done
    try:
        with pytest.raises(KeyboardInterrupt):
            FeatureCache(tmp_path / "cache", shard_items=8).features(backbone, data, run)
    finally:
        stop.remove()
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 2  # two finished shards of 8
    resumed = FeatureCache(tmp_path / "cache", shard_items=8)
    features = resumed.features(backbone, data, run)
    assert resumed.forwarded == len(data) - 16
    whole = FeatureCache(tmp_path / "uninterrupted", shard_items=8)
    np.testing.assert_array_equal(features, whole.features(backbone, data, run))
    assert whole.forwarded == len(data)
    again = FeatureCache(tmp_path / "cache")
    np.testing.assert_array_equal(again.features(backbone, data, run), features)
    assert again.forwarded == 0
