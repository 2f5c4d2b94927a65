"""Load targets by name (built-in ``targets/*.yaml``) or path."""

from __future__ import annotations

from pathlib import Path

from edgekd.config import TargetConfig, load_yaml, validate
from edgekd.resources import builtin_names, resolve


def load_target(name_or_path: str | Path) -> TargetConfig:
    path = resolve("targets", name_or_path)
    return validate(TargetConfig, load_yaml(path), path)


def builtin_targets() -> list[str]:
    return builtin_names("targets")
