"""export: every model of the chain to ONNX (FP32, dynamic batch), each checked against torch, plus
the INT8 files the qkd stage exported, gathered here so the profile stage finds every model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord
from edgekd.stages.chain import TEACHER_CHECKPOINT, checkpoint_name, load_teacher_module


@STAGES.register("export")
class ExportStage(Stage):
    name = "export"
    needs = ("teacher", "distill", "qkd")

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        return {"export": ctx.config.stages.export.model_dump(mode="json"), "data": ctx.data_inputs()}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.data import preprocessing
        from edgekd.export import check_parity, export_onnx, write_preprocessing
        from edgekd.models import load_checkpoint

        cfg = ctx.config.stages.export
        data = ctx.data()
        spec = preprocessing(data, ctx.config.data)
        parity_inputs = data.test.tensors[0][: cfg.parity_samples]
        modules = {"teacher": load_teacher_module(ctx, inputs["teacher"])}
        distill_dir = inputs["distill"].dir
        for name in inputs["distill"].outputs["models"]:
            modules[name] = load_checkpoint(distill_dir / checkpoint_name(name)).module
        exported: dict[str, Any] = {}
        ctx.progress.start("export", total=len(modules))
        for name, module in modules.items():
            path = work_dir / f"{name}.onnx"
            export_onnx(module, data.input_shape, path, cfg.opset)
            write_preprocessing(path, spec)
            parity = check_parity(
                module, path, parity_inputs, atol=cfg.atol, min_top1_agreement=cfg.min_top1_agreement
            )
            exported[name] = {"onnx": path.name, "precision": "fp32", "size_bytes": path.stat().st_size,
                              "parity": parity.to_dict()}
            checkpoint = (inputs["teacher"].dir / TEACHER_CHECKPOINT if name == "teacher"
                          else distill_dir / checkpoint_name(name))
            if checkpoint.exists():  # a user's TorchScript or exported teacher has none
                exported[name]["checkpoint"] = str(checkpoint.relative_to(ctx.run_dir))
            ctx.progress.advance("export", status=name)
        ctx.progress.finish("export")
        if "qkd" in inputs:
            for name, model in inputs["qkd"].outputs["models"].items():
                path = work_dir / model["onnx"]
                write_preprocessing(path, spec, source=inputs["qkd"].dir / model["onnx"])
                exported[name] = {"onnx": path.name, "precision": "int8", "size_bytes": path.stat().st_size,
                                  "parity": model.get("parity")}
        return {"models": exported, "preprocessing": spec}
