"""The one atomic writer: a failed write leaves the old file (or folder) as it was and nothing else behind."""

from __future__ import annotations

import errno
import json
import os

import pytest

from headstart.core.errors import RunError
from headstart.core.fileio import read_json_object, staged_dir, write_json, write_text, write_with


def _disk_full_halfway(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b'{"half": ')
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_fails_midway_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"epoch": 3})
    with pytest.raises(OSError, match="No space left"):
        write_with(path, _disk_full_halfway)
    assert json.loads(path.read_text()) == {"epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_payload_that_cannot_be_serialised_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "metrics.json"
    write_text(path, "old\n")
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        write_json(path, {"bad": object()})
    assert path.read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1


def test_written_files_replace_the_old_and_honour_the_umask(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": (1, 2)}, indent=None)
    assert path.read_text() == '{"x": [1, 2]}\n'
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_staged_folder_that_fails_leaves_the_old_folder_intact(tmp_path):
    out = tmp_path / "run"
    with staged_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            (tmp / "a.txt").write_text("second")
            raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "first"
    with staged_dir(out) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_json_record_that_is_not_an_object_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(RunError, match=r"config\.json must hold a JSON object \(the run's config\)\. Fit again\."):
        read_json_object(path, RunError, "the run's config", "Fit again.")
    path.write_text("{broken")
    with pytest.raises(RunError, match=r"Cannot read .*config\.json: .*Fit again\."):
        read_json_object(path, RunError, "the run's config", "Fit again.")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
