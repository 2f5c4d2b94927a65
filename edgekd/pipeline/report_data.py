"""Assemble report.json's content from a run's manifest (also used by ``edgekd report``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from edgekd import __version__
from edgekd.config import PipelineConfig
from edgekd.pipeline.manifest import Manifest
from edgekd.report import evaluate_budgets
from edgekd.stages import DEPLOYABLE




def build_report(manifest: Manifest) -> dict[str, Any]:
    stages = manifest.stages
    config = PipelineConfig.model_validate(manifest.data["config"])
    exported = stages.get("export", {}).get("outputs", {}).get("models", {})

    models: dict[str, Any] = {}
    if "teacher" in stages:
        models["teacher"] = dict(stages["teacher"]["outputs"]["model"])
    for name, metrics in stages.get("distill", {}).get("outputs", {}).get("models", {}).items():
        models[name] = dict(metrics)
    for name, metrics in models.items():
        metrics["size_bytes"] = exported.get(name, {}).get("size_bytes")

    statuses = manifest.data.get("last_run", {}).get("statuses", {})
    report: dict[str, Any] = {
        "edgekd_version": __version__,
        "pipeline": config.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(manifest.run_dir),
        "deployable": {"model": DEPLOYABLE, "onnx": f"{DEPLOYABLE}.onnx", "precision": "fp32"},
        "models": models,
        "latency": stages.get("profile", {}).get("outputs", {}).get("latency", []),
        "parity": {name: item["parity"] for name, item in exported.items()},
        "stages": {
            name: {"status": statuses.get(name, entry["status"]), "seconds": entry["seconds"]}
            for name, entry in stages.items()
        },
    }
    report["budgets"] = evaluate_budgets(config.budgets, report)
    return report
