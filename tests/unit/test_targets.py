"""The built-in targets, the target file's rules, and `edgekd targets list | show | check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.config import validate
from edgekd.config.target import TargetConfig
from edgekd.errors import ConfigError
from edgekd.resources import builtin_dir
from edgekd.targets import builtin_targets, load_target

runner = CliRunner()
BOARDS = ("jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5")


def test_builtin_targets_and_the_template_is_not_listed() -> None:
    assert builtin_targets() == ["jetson-agx-orin", "jetson-orin-nano", "local-cpu", "local-cuda", "raspberry-pi-5"]
    template = load_target(builtin_dir("targets") / "_template.yaml")
    assert template.connection.kind == "ssh" and template.spec is not None


@pytest.mark.parametrize("name", BOARDS)
def test_boards_are_ssh_targets_with_a_spec(name: str) -> None:
    target = load_target(name)
    assert target.connection.kind == "ssh" and target.connection.host
    spec = target.spec
    assert spec is not None
    assert None not in (spec.peak_tops_int8, spec.peak_tflops_fp16, spec.peak_tflops_fp32, spec.memory_bandwidth_gbs)
    assert spec.peak_tops_int8 > spec.peak_tflops_fp16 > spec.peak_tflops_fp32  # dense peaks, INT8 fastest


def test_jetsons_use_trtexec_and_the_pi_onnxruntime_on_four_threads() -> None:
    for name in ("jetson-orin-nano", "jetson-agx-orin"):
        target = load_target(name)
        assert target.runtime == "tensorrt" and target.trtexec.endswith("/trtexec")
    pi = load_target("raspberry-pi-5")
    assert (pi.runtime, pi.threads, pi.providers) == ("onnxruntime", 4, ["CPUExecutionProvider"])


def test_local_cuda_falls_back_to_onnxruntime_then_torch() -> None:
    target = load_target("local-cuda")
    assert (target.runtime, target.fallbacks, target.device) == ("tensorrt", ["onnxruntime", "torch"], "cuda")
    assert target.providers[0] == "CUDAExecutionProvider"


@pytest.mark.parametrize("data, message", [
    ({"connection": {"kind": "ssh", "host": "pi"}, "runtime": "torch"}, "runtime torch runs on local targets only"),
    ({"connection": {"kind": "ssh", "host": "pi"}, "fallbacks": ["onnxruntime"]}, "fallbacks apply to local"),
    ({"connection": {"kind": "ssh", "host": "pi", "workdir": "/tmp/my dir"}}, "workdir"),
    ({"fallbacks": ["tensorrt"]}, "fallbacks"),
    ({"device": "tpu"}, "device"),
    ({"connection": {"kind": "ssh", "host": "pi", "StrictHostKeyChecking": "no"}}, "StrictHostKeyChecking"),
])
def test_target_file_rules(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(TargetConfig, {"name": "t", **data}, "t.yaml")


def test_targets_list_shows_every_builtin_but_the_template() -> None:
    result = runner.invoke(app, ["targets", "list"])
    assert result.exit_code == 0
    for name in builtin_targets():
        assert name in result.stdout
    assert "my-board" not in result.stdout and "_template" not in result.stdout


def test_targets_show_a_board() -> None:
    result = runner.invoke(app, ["targets", "show", "jetson-orin-nano"])
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["connection"]["kind"] == "ssh" and shown["spec"]["memory_bandwidth_gbs"] == 68


def test_targets_check_lists_every_runtime_tried(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a CUDA onnxruntime is installed here: local-cuda is ready")
    result = runner.invoke(app, ["targets", "check", "local-cuda"])
    if result.exit_code == 0:
        pytest.skip("this machine has a ready GPU runtime")
    assert result.exit_code == 2
    assert "tried tensorrt → onnxruntime → torch" in result.stderr
    assert "pip install 'edgekd[tensorrt]'" in result.stderr and "CUDAExecutionProvider" in result.stderr


def test_targets_check_of_an_unreachable_board_names_the_fix(tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text("name: board\nconnection: {kind: ssh, host: 127.0.0.1, port: 1, connect_timeout_s: 3,"
                     f" ssh_config: {tmp_path / 'empty_config'}}}\n")
    (tmp_path / "empty_config").write_text("")
    result = runner.invoke(app, ["targets", "check", str(board)])
    assert result.exit_code == 2
    assert "target board" in result.stderr and "127.0.0.1" in result.stderr
