"""``manifest.json``: which stages finished, with what fingerprint, and the sha256 of each file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgeKDError
from edgekd.fsutil import atomic_write_json, sha256_file

MANIFEST = "manifest.json"
FORMAT = "edgekd-run/1"


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable hash of JSON-able ``payload``."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_parts(version: str, inputs: dict[str, Any], upstream: dict[str, str]) -> dict[str, str]:
    """One hash per thing a stage's fingerprint covers (``version``, ``inputs.<key>``,
    ``upstream.<stage>``), kept in its manifest entry so a re-run can say what changed."""
    parts = {"version": fingerprint({"version": version})}
    parts.update({f"inputs.{key}": fingerprint({"value": value}) for key, value in inputs.items()})
    parts.update({f"upstream.{name}": digest for name, digest in upstream.items()})
    return parts


def rerun_reason(previous: dict[str, Any] | None, fp: str, parts: dict[str, str]) -> str:
    """Why a stage that ran before runs again, for its progress line ("" on a first run)."""
    if previous is None:
        return ""
    if previous.get("fingerprint") == fp:
        return "its files changed on disk"
    old = previous.get("fingerprint_parts")
    if old is None:
        return "its settings changed"
    changed = [key for key in dict.fromkeys([*parts, *old]) if parts.get(key) != old.get(key)]
    return "changed since the last run: " + ", ".join(_describe(key) for key in changed)


def _describe(key: str) -> str:
    kind, _, name = key.partition(".")
    if kind == "version":
        return "edgekd version"
    if kind == "upstream":
        return f"{name} stage's output"
    return {"data": "data", "files": "teacher files", "targets": "targets"}.get(name, f"{name} settings")


def hash_tree(folder: Path) -> dict[str, dict[str, Any]]:
    """relative path → {sha256, bytes} for every file under ``folder``."""
    return {
        str(p.relative_to(folder)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files_intact(folder: Path, artifacts: dict[str, dict[str, Any]]) -> bool:
    """True when every recorded file exists with its recorded size and sha256."""
    for rel, meta in artifacts.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            return False
    return True


@dataclass
class Manifest:
    run_dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        path = run_dir / MANIFEST
        if not path.exists():
            return cls(run_dir, {"format": FORMAT, "stages": {}, "artifacts": {}})
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgeKDError(f"{path}: unreadable manifest ({exc}); re-run with --fresh") from None
        if data.get("format") != FORMAT:
            raise EdgeKDError(f"{path}: not an edgekd run manifest; use another --out or --fresh")
        return cls(run_dir, data)

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data["stages"]

    def save(self) -> None:
        atomic_write_json(self.run_dir / MANIFEST, self.data)

    def finished(self, stage: str, fp: str) -> dict[str, Any] | None:
        """The stage's entry when it finished with fingerprint ``fp`` and its files are intact."""
        entry = self.stages.get(stage)
        if not entry or entry.get("status") != "done" or entry.get("fingerprint") != fp:
            return None
        if not files_intact(self.run_dir / stage, entry.get("artifacts", {})):
            return None
        return entry
