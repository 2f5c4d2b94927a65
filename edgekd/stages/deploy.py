"""Which student a user deploys: FP32, or INT8 where the qkd stage made one and it pays off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.config import PipelineConfig
from edgekd.pipeline.stage import StageRecord
from edgekd.report.tables import fmt_ms
from edgekd.stages.qkd import QKD_MODEL

FP32_MODEL = "student"
PUBLISHED = {FP32_MODEL: "student.onnx", QKD_MODEL: "student.int8.onnx"}


def published_models(records: dict[str, StageRecord]) -> list[tuple[Path, str]]:
    """(file in the export stage, name at the top of the run folder) of each deployable student."""
    export = records["export"]
    models = export.outputs["models"]
    return [(export.dir / models[name]["onnx"], published) for name, published in PUBLISHED.items() if name in models]


def choose_deployable(config: PipelineConfig, records: dict[str, StageRecord]) -> dict[str, Any]:
    """The deployable model, why it was chosen, and per target which precision ran fastest."""
    fp32 = {"model": FP32_MODEL, "onnx": PUBLISHED[FP32_MODEL], "precision": "fp32"}
    qkd = config.stages.qkd
    if qkd is None or QKD_MODEL not in records["export"].outputs["models"]:
        return {**fp32, "reason": "no qkd stage in the pipeline", "fastest": []}
    int8 = {"model": QKD_MODEL, "onnx": PUBLISHED[QKD_MODEL], "precision": "int8"}
    fastest = fastest_precision(records["profile"].outputs.get("latency", []))
    if qkd.precision != "auto":
        speed = (f"; INT8 runs at {fastest[0]['speedup']:.2f}× FP32's speed on {fastest[0]['target']} at batch"
                 f" {fastest[0]['batch']}" if fastest else "")
        chosen = fp32 if qkd.precision == "fp32" else int8
        return {**chosen, "reason": f"stages.qkd.precision is {qkd.precision}{speed}", "fastest": fastest}

    drop, split = _accuracy_drop(records)
    parity = records["qkd"].outputs["models"][QKD_MODEL].get("parity") or {}
    if parity.get("ok") is False:
        reason = (f"auto: the INT8 file agrees with its torch model on only {parity['top1_agreement']:.2%} of"
                  f" {parity['samples']} test images (needed {parity['min_top1_agreement']:.0%})")
        return {**fp32, "reason": reason, "fastest": fastest}
    if not fastest:
        return {**fp32, "reason": "auto: no target timed both precisions", "fastest": fastest}
    first = fastest[0]
    # kept FP32 for speed although INT8 scored clearly better: say so, the trade is the user's
    better = (f"; INT8 is {-drop:.2%} more accurate on {split}: set stages.qkd.precision: int8 to ship it"
              if -drop > qkd.max_accuracy_drop else "")
    if first["fastest"] != "int8":
        reason = (f"auto: INT8 is not faster on {first['target']} (p50 {fmt_ms(first['int8_p50_ms'])} ms vs FP32 "
                  f"{fmt_ms(first['fp32_p50_ms'])} ms at batch {first['batch']}){better}")
        return {**fp32, "reason": reason, "fastest": fastest}
    if first["speedup"] < qkd.min_speedup:
        reason = (f"auto: INT8 is only {first['speedup']:.2f}× faster on {first['target']} at batch {first['batch']}"
                  f" (min_speedup {qkd.min_speedup:g}×: a smaller gain is within timing noise){better}")
        return {**fp32, "reason": reason, "fastest": fastest}
    if drop > qkd.max_accuracy_drop:
        reason = (f"auto: INT8 is {first['speedup']:.2f}× faster on {first['target']} but loses {drop:.2%} "
                  f"{split} accuracy (allowed {qkd.max_accuracy_drop:.2%})")
        return {**fp32, "reason": reason, "fastest": fastest}
    change = 0.0 - drop  # not -drop: -0.0 prints as "-0.00%"
    reason = (f"auto: INT8 is {first['speedup']:.2f}× faster on {first['target']} at batch {first['batch']} and "
              f"within {qkd.max_accuracy_drop:.2%} of FP32 {split} accuracy ({change:+.2%})")
    return {**int8, "reason": reason, "fastest": fastest}


def _accuracy_drop(records: dict[str, StageRecord]) -> tuple[float, str]:
    """FP32 minus INT8 accuracy, and the split it is measured on: validation where there is one,
    so that the choice of what to deploy is not made on the split the report then scores it on."""
    models = {**records["distill"].outputs["models"], **records["qkd"].outputs["models"]}
    fp32, int8 = models[FP32_MODEL], models[QKD_MODEL]
    if fp32.get("val_accuracy") is not None and int8.get("val_accuracy") is not None:
        return fp32["val_accuracy"] - int8["val_accuracy"], "validation"
    return fp32["accuracy"] - int8["accuracy"], "test"


def fastest_precision(latency: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and batch where both students were timed: FP32 vs INT8 p50, in profile order."""
    p50 = {(r["target"], r["batch"], r["model"], r["precision"]): r["p50_ms"]
           for r in latency if not r.get("estimated")}
    rows = []
    for target, batch in dict.fromkeys((r["target"], r["batch"]) for r in latency):
        fp32 = p50.get((target, batch, FP32_MODEL, "fp32"))
        int8 = p50.get((target, batch, QKD_MODEL, "int8"))
        if fp32 is None or int8 is None:
            continue
        rows.append({"target": target, "batch": batch, "fp32_p50_ms": fp32, "int8_p50_ms": int8,
                     "speedup": fp32 / int8, "fastest": "int8" if int8 < fp32 else "fp32"})
    rows.sort(key=lambda row: row["batch"])  # the smallest batch first: the latency a budget reads
    order = list(dict.fromkeys(r["target"] for r in latency))
    rows.sort(key=lambda row: order.index(row["target"]))
    return rows
