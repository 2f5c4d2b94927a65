"""Run the stages in order: skip the ones whose fingerprint and files are unchanged, run the rest,
then publish the deployable model and the report."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekd import __version__
from edgekd.config import PipelineConfig, TargetConfig
from edgekd.distributed import from_main, world
from edgekd.fsutil import atomic_write_with, sha256_file
from edgekd.pipeline import runfolder
from edgekd.pipeline.manifest import Manifest, fingerprint, fingerprint_parts, hash_tree, rerun_reason
from edgekd.pipeline.report_data import build_report
from edgekd.pipeline.stage import STAGES, RunContext, StageRecord
from edgekd.progress import NullProgress, Progress
from edgekd.report import write_report
from edgekd.stages import PIPELINE_ORDER, check_data, choose_deployable, preflight, published_models


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    report: dict[str, Any]
    budgets_ok: bool


def run_pipeline(
    config: PipelineConfig,
    *,
    base_dir: Path,
    run_dir: Path,
    targets: list[TargetConfig],
    fresh: bool = False,
    progress: Progress = NullProgress(),
) -> RunResult:
    """Run ``config`` into ``run_dir``; bad input raises EdgeKDError before any stage runs.

    Under torchrun every rank calls this: rank 0 owns the run folder; the other ranks join the
    training stages (``Stage.distributed``) and read everything else from rank 0.
    """
    preflight(config, targets, base_dir)
    ctx = RunContext(config=config, base_dir=base_dir, run_dir=run_dir, targets=targets, progress=progress)
    if not world().is_main:
        return _follow(ctx)
    with runfolder.locked(run_dir), runfolder.writable(run_dir):
        runfolder.prepare(run_dir, fresh)
        manifest = Manifest.load(run_dir)
        manifest.data.update(
            pipeline=config.name, edgekd_version=__version__, config=config.model_dump(mode="json"),
            targets=[t.model_dump(mode="json") for t in targets],
        )
        statuses: dict[str, str] = {}
        records: dict[str, StageRecord] = {}
        data_checked = False
        for stage in _stages(ctx):
            name = stage.name
            upstream = {n: fingerprint(manifest.stages[n]["artifacts"]) for n in stage.needs if n in records}
            inputs = stage.fingerprint_inputs(ctx)
            fp = fingerprint({"stage": name, "version": __version__, "inputs": inputs, "upstream": upstream})
            parts = fingerprint_parts(__version__, inputs, upstream)
            entry = manifest.finished(name, fp)
            if entry is None and not data_checked:  # before the first stage that runs, not on a cached re-run
                check_data(config, ctx.data())
                data_checked = True
            from_main(entry is None)  # tells the other ranks whether to join this stage
            if entry is not None:
                statuses[name] = "cached"
                progress.note(f"{name}: unchanged since the last run, reusing {run_dir / name}")
            else:
                entry = _execute(stage, ctx, fp, parts, records, manifest)
                statuses[name] = "done"
            records[name] = StageRecord(name, run_dir / name, from_main(entry)["outputs"])
        for name in set(manifest.stages) - set(records):
            _drop(manifest, name)
        _publish(manifest, records)
        manifest.data["deployable"] = choose_deployable(config, records)
        manifest.data["last_run"] = {"finished": _now(), "statuses": statuses}
        manifest.save()
        report = build_report(manifest)
        write_report(report, run_dir)
    from_main(report)
    return RunResult(run_dir=run_dir, report=report, budgets_ok=all(b["ok"] for b in report["budgets"]))


def _stages(ctx: RunContext) -> list:
    """The pipeline's stages in order (optional stages it does not configure left out)."""
    stages = [STAGES.get(name)() for name in PIPELINE_ORDER]
    return [stage for stage in stages if stage.enabled(ctx)]


def _follow(ctx: RunContext) -> RunResult:
    """A rank other than 0: train alongside rank 0 where a stage trains, read its results otherwise."""
    records: dict[str, StageRecord] = {}
    for stage in _stages(ctx):
        runs = from_main(None)
        if runs and stage.distributed:
            with tempfile.TemporaryDirectory(prefix=f"edgekd-rank{world().rank}-") as scratch:
                stage.run(ctx, Path(scratch), records)
        entry = from_main(None)
        records[stage.name] = StageRecord(stage.name, ctx.run_dir / stage.name, entry["outputs"])
    report = from_main(None)
    return RunResult(run_dir=ctx.run_dir, report=report, budgets_ok=all(b["ok"] for b in report["budgets"]))


def _execute(stage, ctx: RunContext, fp: str, parts: dict[str, str], records: dict[str, StageRecord],
             manifest: Manifest) -> dict:
    name = stage.name
    reason = rerun_reason(manifest.stages.get(name), fp, parts)
    work = ctx.run_dir / f".{name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ctx.progress.note(f"{name}: running" + (f" ({reason})" if reason else ""))
    started = time.perf_counter()
    try:
        outputs = stage.run(ctx, work, records)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    # Forget the old entry before its folder is replaced: a kill in between leaves a stage to re-run,
    # never a manifest that vouches for files it did not hash.
    if manifest.stages.pop(name, None) is not None:
        manifest.save()
    runfolder.promote(work, ctx.run_dir / name)
    entry = {
        "status": "done",
        "fingerprint": fp,
        "fingerprint_parts": parts,
        "seconds": round(seconds, 3),
        "finished": _now(),
        "artifacts": hash_tree(ctx.run_dir / name),
        "outputs": outputs,
        "processes": world().size if stage.distributed else 1,
    }
    manifest.stages[name] = entry
    manifest.save()
    ctx.progress.note(f"{name}: done in {seconds:.1f} s")
    return entry


def _drop(manifest: Manifest, name: str) -> None:
    """Forget a stage the pipeline no longer has, and its folder."""
    if manifest.stages.pop(name, None) is not None:
        manifest.save()
    shutil.rmtree(manifest.run_dir / name, ignore_errors=True)


def _publish(manifest: Manifest, records: dict[str, StageRecord]) -> None:
    """Copy the deployable model(s) to the top of the run folder, atomically, with their sha256."""
    published = {}
    for source, name in published_models(records):
        target = manifest.run_dir / name
        atomic_write_with(target, lambda tmp, src=source: shutil.copyfile(src, tmp))
        published[name] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    manifest.data["artifacts"] = published


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
