"""The runtime base class and the latency record every runtime returns.

Public :meth:`Runtime.profile` checks its inputs once for all runtimes; each
subclass measures in :meth:`Runtime._profile`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

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
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field, ``layers`` as a list of dicts."""
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.layers]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyRecord:
        """Rebuild a record from :meth:`to_dict`'s output (e.g. JSON copied back from a board).

        Args:
            data: A dict with every field; unknown keys are an error.

        Returns:
            The record.

        Raises:
            RuntimeBackendError: If a field is missing or unknown.
        """
        names = {field.name for field in fields(cls)}
        missing = sorted(names - set(data) - {"layers"})
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise RuntimeBackendError(
                f"latency result has missing fields {missing} and unknown fields {unknown};"
                " the runtime that wrote it does not match this edgekd version"
            )
        layers = tuple(LayerTime(**layer) for layer in data.get("layers", ()))
        return cls(**{**data, "layers": layers})


class Runtime(ABC):
    """Runs and times an ONNX model on one target.

    Subclasses set ``name``, register with ``@RUNTIMES.register(name)`` and implement
    :meth:`_profile`; they override :meth:`check` to report missing libraries or devices.
    """

    name: ClassVar[str]

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
        """Measure the latency of an ONNX model on this runtime's target.

        Args:
            model_path: The ``.onnx`` file.
            model_name: Name shown in reports.
            batch: Batch size of each run, at least 1.
            precision: A precision label the target lists (the ONNX file decides the
                actual arithmetic; no conversion happens here).
            settings: Warm-up, run counts, minimum time and per-layer options.

        Returns:
            The latency record.

        Raises:
            ConfigError: If ``batch``, ``precision`` or the run counts are invalid.
            RuntimeBackendError: If the runtime is not ready, or the model is not valid
                ONNX or cannot be run.
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

    def check(self) -> list[str]:
        """Problems that stop this runtime on this target, each with its fix; empty when ready."""
        return []


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


def get_runtime(target: TargetConfig) -> Runtime:
    """The runtime that ``target.runtime`` names, bound to ``target``.

    Args:
        target: The target to run on.

    Returns:
        A runtime instance.

    Raises:
        UnknownNameError: If no runtime of that name is registered.
    """
    return RUNTIMES.get(target.runtime)(target)
