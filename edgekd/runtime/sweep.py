"""Profile models on several targets, each at its precisions and batch sizes, and keep going on failure.

A target that cannot be reached, or whose runtime is missing, is recorded as a failure and
the other targets are still measured. Where nothing was measured and the target has a
hardware spec, a roofline estimate (``estimated: true``) stands in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import EdgeKDError, TargetError
from edgekd.progress import NullProgress, Progress
from edgekd.runtime.base import Runtime
from edgekd.runtime.select import get_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFiles:
    """One model to profile, in the formats it was saved in.

    Attributes:
        name: Name shown in reports.
        onnx: The ``.onnx`` file, if any.
        checkpoint: The edgekd checkpoint (``.pt``), if any (for the torch runtime).
    """

    name: str
    onnx: Path | None = None
    checkpoint: Path | None = None


@dataclass
class SweepResult:
    """Latency records (as dicts) and what could not be measured.

    ``failures`` entries are ``{target, model, batch, precision, error}``; ``model``,
    ``batch`` and ``precision`` are ``None`` where the whole target (or model) failed.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def profile_targets(
    models: list[ModelFiles],
    targets: list[TargetConfig],
    settings: ProfileConfig,
    *,
    batch_sizes: list[int] | None = None,
    progress: Progress = NullProgress(),
) -> SweepResult:
    """Profile every model on every target, at each precision the runtime can time and each batch size.

    Args:
        models: The models and their files.
        targets: The targets, in report order.
        settings: Warm-up, run counts, per-layer options.
        batch_sizes: Batch sizes for every target; default each target's own.
        progress: Receives one task per target.

    Returns:
        The records and the failures. A :class:`~edgekd.errors.TargetError` (unreachable
        board, runtime missing there) ends that target; any other error ends only that
        model, batch and precision.
    """
    result = SweepResult()
    for target in targets:
        _profile_target(models, target, settings, batch_sizes or target.batch_sizes, progress, result)
    return result


def _profile_target(models: list[ModelFiles], target: TargetConfig, settings: ProfileConfig,
                    batches: list[int], progress: Progress, result: SweepResult) -> None:
    runtime = get_runtime(target)
    plans = [(model, *_plan(runtime, model)) for model in models]
    task = f"profile {target.name}"
    progress.start(task, total=sum(len(precisions) for _, _, precisions, _ in plans) * len(batches))
    problems = runtime.check()
    target_error = f"target {target.name}: {'; '.join(problems)}" if problems else None
    if target_error is not None:
        result.failures.append(_failure(target, target_error))
    for model, path, precisions, problem in plans:
        if problem is not None:
            result.failures.append(_failure(target, problem, model=model.name))
        for precision in precisions:
            for batch in batches:
                if target_error is None:
                    try:
                        record = runtime.profile(path, model_name=model.name, batch=batch, precision=precision,
                                                 settings=settings)
                    except TargetError as exc:
                        target_error = str(exc)
                        result.failures.append(_failure(target, target_error))
                    except EdgeKDError as exc:
                        result.failures.append(_failure(target, str(exc), model=model.name, batch=batch,
                                                        precision=precision))
                    else:
                        result.records.append(record.to_dict())
                        progress.advance(task, status=f"{model.name} {precision} b{batch}: p50 {record.p50_ms:.3f} ms")
                        continue
                _estimate(model, target, batch, precision, result)
                progress.advance(task, status=f"{model.name} {precision} b{batch}: not measured")
    progress.finish(task)


def _plan(runtime: Runtime, model: ModelFiles) -> tuple[Path | None, list[str], str | None]:
    """The file the runtime times, the precisions it can time it at, and why none (or ``None``)."""
    path = model.onnx if runtime.model_format == "onnx" else model.checkpoint
    if path is None:
        kind = "ONNX file" if runtime.model_format == "onnx" else "edgekd checkpoint (.pt)"
        return None, [], f"{model.name} has no {kind}, which runtime {runtime.name} times; give one"
    try:
        stored = _stored_precision(path)
    except EdgeKDError as exc:
        return None, [], str(exc)
    precisions = runtime.precisions_for(stored)
    if not precisions:
        return None, [], (f"{model.name} is stored at {stored}, which runtime {runtime.name} cannot time at any of"
                          f" the target's precisions ({', '.join(runtime.target.precisions)}); add {stored} to them")
    return path, precisions, None


def _stored_precision(path: Path) -> str:
    if path.suffix != ".onnx":
        return "fp32"  # edgekd checkpoints hold FP32 weights
    from edgekd.estimate import model_precision
    from edgekd.onnx_model import load_onnx

    return model_precision(load_onnx(path))


def _estimate(model: ModelFiles, target: TargetConfig, batch: int, precision: str, result: SweepResult) -> None:
    if target.spec is None or model.onnx is None:
        return
    from edgekd.estimate import estimate_record

    try:
        record = estimate_record(model.onnx, model_name=model.name, target=target, batch=batch, precision=precision)
    except EdgeKDError as exc:
        log.warning("no estimate of %s on %s at %s, batch %d: %s", model.name, target.name, precision, batch, exc)
        return
    result.records.append(record.to_dict())


def _failure(target: TargetConfig, error: str, *, model: str | None = None, batch: int | None = None,
             precision: str | None = None) -> dict[str, Any]:
    return {"target": target.name, "model": model, "batch": batch, "precision": precision, "error": error}
