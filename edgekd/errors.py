"""User-facing errors. Each message says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeKDError(Exception):
    """Base class of every error the user can fix: the CLI maps it to exit code 2."""


class ConfigError(EdgeKDError):
    """A pipeline or target file is missing, malformed, or has a wrong key or value."""


class DataError(EdgeKDError):
    """A dataset path is missing, empty, or in a format edgekd does not read."""


class ModelError(EdgeKDError):
    """A model spec, checkpoint or user model cannot be built or loaded."""


class ExportError(EdgeKDError):
    """An export failed or does not match the torch model within tolerance."""


class RuntimeBackendError(EdgeKDError):
    """A runtime cannot load or run a model (corrupt ONNX, missing runtime, ...)."""


class TargetError(EdgeKDError):
    """A target is unknown, malformed or unreachable."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A hint such as " (did you mean 'resnet_cifar'?)", or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
