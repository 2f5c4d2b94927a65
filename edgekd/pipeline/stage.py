"""What a stage is: a function of (config, upstream records) → files in its folder + JSON outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from edgekd.config import PipelineConfig, TargetConfig
from edgekd.progress import NullProgress, Progress
from edgekd.registry import Registry

STAGES: Registry[type[Stage]] = Registry("stage")


@dataclass
class RunContext:
    """Everything a stage may read besides its upstream records."""

    config: PipelineConfig
    base_dir: Path
    """The pipeline file's folder: relative paths in the config resolve against it."""
    run_dir: Path
    targets: list[TargetConfig]
    progress: Progress = field(default_factory=NullProgress)
    _data: Any = None

    def data(self):
        """The dataset splits, loaded once per run."""
        if self._data is None:
            from edgekd.data import load_data

            self._data = load_data(self.config.data, self.config.seed, self.base_dir)
        return self._data

    def data_inputs(self) -> dict[str, Any]:
        """What decides the data a stage sees, for its fingerprint: the ``data`` section, the seed
        (it fixes the split) and a stamp of the files under ``data.path``."""
        return {"config": self.config.data.model_dump(mode="json"), "seed": self.config.seed,
                "files": self._data_files_stamp}

    @cached_property
    def _data_files_stamp(self) -> str | None:
        from edgekd.data import data_files_stamp

        return data_files_stamp(self.config.data, self.base_dir)


@dataclass(frozen=True)
class StageRecord:
    """A finished stage: its folder and the JSON outputs it returned."""

    name: str
    dir: Path
    outputs: dict[str, Any]


class Stage(ABC):
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    distributed: ClassVar[bool] = False
    """Trains: under torchrun every rank runs it (rank 0 keeps the files); else rank 0 alone."""

    def enabled(self, ctx: RunContext) -> bool:
        """Whether the pipeline runs this stage (optional stages are absent from the config)."""
        return True

    @abstractmethod
    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        """The config (and input-file hashes) that decide this stage's result."""

    @abstractmethod
    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        """Write artifacts into ``work_dir`` and return JSON-able outputs."""
