"""Find the pipelines and targets that ship with edgekd, in a wheel or a source checkout."""

from __future__ import annotations

from pathlib import Path

from edgekd.errors import ConfigError, TargetError, close_matches

_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """``pipelines`` or ``targets``: inside the installed package (wheel), else the repo root."""
    for candidate in (_PACKAGE_DIR / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"the built-in {kind}/ folder is missing from this install; reinstall edgekd")


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml") if not p.stem.startswith("_"))


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """A YAML path as given, or the built-in file of that name."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise _error(kind, f"{path}: file not found")
        return path
    candidate = builtin_dir(kind) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = builtin_names(kind)
    hint = close_matches(str(name_or_path), names)
    raise _error(
        kind, f"no {kind[:-1]} {str(name_or_path)!r}{hint}; built in: {', '.join(names)}, or give a .yaml path"
    )


def _error(kind: str, message: str) -> Exception:
    return TargetError(message) if kind == "targets" else ConfigError(message)
