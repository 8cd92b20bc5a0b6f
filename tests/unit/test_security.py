"""Safe loading, checked on the source tree: no pickle-based loading, no remote code.

Every ``torch.load`` passes ``weights_only=True``; every ``from_pretrained`` (and ``Auto*.from_config``)
passes ``trust_remote_code=False`` (left out, transformers asks on stdin whether to run a folder's code);
nothing unpickles (``pickle.load(s)``, ``Unpickler``, ``pandas.read_pickle``, ``joblib.load``,
``numpy.load(allow_pickle=True)``). The checks read the syntax tree, so aliases and line breaks do not hide
a call, and a plain-text scan backs them up.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "headstart"
UNPICKLERS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
              ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"),
              ("cloudpickle", "loads"), ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
              ("_pickle", "load"), ("_pickle", "loads")}


def _sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, f"expected headstart's sources under {SRC}"
    return files


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """('torch', 'load') for torch.load, ('load',) for a bare name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def violations(source: str, name: str = "<src>") -> list[str]:
    """Every unsafe loading call in ``source``, as 'name:line: what'."""
    tree = ast.parse(source)
    aliases: dict[str, tuple[str, ...]] = {}  # from torch import load as tl -> {'tl': ('torch', 'load')}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = (*node.module.split("."), alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = tuple(alias.name.split("."))
                if alias.name.split(".")[0] in {"pickle", "cPickle", "_pickle", "dill", "cloudpickle"}:
                    found.append(f"{name}:{node.lineno}: imports {alias.name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        path = _dotted(node.func)
        if path and path[0] in aliases:
            path = aliases[path[0]] + path[1:]
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        where = f"{name}:{node.lineno}"
        if path[-2:] == ("torch", "load"):
            flag = kwargs.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{where}: torch.load without weights_only=True")
        if path[-2:] in UNPICKLERS:
            found.append(f"{where}: unpickles with {'.'.join(path)}")
        if path[-1:] == ("load",) and path[:1] in (("np",), ("numpy",)):
            flag = kwargs.get("allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"{where}: numpy.load with allow_pickle")
        remote = kwargs.get("trust_remote_code")
        refuses_code = isinstance(remote, ast.Constant) and remote.value is False
        if remote is not None and not refuses_code:
            found.append(f"{where}: trust_remote_code is not False")
        loads_config = path[-1:] == ("from_pretrained",) or (
            path[-1:] == ("from_config",) and len(path) > 1 and path[-2].startswith("Auto"))
        if loads_config and remote is None:
            found.append(f"{where}: {'.'.join(path[-2:])} without trust_remote_code=False")
    for node in ast.walk(tree):  # {"trust_remote_code": True} handed on as **kwargs
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and not (
                        isinstance(value, ast.Constant) and value.value is False):
                    found.append(f"{name}:{node.lineno}: trust_remote_code in a dict")
    return found


def test_source_tree_loads_nothing_unsafely():
    problems = [p for f in _sources() for p in violations(f.read_text(encoding="utf-8"), str(f.relative_to(SRC)))]
    assert problems == []


def test_text_scan_agrees():
    """Backs up the syntax check: every `torch.load(` line says weights_only=True; no remote code, no pickle."""
    for f in _sources():
        text = f.read_text(encoding="utf-8")
        for call in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text, re.S):
            assert "weights_only=True" in call.group(0), f"{f}: {call.group(0)}"
        assert not re.search(r"trust_remote_code\s*[=:]\s*True|trust_remote_code\"\s*:\s*True", text), f
        assert not re.search(r"\bpickle\.loads?\(|\bread_pickle\(|allow_pickle\s*=\s*True", text), f


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "from torch import load\nload('x.pt')",
    "import torch as t\nt.load('x.pt', map_location='cpu')",
    "import pickle\npickle.load(open('x', 'rb'))",
    "import pandas as pd\npd.read_pickle('x')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "from transformers import AutoModel\nAutoModel.from_pretrained('x', trust_remote_code=True)",
    "from transformers import AutoModel\nflag = True\nAutoModel.from_pretrained('x', trust_remote_code=flag)",
    "from transformers import AutoModel\nAutoModel.from_pretrained('x', **{'trust_remote_code': True})",
    "from transformers import AutoTokenizer\nAutoTokenizer.from_pretrained('x')",
    "from transformers import AutoConfig\nAutoConfig.from_pretrained('x', local_files_only=True)",
    "import transformers\ntransformers.AutoModel.from_config(config)",
])
def test_the_checker_catches_unsafe_loading(snippet):
    assert violations(snippet), snippet


def test_the_checker_accepts_safe_loading():
    safe = ("import torch\nfrom safetensors.torch import load_file\n"
            "torch.load('x.pt', map_location='cpu', weights_only=True)\nload_file('x.safetensors')\n"
            "from transformers import AutoModel\nAutoModel.from_pretrained('x', trust_remote_code=False)\n"
            "AutoModel.from_config(config, trust_remote_code=False)\n"
            "import numpy as np\nnp.load('x.npy')\n")
    assert violations(safe) == []
