"""Assemble report.json's content from a run's manifest (also used by ``edgekd report``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from edgekd import __version__
from edgekd.config import PipelineConfig
from edgekd.pipeline.manifest import Manifest
from edgekd.report import evaluate_budgets




def build_report(manifest: Manifest) -> dict[str, Any]:
    stages = manifest.stages
    config = PipelineConfig.model_validate(manifest.data["config"])
    exported = stages.get("export", {}).get("outputs", {}).get("models", {})

    models: dict[str, Any] = {}
    if "teacher" in stages:
        models["teacher"] = dict(stages["teacher"]["outputs"]["model"])
    for stage in ("distill", "qkd"):
        for name, metrics in stages.get(stage, {}).get("outputs", {}).get("models", {}).items():
            models[name] = dict(metrics)
    for name, metrics in models.items():
        metrics["size_bytes"] = exported.get(name, {}).get("size_bytes")
        if name in exported:  # relative to the run folder, where the file is
            metrics["onnx"] = f"export/{exported[name]['onnx']}"

    deployable = manifest.data["deployable"]
    statuses = manifest.data.get("last_run", {}).get("statuses", {})
    report: dict[str, Any] = {
        "edgekd_version": __version__,
        "pipeline": config.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(manifest.run_dir),
        "deployable": {k: deployable[k] for k in ("model", "onnx", "precision", "reason")},
        "precision_choice": deployable["fastest"],
        "models": models,
        "latency": stages.get("profile", {}).get("outputs", {}).get("latency", []),
        "latency_failures": stages.get("profile", {}).get("outputs", {}).get("failures", []),
        "parity": {name: item["parity"] for name, item in exported.items() if item.get("parity")},
        "preprocessing": stages.get("export", {}).get("outputs", {}).get("preprocessing"),
        "stages": {
            name: {"status": statuses.get(name, entry["status"]), "seconds": entry["seconds"]}
            for name, entry in stages.items()
        },
    }
    report["training"] = _training(config, models)
    report["int8_layers"] = _int8_layer_comparisons(report["latency"])
    report["search"] = _search_summary(stages)
    report["assistants_tried"] = stages.get("distill", {}).get("outputs", {}).get("assistants_tried")
    report["budgets"] = evaluate_budgets(config.budgets, report)
    if report["search"] is not None:  # no candidate within the budget: the run exits 1
        search = report["search"]
        report["budgets"].append({"name": f"search_budget_ms@{search['target']}", "limit": search["budget_ms"],
                                  "value": search["best_trial"]["latency_ms"], "ok": search["met_budget"]})
    return report


def _training(config: PipelineConfig, models: dict[str, Any]) -> dict[str, Any]:
    """How the student was made: the distillation chain, its losses and schedule, and QKD's."""
    distill, qkd = config.stages.distill, config.stages.qkd
    chain = [name for name, m in models.items() if m.get("role") in ("teacher", "assistant", "student")]

    def losses(specs, ce_weight: float) -> list[dict[str, Any]]:
        return [*(spec.model_dump(mode="json", include={"name", "weight", "params"}) for spec in specs),
                {"name": "cross_entropy", "weight": ce_weight, "params": {}}]

    return {
        "chain": chain,
        "distill": {"losses": losses(distill.losses, distill.ce_weight), "epochs": distill.train.epochs,
                    "lr": distill.train.lr, "optimizer": distill.train.optimizer, "generations": distill.generations},
        "qkd": None if qkd is None else {
            "losses": losses(qkd.losses, qkd.ce_weight),
            "epochs": {phase: getattr(qkd, phase).epochs for phase in ("self_studying", "co_studying", "tutoring")},
        },
    }


def _int8_layer_comparisons(latency: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FP32 vs INT8 student, layer by layer, for each (target, batch) where both were profiled."""
    from edgekd.quant.explain import compare_layers
    from edgekd.stages.deploy import FP32_MODEL
    from edgekd.stages.qkd import QKD_MODEL

    by_key = {(r["model"], r["target"], r["batch"]): r for r in latency if r.get("layers")}
    return [
        compare_layers(by_key[(FP32_MODEL, target, batch)], by_key[(QKD_MODEL, target, batch)])
        for (model, target, batch) in by_key
        if model == FP32_MODEL and (QKD_MODEL, target, batch) in by_key
    ]


def _search_summary(stages: dict[str, Any]) -> dict[str, Any] | None:
    """The search stage's result with the target it ran on, or ``None`` without a search.

    A run made before trial rows had a ``score`` ranked its candidates by top-1 accuracy: its
    rows get that as their score, so that ``edgekd report`` re-renders it.
    """
    outputs = stages.get("search", {}).get("outputs")
    if outputs is None:
        return None
    result = {"score": "accuracy", **outputs["result"], "target": outputs["target"]}
    for row in [*result["trials"], *result["pareto"], result["best_trial"]]:
        row.setdefault("score", row["accuracy"])
    return result
