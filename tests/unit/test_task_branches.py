"""Tasks and modalities own what differs between them: outside ``tasks/`` (and the readers in ``data/`` and the
model families in ``backbones/``), no module compares a value against a task's name (single-label, multi-label,
regression) or a modality's (image, text, audio). They ask the task's table (``headstart.tasks.kinds``: metric
names, words, what a task has), the task object (loss, outputs, metrics, audit's and advise's computations), the
data's readers or the backbone's family instead. The sources are read with ``ast``: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import headstart
from headstart.data.targets import TASKS
from headstart.tasks.kinds import KINDS

SRC = Path(headstart.__file__).parent
OWNERS = ("tasks", "data", "backbones")  # where the knowledge lives, and may be spelled out
MODALITIES = ("image", "text", "audio")
NAMES = frozenset((*KINDS, *MODALITIES))


def _names_in(node: ast.expr) -> list[str]:
    """The task or modality names ``node`` spells: a string, or a tuple, list or set of strings."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in NAMES else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [name for element in node.elts for name in _names_in(element)]
    return []


def name_branches(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` for each comparison (``==``, ``!=``, ``in``, ``not in``) or ``match`` case against a task's
    or modality's name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                found += [(node.lineno, name) for name in _names_in(side)]
        elif isinstance(node, ast.MatchValue):
            found += [(node.lineno, name) for name in _names_in(node.value)]
    return found


def outside_owners() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if p.relative_to(SRC).parts[0] not in OWNERS]


def test_no_branch_on_a_task_or_modality_name_outside_its_owners():
    found = [f"{path.relative_to(SRC.parent)}:{line}: {name!r}" for path in outside_owners()
             for line, name in name_branches(path.read_text(encoding="utf-8"))]
    assert found == [], "branches on a task's or modality's name outside tasks/, data/, backbones/:\n" + \
        "\n".join(found)


def test_the_finder_finds_each_form_of_branch():
    source = ('if task.name == "regression": pass\nif "multi-label" != kind: pass\n'
              'if modality in ("text", "audio"): pass\nmatch m:\n    case "image": pass\n'
              'x = {"regression": 1}\nif name == "other": pass\n')
    assert name_branches(source) == [(1, "regression"), (2, "multi-label"), (3, "text"), (3, "audio"), (5, "image")]


def test_the_tasks_table_names_every_task_the_data_detects():
    assert tuple(KINDS) == TASKS
