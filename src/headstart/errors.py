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


class RunError(HeadstartError, OSError):
    """A run directory cannot be written or read."""


class RemoteCodeError(HeadstartError, ValueError):
    """A model or run folder asks transformers to run Python code it ships; headstart never does."""
