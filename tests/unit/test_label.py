"""The labelling page's state and labels.csv (headstart.label.page, headstart.label.answers), and `headstart label`'s
refusals, before any server starts. The page itself is driven in a browser in tests/cli/test_label_browser.py."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from headstart.core.errors import DataError, RunError
from headstart.label.answers import Answers
from headstart.label.page import WRITING, Item, Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adversarial.cli_harness import cli, refused  # noqa: E402,F401


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def session(out: Path, texts: list[str], classes=("cat", "dog")) -> Session:
    answers = Answers(out, "text")
    return Session([Item(t, answers.item(t), WRITING) for t in texts], list(classes), answers)


def test_answers_are_written_at_once_and_undo_takes_back_the_last(tmp_path):
    out = tmp_path / "labels.csv"
    s = session(out, ["a purring cat", "a barking dog", "=cmd|' /C calc'!A0"])
    assert s.state()["item"]["text"] == "a purring cat"
    assert s.label(0, "cat") and rows(out) == [["text", "label"], ["a purring cat", "cat"]]
    assert not s.label(0, "dog") and not s.label(1, "horse")  # answered already; no such class
    assert s.skip(1) and s.state()["item"]["id"] == 2
    assert s.label(2, "dog") and s.label(1, "dog")
    assert [r[0] for r in rows(out)[1:]] == ["a purring cat", "=cmd|' /C calc'!A0", "a barking dog"]
    assert s.undo() and s.state()["item"]["id"] == 1 and s.state()["labelled"] == 2
    assert rows(out)[1:] == [["a purring cat", "cat"], ["=cmd|' /C calc'!A0", "dog"]]


def test_a_restart_keeps_every_row_and_column_and_resumes(tmp_path):
    out = tmp_path / "labels.csv"
    out.write_text("text,label,note\nolder text,cat,mine\na barking dog,dog,\n", encoding="utf-8")
    s = session(out, ["a purring cat", "a barking dog"])
    assert s.state()["labelled"] == 1 and s.state()["item"]["text"] == "a purring cat"
    s.label(0, "cat")
    assert rows(out) == [["text", "label", "note"], ["older text", "cat", "mine"], ["a barking dog", "dog", ""],
                         ["a purring cat", "cat", ""]]
    s.undo(), s.undo()
    assert rows(out)[1] == ["older text", "cat", "mine"] and len(rows(out)) == 2  # not the page's: kept
    assert not s.undo()


def test_labels_csv_refuses_what_fit_could_not_read(tmp_path):
    (tmp_path / "pool").mkdir()
    with pytest.raises(RunError, match="not inside .* Put labels.csv in a folder that holds the pool"):
        Answers(tmp_path / "pool" / "elsewhere" / "labels.csv", "path").item(str(tmp_path / "pool" / "a.png"))
    assert Answers(tmp_path / "labels.csv", "path").item(str(tmp_path / "pool" / "a.png")) == "pool/a.png"
    other = tmp_path / "other.csv"
    other.write_text("name,score\nx,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="no 'text' or 'label' column"):
        Answers(other, "text")


def test_label_cli_refuses_before_any_work(cli, tmp_path, image_folder):
    refused(cli(["label", str(image_folder), "--model", "random:mobilenetv2", "--out", str(tmp_path / "l.csv")]),
            "--classes cat,dog")
    refused(cli(["label", str(image_folder), "--model", "random:mobilenetv2", "--classes", "a,a",
                 "--out", str(tmp_path / "l.csv")]), "distinct names")
    refused(cli(["label", str(image_folder), "--model", "random:mobilenetv2", "--classes", "a,b",
                 "--out", str(image_folder / "labels.csv")]), "never writes into")
    assert not (image_folder / "labels.csv").exists()
