"""headstart's errors: each says what went wrong, where, and how to fix it."""

from __future__ import annotations


class HeadstartError(Exception):
    """Base class of every error headstart raises on purpose."""


class DataError(HeadstartError, ValueError):
    """The training, validation or test data cannot be used as given."""


class ModelNotFoundError(HeadstartError, LookupError):
    """No weights source could provide the requested backbone."""


class ConfigError(HeadstartError, ValueError):
    """An option has a value headstart cannot use."""


class FlagError(HeadstartError):
    """A command-line value that cannot be read as its option's type. Not a ValueError, so that the CLI's parser
    (click) hands it on as it is, and it prints as headstart's other errors do."""


class Diverged(ConfigError):
    """Training stopped being finite (a learning rate far too high): the fit stops and nothing of it is kept."""


class RunError(HeadstartError, OSError):
    """A run directory cannot be written or read."""


class Interrupted(HeadstartError):
    """The user stopped the command (Ctrl-C); the message says what was kept and how to go on."""


def option(name: str, value: object = None) -> str:
    """An option as both a CLI flag and a Python argument, for messages: ``--label-col (label_col=)``.

    The same data errors reach CLI and Python users, so they name both spellings; ``value`` fills them in
    (``option("skip_bad", True)`` gives ``--skip-bad (skip_bad=True)``).
    """
    flag = "--" + name.replace("_", "-")
    if value is None:
        return f"{flag} ({name}=)"
    if isinstance(value, bool):
        return f"{flag} ({name}={value})"
    return f"{flag} {value} ({name}={value!r})"


class RemoteCodeError(HeadstartError, ValueError):
    """A model or run folder asks transformers to run Python code it ships; headstart never does."""


class ExportError(HeadstartError, RuntimeError):
    """An export could not be written, or it does not reproduce headstart's predictions."""


def brief(exc: BaseException) -> str:
    """An exception's message on one short line: enough to say what went wrong."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__
