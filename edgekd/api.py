"""The public entry points; the CLI calls these and nothing else."""

from __future__ import annotations

from pathlib import Path

from edgekd.config import PipelineConfig, ProfileConfig, TargetConfig, apply_overrides, load_yaml, validate
from edgekd.progress import NullProgress, Progress
from edgekd.resources import resolve


def load_pipeline(
    pipeline: str | Path = "quickstart", overrides: list[str] = (), targets: list[str] = ()
) -> tuple[PipelineConfig, Path]:
    """The typed pipeline and the folder its relative paths start from.

    Args:
        pipeline: a YAML path or the name of a built-in pipeline.
        overrides: ``key.path=value`` items, applied before validation.
        targets: when given, replace ``stages.profile.targets``.
    """
    path = resolve("pipelines", pipeline)
    data = apply_overrides(load_yaml(path), list(overrides))
    if targets:
        stages = data.setdefault("stages", {})
        if isinstance(stages, dict):  # anything else fails validation below, with the file and key
            profile_stage = stages.setdefault("profile", {})
            if isinstance(profile_stage, dict):
                profile_stage["targets"] = list(targets)
    return validate(PipelineConfig, data, path, overrides), path.resolve().parent


def load_targets(names: list[str], base_dir: Path | None = None) -> list[TargetConfig]:
    """Targets by built-in name or path (relative to the working folder, then ``base_dir``)."""
    from edgekd.targets import load_target

    loaded = []
    for name in names:
        candidate = Path(name)
        if base_dir is not None and not candidate.is_absolute() and not candidate.exists():
            if (base_dir / candidate).is_file():
                name = str(base_dir / candidate)
        loaded.append(load_target(name))
    return loaded


def compress(
    pipeline: str | Path = "quickstart",
    *,
    out: Path | None = None,
    targets: list[str] = (),
    overrides: list[str] = (),
    fresh: bool = False,
    progress: Progress = NullProgress(),
):
    """Run a pipeline end to end; returns a :class:`edgekd.pipeline.runner.RunResult`."""
    from edgekd.pipeline.runner import run_pipeline

    config, base_dir = load_pipeline(pipeline, overrides, targets)
    resolved = load_targets(config.stages.profile.targets, base_dir)
    run_dir = Path(out) if out is not None else Path("runs") / config.name
    return run_pipeline(config, base_dir=base_dir, run_dir=run_dir, targets=resolved, fresh=fresh, progress=progress)


def profile(
    models: Path | list[Path],
    targets: list[str],
    *,
    batch_sizes: list[int] = (),
    settings: ProfileConfig | None = None,
    progress: Progress = NullProgress(),
):
    """Latency of model files on each target, at each precision and batch size.

    Args:
        models: ONNX files, or edgekd checkpoints (``.pt``) for targets whose runtime is torch; each
            is named by its file stem (with its folder where two stems are equal).
        targets: Target names or YAML paths.
        batch_sizes: Batch sizes for every target; default each target's own.
        settings: Warm-up, run counts, per-layer options.
        progress: Receives one task per target.

    Returns:
        A :class:`edgekd.runtime.sweep.SweepResult`: ``records`` (latency dicts) and
        ``failures`` (targets or runs that could not be measured; the others still are).
    """
    from edgekd.errors import ConfigError
    from edgekd.models import load_checkpoint
    from edgekd.onnx_model import load_onnx
    from edgekd.runtime.sweep import ModelFiles, profile_targets

    bad = [b for b in batch_sizes if b < 1]
    if bad:
        raise ConfigError(f"batch size {bad[0]}: give batch sizes of at least 1")
    paths = [Path(m) for m in ([models] if isinstance(models, str | Path) else models)]
    stems = [p.stem for p in paths]
    files = []
    for path in paths:  # a missing or corrupt file fails here, before any target is set up
        name = path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
        if path.suffix == ".pt":
            load_checkpoint(path)
            files.append(ModelFiles(name=name, checkpoint=path))
        else:
            load_onnx(path)
            files.append(ModelFiles(name=name, onnx=path))
    return profile_targets(files, load_targets(list(targets)), settings or ProfileConfig(),
                           batch_sizes=list(batch_sizes) or None, progress=progress)


def export_checkpoint(checkpoint: Path, *, fmt: str = "onnx", out: Path | None = None, opset: int = 17) -> Path:
    """Export an edgekd checkpoint (``*.pt`` from a run folder) to ONNX, or to a TensorRT engine
    for batch 1 (FP16 where the GPU has it) built from an ONNX written beside it."""
    import importlib.util

    from edgekd.errors import ExportError
    from edgekd.export import export_onnx
    from edgekd.models import load_checkpoint

    if fmt not in ("onnx", "tensorrt"):
        raise ExportError(f"format {fmt!r}: choose onnx or tensorrt")
    if Path(checkpoint).suffix == ".onnx":
        raise ExportError(f"{checkpoint} is already an ONNX file; export takes an edgekd checkpoint (.pt), e.g."
                          " RUN/distill/student.pt (the run folder's student.onnx is its ONNX export)")
    target = Path(out) if out is not None else Path(checkpoint).with_suffix(".onnx" if fmt == "onnx" else ".engine")
    if fmt == "tensorrt" and target.suffix == ".onnx":
        raise ExportError(f"--out {target}: give the TensorRT engine another suffix (.engine, .plan); the ONNX"
                          " it is built from is written beside it with .onnx")
    if fmt == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        raise ExportError(
            "--format tensorrt needs TensorRT, which is not installed; on a machine with an NVIDIA GPU run"
            " pip install 'edgekd[tensorrt]', or use --format onnx"
        )
    loaded = load_checkpoint(Path(checkpoint))
    onnx_path = target if fmt == "onnx" else target.with_suffix(".onnx")
    export_onnx(loaded.module, loaded.input_shape, onnx_path, opset)
    if fmt == "onnx":
        return onnx_path
    from edgekd.export.tensorrt import build_engine

    build_engine(onnx_path, target, batch=1)
    return target


def rerender_report(run_dir: Path) -> dict:
    """Re-render report.json/.md/.html of a finished run from its manifest."""
    from edgekd.errors import EdgeKDError
    from edgekd.pipeline.manifest import MANIFEST, Manifest
    from edgekd.pipeline.report_data import build_report
    from edgekd.report import write_report

    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise EdgeKDError(f"{run_dir}: no {MANIFEST}; give the folder of a run made by edgekd compress")
    manifest = Manifest.load(run_dir)
    if "deployable" not in manifest.data:
        raise EdgeKDError(f"{run_dir}: the run did not finish (no deployable model yet); run the same"
                          " edgekd compress command again to finish it")
    report = build_report(manifest)
    write_report(report, run_dir)
    return report
