"""``--config FILE`` of fit, compare, advise and audit, and DATA's help (their other options are generated from
declarations: headstart.cli.flags)."""

from __future__ import annotations

import functools
import json
import typing
from pathlib import Path
from typing import Any, Optional

import typer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from headstart.core.errors import ConfigError

DATA_HELP = "Image folder (root/<class>/*), or a CSV/TSV/JSONL/Parquet table."


CONFIG_HELP = ("A TOML or JSON file of this command's options (names as the flags, dashes or underscores; a run's "
               "config.json works too, so a run can be fitted again from it); flags on the command line win.")


def config_option() -> Any:
    """``--config FILE``: read before the other options, whose defaults it replaces (click's ``default_map``)."""
    return typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP, is_eager=True, callback=_load_config,
                        expose_value=False)


KINDS = {"integer": int, "float": float, "boolean": bool, "text": str, "path": str, "list": str}  # click's type
# names -> what a config value of that option may be (``list``: a comma-separated flag, see cli.flags)


def _load_config(ctx: typer.Context, param: Any, value: str | None) -> None:
    if value:
        accepted = {p.name: _annotation(p) for p in ctx.command.params if p.name}
        ctx.default_map = {**(ctx.default_map or {}), **config_defaults(Path(value), ctx.command.name or "", accepted)}


def _annotation(param: Any) -> Any:
    """The Python type a config value of ``param`` may have: typer's own record of the flag's annotation where it
    keeps one (``type_descriptor``), else from click's type name."""
    described = getattr(param, "type_descriptor", None)
    if described is not None:
        return Optional[described.annotation]
    return Optional[KINDS.get(getattr(getattr(param, "type", None), "name", ""), Any)]


def config_defaults(path: Path, verb: str, accepted: dict[str, Any]) -> dict[str, Any]:
    """The options in ``path`` as ``{parameter name: value}`` for ``verb``, whose options ``accepted`` maps to their
    types; an unknown key, or a value of the wrong type (``true`` for a number), is an error naming it and the file.

    TOML keys may sit at the top or under ``[VERB]``. A run's config.json (``{"config": {...}, "data": {...}}``)
    gives its options (the strategy's own ones included) and, as DATA, VAL and TEST, the paths it was fitted on.
    Lists become the comma-separated text the flags take; null values keep the command's defaults.
    """
    record = _read_config(path)
    if isinstance(record.get(verb), dict):
        record = {**{k: v for k, v in record.items() if not isinstance(v, dict)}, **record[verb]}
    if isinstance(record.get("config"), dict):  # a run's config.json
        sources = record.get("data") or {}
        record = {**record["config"], **{name: (sources.get(key) or {}).get("path")
                                         for name, key in (("data", "train"), ("val", "val"), ("test", "test"))}}
    if isinstance(record.get("options"), dict):
        record = {**{k: v for k, v in record.items() if k != "options"}, **record["options"]}
    out = {}
    for key, value in record.items():
        name = str(key).replace("-", "_")
        if name not in accepted:
            if value is None or isinstance(value, dict):
                continue  # an unset or nested record (e.g. another verb's table) is not an option of this one
            raise ConfigError(f"{path}: {key!r} is not an option of `headstart {verb}`; its options are "
                              f"{', '.join(sorted(n.replace('_', '-') for n in accepted))}.")
        if value is not None:
            _check_type(path, key, value, accepted[name])
            out[name] = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
    return out


SCALARS = {bool: "true or false", int: "a whole number, e.g. 3", float: "a number, e.g. 0.5",
           str: "text (quoted), a number or a list"}  # what a config value of an option of each type may be


def _check_type(path: Path, key: str, value: Any, annotation: Any) -> None:
    """ConfigError naming ``path`` and ``key`` unless ``value`` fits an option of type ``annotation`` (a bool is no
    number, text no number; a str option, a list or the name of a file, takes numbers and lists too)."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]  # Optional[X]: X
    kind = str if kinds[0] is Path else kinds[0]
    if kind not in SCALARS:
        return  # not a scalar option: the command checks it
    if isinstance(value, bool):
        fits = kind is bool
    elif isinstance(value, (list, tuple)):
        fits = kind is str and all(isinstance(v, (str, int, float)) for v in value)
    else:
        fits = isinstance(value, {bool: (), int: (int,), float: (int, float), str: (str, int, float)}[kind])
    if not fits:
        raise ConfigError(f"--config {path}: {key!r} must be {SCALARS[kind]}, not {json.dumps(value, default=str)} "
                          f"({type(value).__name__}). Fix it in the file, or drop it and give "
                          f"--{key.replace('_', '-')} on the command line.")


def _read_config(path: Path) -> dict[str, Any]:
    """A TOML or JSON object from ``path``, with an error that names the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc}).") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not UTF-8 text (byte {exc.start + 1}: {exc.reason}); TOML and JSON "
                          "files must be UTF-8. Save it as UTF-8 in your editor.") from None
    try:
        record = (tomllib.loads(text) if path.suffix.lower() == ".toml"
                  else json.loads(text, object_pairs_hook=functools.partial(_unique_keys, path)))
    except ConfigError:
        raise
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON (name it .toml for TOML)"
        raise ConfigError(f"--config {path}: not valid {kind}: {exc}.") from None
    if not isinstance(record, dict):
        raise ConfigError(f"--config {path}: must hold a table of options, not a {type(record).__name__}.")
    return record


def _unique_keys(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its ``pairs``; a key given twice is a ConfigError (JSON would keep the last silently)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ConfigError(f"--config {path}: the key {key!r} is given twice in one object; keep only one.")
        seen.add(key)
    return dict(pairs)
