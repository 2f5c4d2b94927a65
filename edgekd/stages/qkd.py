"""qkd: the distilled student → INT8 by quantization-aware distillation, with the two baselines
that answer "was QKD worth it": ONNX Runtime post-training quantization and label-only QAT."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord
from edgekd.stages.chain import checkpoint_name, load_teacher_module

QKD_MODEL = "student_int8"
PTQ_MODEL = "student_ptq"
QAT_MODEL = "student_qat"
DEPLOY_CHOICE = {"precision", "max_accuracy_drop", "min_speedup"}
"""Settings of stages.qkd read only after profiling, to choose the deployable model."""


@STAGES.register("qkd")
class QKDStage(Stage):
    name = "qkd"
    distributed = True
    needs = ("teacher", "distill")

    def enabled(self, ctx: RunContext) -> bool:
        return ctx.config.stages.qkd is not None

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        qkd = ctx.config.stages.qkd.model_dump(mode="json", exclude=DEPLOY_CHOICE)
        return {"qkd": qkd, "int8_form": int8_form(ctx), "data": ctx.data_inputs()}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.distill import build_losses
        from edgekd.export import export_onnx
        from edgekd.models import load_checkpoint
        from edgekd.quant import ensure_nncf_extension, ort_static_ptq, quantize_for_training, run_qkd
        from edgekd.quant.qkd import check_same_classes

        cfg = ctx.config.stages.qkd
        data = ctx.data()
        seed = ctx.config.seed
        batch_size = ctx.config.data.batch_size
        teacher = load_teacher_module(ctx, inputs["teacher"])
        loaded = load_checkpoint(inputs["distill"].dir / checkpoint_name("student"))
        student = loaded.module
        check_same_classes(student, teacher, data)
        calib = data.train.tensors[0][: cfg.calibration_samples]
        ensure_nncf_extension(ctx.progress.note)

        def quantized() -> torch.nn.Module:
            return quantize_for_training(student, calib, subset_size=cfg.calibration_samples, bits=cfg.bits,
                                         progress_note=ctx.progress.note)

        qstudent = quantized()
        torch.manual_seed(seed)
        result, _ = run_qkd(
            qstudent, teacher, data,
            self_studying=cfg.self_studying, co_studying=cfg.co_studying, tutoring=cfg.tutoring,
            losses=build_losses(cfg.losses, "stages.qkd"), ce_weight=cfg.ce_weight,
            teacher_cfg=cfg.co_studying_teacher, batch_size=batch_size, seed=seed, progress=ctx.progress,
        )
        arch = {"family": loaded.spec.name if loaded.spec else "user", **_architecture(student, data.input_shape)}
        models = {QKD_MODEL: self._finish(ctx, qstudent, work_dir / f"{QKD_MODEL}.onnx", arch, role="quantized",
                                          method="qkd")}
        histories: dict[str, Any] = {QKD_MODEL: {
            "phases": {phase: trained.history for phase, trained in result.phases.items()},
            "teacher": result.teacher_history,
        }}

        if cfg.baselines:
            fp32 = work_dir / "student_fp32.onnx"
            export_onnx(student, data.input_shape, fp32)
            ptq = work_dir / f"{PTQ_MODEL}.onnx"
            ort_static_ptq(fp32, ptq, calib.numpy())
            fp32.unlink()
            models[PTQ_MODEL] = self._describe(ctx, ptq, arch, role="quantized-baseline", method="ort-ptq")

            qat = quantized()
            from edgekd.distill import train_model

            torch.manual_seed(seed)
            histories[QAT_MODEL] = train_model(
                qat, data.train, cfg.qat_baseline_train,
                default_batch_size=batch_size, seed=seed, val_set=data.val, progress=ctx.progress,
                task="qat (labels only)",
            ).history
            models[QAT_MODEL] = self._finish(ctx, qat, work_dir / f"{QAT_MODEL}.onnx", arch, role="quantized-baseline",
                                             method="nncf-qat")
        return {"models": models, "history": histories}

    def _finish(self, ctx: RunContext, qmodel: torch.nn.Module, path: Path, arch: dict[str, Any], *, role: str,
                method: str) -> dict[str, Any]:
        """Export a trained quantized model to INT8 ONNX at ``path`` and describe it."""
        from edgekd.export import measure_parity
        from edgekd.quant import export_int8_onnx, strip

        data = ctx.data()
        stripped = strip(copy.deepcopy(qmodel), data.input_shape).eval()
        export_int8_onnx(stripped, data.input_shape, path, unsigned_after_relu=int8_form(ctx) == "onnxruntime")
        export_cfg = ctx.config.stages.export
        # INT8 kernels round differently from torch's fake quantization: logits may move by a
        # quantization step, so parity is judged on top-1 agreement, not on a float tolerance. It is
        # recorded, not fatal: the file's own accuracy is measured by ONNX Runtime, and `auto` does
        # not deploy an INT8 student that disagrees (a baseline never stops the run).
        parity = measure_parity(stripped, path, data.test.tensors[0][: export_cfg.parity_samples])
        needed = export_cfg.min_top1_agreement - 0.02
        described = self._describe(ctx, path, arch, role=role, method=method)
        described["parity"] = {**parity.to_dict(), "min_top1_agreement": needed,
                               "ok": parity.top1_agreement >= needed}
        return described

    @staticmethod
    def _describe(ctx: RunContext, path: Path, arch: dict[str, Any], *, role: str, method: str) -> dict[str, Any]:
        import onnx

        from edgekd.export import onnx_accuracy
        from edgekd.quant import check_tensorrt_qdq

        data = ctx.data()
        violations = check_tensorrt_qdq(onnx.load(str(path)))
        return {
            "role": role,
            "method": method,
            "precision": "int8",
            "int8_form": "tensorrt" if method == "ort-ptq" else int8_form(ctx),
            "onnx": path.name,
            "accuracy": onnx_accuracy(path, *data.test.tensors),
            "val_accuracy": onnx_accuracy(path, *data.val.tensors) if len(data.val) else None,
            **arch,
            "qdq_violations": [v.to_dict() for v in violations],
        }


def int8_form(ctx: RunContext) -> str:
    """The INT8 graph form the NNCF models are exported in (see ``QKDConfig.int8_form``)."""
    form = ctx.config.stages.qkd.int8_form
    if form != "auto":
        return form
    cpu_onnxruntime = all(t.runtime == "onnxruntime" and t.providers == ["CPUExecutionProvider"] for t in ctx.targets)
    return "onnxruntime" if cpu_onnxruntime else "tensorrt"


def _architecture(module: torch.nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    """Parameters and MACs of the FP32 architecture the INT8 models share."""
    from edgekd.models import count_macs, count_params

    return {"params": count_params(module), "macs": count_macs(module, input_shape)}
