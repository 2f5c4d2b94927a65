"""The runtime base class and the latency record every runtime returns.

Public :meth:`Runtime.profile` checks its inputs once for all runtimes; each
subclass measures in :meth:`Runtime._profile`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import ConfigError, RuntimeBackendError
from edgekd.onnx_model import load_onnx
from edgekd.profiling import LatencyStats
from edgekd.registry import Registry


@dataclass(frozen=True)
class LayerTime:
    """Time of one node of the executed (optimized) graph.

    Attributes:
        name: Node name as the runtime reports it.
        op_type: Operator type, e.g. ``Conv``.
        mean_ms: Mean time per inference.
        share: Fraction of the summed node time of one inference, 0..1.
    """

    name: str
    op_type: str
    mean_ms: float
    share: float


@dataclass(frozen=True)
class LatencyRecord:
    """One measured (or estimated) latency of a model on a target.

    ``throughput`` is samples per second, ``batch * 1000 / mean_ms``; ``estimated`` is
    true only where nothing was measured; ``layers`` holds the slowest nodes, slowest first.
    The optional fields are ``None`` where not measured and then left out of :meth:`to_dict`:
    ``h2d_ms``, ``compute_ms`` and ``d2h_ms`` are medians per run of the host-to-device copy,
    the device compute and the device-to-host copy (GPU runtimes, from device-side events);
    ``cpu_affinity`` is how many CPUs the timing process was allowed to run on; ``method``
    says how the time was taken.
    """

    model: str
    target: str
    runtime: str
    precision: str
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput: float
    runs: int
    outliers: int
    estimated: bool
    threads: int | None
    runtime_version: str
    provider: str
    layers: tuple[LayerTime, ...] = ()
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None
    cpu_affinity: int | None = None
    method: str | None = None

    @classmethod
    def from_stats(
        cls,
        stats: LatencyStats,
        *,
        model: str,
        target: str,
        runtime: str,
        precision: str,
        batch: int,
        threads: int | None,
        runtime_version: str,
        provider: str,
        layers: tuple[LayerTime, ...] = (),
        **measured: Any,
    ) -> LatencyRecord:
        """Build a measured record (``estimated=False``) from timing statistics.

        Args:
            stats: The statistics from :func:`edgekd.profiling.time_runs`.
            model: Model name shown in reports.
            target: Target name.
            runtime: Runtime name, e.g. ``onnxruntime``.
            precision: Precision label, e.g. ``fp32``.
            batch: Batch size of each run.
            threads: Intra-op threads used, if known.
            runtime_version: Version of the runtime library.
            provider: Execution provider or device that ran the model.
            layers: Slowest nodes, slowest first.
            **measured: Optional fields (``h2d_ms``, ``compute_ms``, ``d2h_ms``,
                ``cpu_affinity``, ``method``).

        Returns:
            The record, with ``throughput`` derived from ``batch`` and ``stats.mean_ms``.
        """
        return cls(
            model=model,
            target=target,
            runtime=runtime,
            precision=precision,
            batch=batch,
            p50_ms=stats.p50_ms,
            p90_ms=stats.p90_ms,
            p99_ms=stats.p99_ms,
            mean_ms=stats.mean_ms,
            std_ms=stats.std_ms,
            throughput=batch * 1000.0 / stats.mean_ms,
            runs=stats.runs,
            outliers=stats.outliers,
            estimated=False,
            threads=threads,
            runtime_version=runtime_version,
            provider=provider,
            layers=layers,
            **measured,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, ``layers`` as a list of dicts; optional fields only where measured."""
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.layers]
        for name in _OPTIONAL_FIELDS:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyRecord:
        """Rebuild a record from :meth:`to_dict`'s output (e.g. JSON copied back from a board).

        Args:
            data: A dict with every required field; unknown keys are an error.

        Returns:
            The record.

        Raises:
            RuntimeBackendError: If a required field is missing or a field is unknown.
        """
        names = {field.name for field in fields(cls)}
        required = {field.name for field in fields(cls) if field.default is MISSING}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise RuntimeBackendError(
                f"latency result has missing fields {missing} and unknown fields {unknown};"
                " the runtime that wrote it does not match this edgekd version"
            )
        layers = tuple(LayerTime(**layer) for layer in data.get("layers", ()))
        return cls(**{**data, "layers": layers})


_OPTIONAL_FIELDS = ("h2d_ms", "compute_ms", "d2h_ms", "cpu_affinity", "method")


def cpu_affinity() -> int | None:
    """How many CPUs this process may run on (``os.sched_getaffinity``), else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


@dataclass(frozen=True)
class Finding:
    """One line of ``edgekd targets check``: a fact about the target, fine or a problem with its fix."""

    ok: bool
    message: str


class Runtime(ABC):
    """Runs and times a model on one target.

    Subclasses set ``name``, register with ``@RUNTIMES.register(name)`` and implement
    :meth:`_profile`; they override :meth:`check` to report missing libraries or devices,
    and :meth:`describe` to say what will run the model. ``model_format`` is the file a
    runtime times: ``onnx`` (an ``.onnx`` file) or ``checkpoint`` (an edgekd ``.pt``).
    """

    name: ClassVar[str]
    model_format: ClassVar[Literal["onnx", "checkpoint"]] = "onnx"

    def __init__(self, target: TargetConfig) -> None:
        self.target = target

    def profile(
        self,
        model_path: Path,
        *,
        model_name: str,
        batch: int,
        precision: str,
        settings: ProfileConfig,
    ) -> LatencyRecord:
        """Measure the latency of a model on this runtime's target.

        Args:
            model_path: The model file, in this runtime's ``model_format``.
            model_name: Name shown in reports.
            batch: Batch size of each run, at least 1.
            precision: A precision label the target lists; :meth:`precisions_for` says
                which ones this runtime can time for a given file.
            settings: Warm-up, run counts, minimum time and per-layer options.

        Returns:
            The latency record.

        Raises:
            ConfigError: If ``batch``, ``precision`` or the run counts are invalid.
            RuntimeBackendError: If the runtime is not ready, or the model is not valid
                or cannot be run.
            TargetError: If the target cannot be reached or lacks the runtime (SSH boards).
        """
        if batch < 1:
            raise ConfigError(f"batch size must be at least 1 (got {batch})")
        if precision not in self.target.precisions:
            raise ConfigError(
                f"precision {precision!r} is not one of target {self.target.name!r}'s precisions"
                f" ({', '.join(self.target.precisions)}); add it to the target's precisions"
            )
        if settings.max_runs < settings.min_runs:
            raise ConfigError(
                f"profile.max_runs ({settings.max_runs}) is below profile.min_runs"
                f" ({settings.min_runs}); raise max_runs or lower min_runs"
            )
        problems = self.check()
        if problems:
            raise RuntimeBackendError(
                f"runtime {self.name!r} cannot run on target {self.target.name!r}: " + "; ".join(problems)
            )
        if self.model_format == "onnx":
            load_onnx(Path(model_path))
        return self._profile(
            Path(model_path), model_name=model_name, batch=batch, precision=precision, settings=settings
        )

    @abstractmethod
    def _profile(
        self,
        model_path: Path,
        *,
        model_name: str,
        batch: int,
        precision: str,
        settings: ProfileConfig,
    ) -> LatencyRecord:
        """Measure a model whose inputs :meth:`profile` has already checked."""

    def precisions_for(self, stored: str) -> list[str]:
        """The target's precisions this runtime can time a model stored in ``stored`` precision at.

        The file decides the arithmetic here: nothing is converted, so only ``stored``
        itself. Runtimes that build their own engine (TensorRT, torch on CUDA) widen this.

        Args:
            stored: Precision of the model file (``fp32``, ``fp16`` or ``int8`` for QDQ).

        Returns:
            Precision labels, in the target's order.
        """
        return [p for p in self.target.precisions if p == stored]

    def check(self) -> list[str]:
        """Problems that stop this runtime on this target, each with its fix; empty when ready.

        Only local facts (libraries, devices, tools); :meth:`diagnose` also asks remote boards.
        """
        return []

    def describe(self) -> str:
        """What times the model when the runtime is ready, e.g. ``onnxruntime 1.32.0 (CPU…)``."""
        return self.name

    def diagnose(self) -> list[Finding]:
        """Everything ``edgekd targets check`` reports: each fact, fine or a problem with its fix."""
        problems = self.check()
        if problems:
            return [Finding(False, problem) for problem in problems]
        return [Finding(True, f"{self.target.name}: {self.describe()} ready")]


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")
