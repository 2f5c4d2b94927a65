"""Checks that need no training: bad input fails here, before any stage runs or any file changes."""

from __future__ import annotations

from pathlib import Path

from edgekd.config import PipelineConfig, TargetConfig
from edgekd.errors import ConfigError, DataError, EdgeKDError, TargetError


def preflight(config: PipelineConfig, targets: list[TargetConfig], base_dir: Path) -> None:
    from edgekd.data import DATASETS, resolve_data_path
    from edgekd.distill.checks import check_losses
    from edgekd.runtime import get_runtime

    _named(lambda: DATASETS.get(config.data.kind), "data.kind")
    data_path = resolve_data_path(config.data, base_dir)
    if data_path is not None and not data_path.exists():
        raise DataError(f"data.path: {config.data.path} does not exist (relative paths start at {base_dir})")
    teacher = config.stages.teacher
    teacher_model = None
    if teacher.model is not None:
        teacher_model = _shape_only(teacher.model, "stages.teacher.model")
    for field in ("weights", "torchscript", "export_archive"):
        path = getattr(teacher, field)
        if path is not None and not (path if path.is_absolute() else base_dir / path).is_file():
            raise ConfigError(f"stages.teacher.{field}: {path} does not exist (relative paths start at {base_dir})")
    distill = config.stages.distill
    learners = []
    for i, spec in enumerate([] if distill.assistants == "auto" else distill.assistants):
        learners.append(_shape_only(spec, f"stages.distill.assistants.{i}"))
    if distill.student is not None:  # else the search stage picks it
        student = _shape_only(distill.student, "stages.distill.student")
        learners += [student] * distill.generations
    untappable = ("a TorchScript module" if teacher.torchscript else
                  "a torch.export archive" if teacher.export_archive else None)
    check_losses(distill.losses, "stages.distill", teacher_model, learners, untappable)
    if config.stages.search is not None:
        _check_search(config, targets)
    if config.stages.qkd is not None:
        _check_qkd(config)

    names = [t.name for t in targets]
    for target_name in config.budgets.max_latency_p50_ms:
        if target_name not in names:
            raise ConfigError(
                f"budgets.max_latency_p50_ms: target {target_name!r} is not profiled (profiled: {', '.join(names)});"
                " add it to stages.profile.targets or pass --target"
            )
    for target in targets:
        problems = get_runtime(target).check()
        if problems:
            raise TargetError(f"target {target.name}: {'; '.join(problems)}")


def check_data(config: PipelineConfig, data) -> None:
    """Checks that need the loaded data (:class:`~edgekd.data.DataSplits`) but no training; the
    runner calls it before the first stage that has to run."""
    qkd = config.stages.qkd
    if qkd is not None and len(data.train) < qkd.calibration_samples:
        raise DataError(
            f"stages.qkd.calibration_samples: {qkd.calibration_samples} asked, but the training split has"
            f" {len(data.train)} samples; set calibration_samples to at most {len(data.train)}"
        )


def _check_search(config: PipelineConfig, targets: list[TargetConfig]) -> None:
    from edgekd.search import build_space
    from edgekd.stages.search import search_target, settings

    search = config.stages.search
    build_space(search.space, search.choices, "stages.search.choices")
    target = search_target(config, targets)
    if search.budget_from is not None:
        _shape_only(search.budget_from, "stages.search.budget_from")
    settings(config, target.name)


def _check_qkd(config: PipelineConfig) -> None:
    """The qkd losses build, and co-studying, which exchanges logits only, gets a logit loss."""
    from edgekd.distill import build_losses
    from edgekd.quant.qkd import check_co_studying_losses

    qkd = config.stages.qkd
    losses = [loss for _, loss in build_losses(qkd.losses, "stages.qkd")]
    if qkd.co_studying.epochs == 0:
        return
    if not losses:
        raise ConfigError("stages.qkd.losses: co-studying needs a distillation loss; add one such as"
                          " {name: hinton}, or skip the phase with co_studying.epochs: 0")
    _named(lambda: check_co_studying_losses(losses), "stages.qkd.losses")


def _shape_only(spec, where: str):
    """``spec`` built on torch's meta device: its modules and names, no memory for its weights, so
    that a model too large for this machine (a width of 10⁵ typed by mistake) is not allocated here."""
    import torch

    from edgekd.models import build_model

    with torch.device("meta"):
        return _named(lambda: build_model(spec, 2, 1), where)


def _named(build, where: str):
    try:
        return build()
    except EdgeKDError as exc:
        raise type(exc)(f"{where}: {exc}") from None
