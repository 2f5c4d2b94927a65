"""Which student is deployed: precision auto/fp32/int8 from the profile and the accuracies."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.api import load_pipeline
from edgekd.pipeline.stage import StageRecord
from edgekd.stages.deploy import choose_deployable


def _records(fp32_ms: float, int8_ms: float, fp32_acc: float = 0.97, int8_acc: float = 0.968,
             fp32_val: float | None = None, int8_val: float | None = None) -> dict:
    def timing(model: str, precision: str, batch: int, p50: float) -> dict:
        return {"model": model, "target": "local-cpu", "precision": precision, "batch": batch, "p50_ms": p50}

    batch32_int8_ms = 1.0 if int8_ms < fp32_ms else 0.5  # the opposite: the decision must read the smallest batch
    latency = [timing("student", "fp32", 1, fp32_ms), timing("student_int8", "int8", 1, int8_ms),
               timing("student", "fp32", 32, 1.0), timing("student_int8", "int8", 32, batch32_int8_ms)]
    folder = Path("unused")
    return {
        "distill": StageRecord("distill", folder,
                               {"models": {"student": {"accuracy": fp32_acc, "val_accuracy": fp32_val}}}),
        "qkd": StageRecord("qkd", folder,
                           {"models": {"student_int8": {"accuracy": int8_acc, "val_accuracy": int8_val}}}),
        "export": StageRecord("export", folder, {"models": {"student": {}, "student_int8": {}}}),
        "profile": StageRecord("profile", folder, {"latency": latency}),
    }


def _config(**qkd):
    config, _ = load_pipeline("quickstart", [f"stages.qkd.{key}={value}" for key, value in qkd.items()])
    return config


@pytest.mark.parametrize(("fp32_ms", "int8_ms", "expected", "why"), [
    (0.020, 0.010, "int8", "2.00× faster"),
    (0.010, 0.020, "fp32", "not faster"),
    (0.0186, 0.0185, "fp32", "only 1.01× faster"),  # inside the timing noise
])
def test_auto_takes_int8_only_when_clearly_faster(fp32_ms, int8_ms, expected, why) -> None:
    chosen = choose_deployable(_config(), _records(fp32_ms, int8_ms))
    assert chosen["precision"] == expected
    assert why in chosen["reason"]
    assert chosen["fastest"][0]["batch"] == 1


def test_auto_states_the_accuracy_change_of_int8() -> None:
    assert "test accuracy (-0.20%)" in choose_deployable(_config(), _records(0.02, 0.01, 0.97, 0.968))["reason"]
    assert "(+0.00%)" in choose_deployable(_config(), _records(0.02, 0.01, 0.97, 0.97))["reason"]


def test_auto_keeps_fp32_when_int8_loses_too_much_accuracy() -> None:
    chosen = choose_deployable(_config(max_accuracy_drop=0.01), _records(0.02, 0.01, fp32_acc=0.97, int8_acc=0.95))
    assert chosen["precision"] == "fp32"
    assert "loses 2.00% test accuracy" in chosen["reason"]


def test_auto_judges_the_accuracy_drop_on_the_validation_split_when_there_is_one() -> None:
    # test says INT8 lost 2 points, validation says it lost none: validation decides
    records = _records(0.02, 0.01, fp32_acc=0.97, int8_acc=0.95, fp32_val=0.96, int8_val=0.96)
    chosen = choose_deployable(_config(max_accuracy_drop=0.01), records)
    assert chosen["precision"] == "int8" and "FP32 validation accuracy (+0.00%)" in chosen["reason"]
    records = _records(0.02, 0.01, fp32_acc=0.97, int8_acc=0.97, fp32_val=0.96, int8_val=0.94)
    assert choose_deployable(_config(max_accuracy_drop=0.01), records)["precision"] == "fp32"


def test_min_speedup_is_the_users_to_set() -> None:
    assert choose_deployable(_config(min_speedup=1.0), _records(0.0186, 0.0185))["precision"] == "int8"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_forced_precision_is_deployed_whatever_the_timings(precision: str) -> None:
    chosen = choose_deployable(_config(precision=precision), _records(0.01, 0.02, int8_acc=0.5))
    assert chosen["precision"] == precision
    assert "INT8 runs at 0.50× FP32's speed on local-cpu at batch 1" in chosen["reason"]
    assert chosen["onnx"] == {"fp32": "student.onnx", "int8": "student.int8.onnx"}[precision]


def test_auto_keeps_fp32_when_the_int8_file_disagrees_with_its_torch_model() -> None:
    records = _records(0.02, 0.01)
    records["qkd"].outputs["models"]["student_int8"]["parity"] = {
        "max_abs_diff": 0.02, "top1_agreement": 0.9694, "samples": 360, "min_top1_agreement": 0.97, "ok": False}
    chosen = choose_deployable(_config(), records)
    assert chosen["precision"] == "fp32"
    assert "agrees with its torch model on only 96.94% of 360 test images (needed 97%)" in chosen["reason"]


def test_the_not_faster_reason_gives_p50_as_the_tables_do() -> None:
    assert "p50 0.0200 ms vs FP32 0.0100 ms" in choose_deployable(_config(), _records(0.01, 0.02))["reason"]


def test_auto_says_when_the_int8_it_did_not_ship_is_clearly_more_accurate() -> None:
    slower_but_better = choose_deployable(_config(), _records(0.01, 0.02, fp32_acc=0.39, int8_acc=0.61))
    assert slower_but_better["precision"] == "fp32"
    assert "INT8 is 22.00% more accurate on test: set stages.qkd.precision: int8 to ship it" in slower_but_better["reason"]
    assert "more accurate" not in choose_deployable(_config(), _records(0.01, 0.02))["reason"]
