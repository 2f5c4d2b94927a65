"""SSH targets against a real sshd on 127.0.0.1: copy, run, collect, clean up, and the ways it fails.

The fixture's sshd and the client config are in tests/integration/conftest.py; host-key
checking is on throughout (the known_hosts file holds the generated host key).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import onnx
import pytest
import yaml
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import HardwareSpec
from edgekd.errors import EdgeKDError, TargetError
from edgekd.runtime import get_runtime
from edgekd.runtime.onnxruntime import OnnxRuntime
from tests.conftest import TINY_PIPELINE, write_pipeline
from tests.integration.conftest import LoopbackSshd, free_port
from tests.unit.test_runtime_onnxruntime import tiny_cnn

SETTINGS = ProfileConfig(warmup_runs=2, min_time_s=0.05, min_runs=5, max_runs=5000, layer_profile_runs=3,
                         top_layers=3)
runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(tiny_cnn(), str(path))
    return path


def _profile(target, model: Path, settings: ProfileConfig = SETTINGS):
    return get_runtime(target).profile(model, model_name="tiny", batch=2, precision="fp32", settings=settings)


def test_copy_run_collect_and_clean_up(sshd: LoopbackSshd, model: Path) -> None:
    record = _profile(sshd.target(), model)
    import onnxruntime

    assert record.estimated is False and record.target == "loopback" and record.batch == 2
    assert 0 < record.p50_ms <= record.p90_ms <= record.p99_ms and record.runs >= SETTINGS.min_runs
    assert (record.runtime, record.runtime_version) == ("onnxruntime", onnxruntime.__version__)
    assert (record.provider, record.threads) == ("CPUExecutionProvider", 1)
    assert record.cpu_affinity >= 1 and "over SSH" in record.method
    assert 0 < len(record.layers) <= SETTINGS.top_layers
    assert list(sshd.workdir.iterdir()) == []  # the run's remote folder is gone


def test_remote_p50_is_close_to_the_local_one(sshd: LoopbackSshd, model: Path) -> None:
    """Same machine, same session options and threads: the medians agree (loosely: the machine is shared)."""
    settings = SETTINGS.model_copy(update={"min_time_s": 0.3, "layer_profile_runs": 0})
    target = sshd.target()
    local = OnnxRuntime(target.model_copy(update={"connection": target.connection.model_copy(
        update={"kind": "local"})}))
    remote_p50 = _profile(target, model, settings).p50_ms
    local_p50 = local.profile(model, model_name="tiny", batch=2, precision="fp32", settings=settings).p50_ms
    assert 0.5 < remote_p50 / local_p50 < 2.0


def test_targets_check_and_profile_from_the_cli(sshd: LoopbackSshd, model: Path, tmp_path: Path) -> None:
    board = tmp_path / "loopback.yaml"
    board.write_text(yaml.safe_dump(sshd.target().model_dump(mode="json")))
    check = runner.invoke(app, ["targets", "check", str(board)])
    assert check.exit_code == 0, check.output
    assert "reachable as edgekd-loopback" in check.stdout and "onnxruntime 1." in check.stdout
    out = tmp_path / "records.json"
    result = runner.invoke(app, ["profile", str(model), "--target", "local-cpu", "--target", str(board),
                                 "--batch", "1", "--min-time", "0.05", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| tiny | loopback | fp32 | 1 |" in result.stdout
    assert {(r["target"], r["estimated"]) for r in json.loads(out.read_text())} == {
        ("local-cpu", False), ("loopback", False)}


def test_wrong_port_fails_fast_and_says_what_to_check(sshd: LoopbackSshd, model: Path) -> None:
    target = sshd.target(host="127.0.0.1", port=free_port(), ssh_config=None, identity_file=str(sshd.identity_file),
                         known_hosts=str(sshd.known_hosts))
    start = time.monotonic()
    with pytest.raises(TargetError) as info:
        _profile(target, model)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert message.startswith("target loopback:") and "Connection refused" in message
    assert "check the board is on and reachable" in message


def test_unknown_host_key_is_refused(sshd: LoopbackSshd, model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = sshd.target(host="127.0.0.1", port=sshd.port, ssh_config=None, identity_file=str(sshd.identity_file),
                         known_hosts=str(empty))
    with pytest.raises(TargetError, match="host key is unknown or changed.*never skips host-key checks"):
        _profile(target, model)


def test_missing_runtime_on_the_board_names_the_fix(sshd: LoopbackSshd, model: Path, tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    target = sshd.target(python=python)
    with pytest.raises(TargetError) as info:
        _profile(target, model)
    message = str(info.value)
    assert message.startswith("target loopback: onnxruntime numpy not installed")
    assert f"{python} -m pip install onnxruntime numpy" in message
    assert list(sshd.workdir.iterdir()) == []
    findings = get_runtime(target).diagnose()
    assert [f.ok for f in findings] == [True, True, False, False]
    assert "pip install onnxruntime" in findings[2].message


def test_missing_python_on_the_board(sshd: LoopbackSshd, model: Path) -> None:
    with pytest.raises(TargetError, match="no-such-python failed.*set connection.python"):
        _profile(sshd.target(python="/no-such-python"), model)


def test_sshd_killed_mid_run_is_an_error_not_a_hang(own_sshd: LoopbackSshd, model: Path) -> None:
    long_run = SETTINGS.model_copy(update={"min_time_s": 120.0, "max_runs": 10**9, "layer_profile_runs": 0})
    outcome: dict[str, object] = {}

    def profile() -> None:
        try:
            outcome["record"] = _profile(own_sshd.target(), model, long_run)
        except EdgeKDError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=profile)
    thread.start()
    deadline = time.monotonic() + 30
    while not any((d / "job.json").exists() for d in own_sshd.workdir.iterdir()):  # the script is being started
        assert time.monotonic() < deadline, "the model never reached the board"
        time.sleep(0.05)
    time.sleep(1.0)
    killed = time.monotonic()
    own_sshd.kill()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert time.monotonic() - killed < 20
    error = outcome.get("error")
    assert isinstance(error, TargetError), outcome
    assert str(error).startswith("target loopback:") and "run the timing script" in str(error)


@pytest.mark.slow
def test_compress_reports_the_other_targets_when_a_board_fails(tmp_path: Path) -> None:
    """The pipeline: an unreachable board with a spec gets a failure and estimates; local-cpu is measured."""
    board = tmp_path / "board.yaml"
    (tmp_path / "empty_ssh_config").write_text("")
    board.write_text(yaml.safe_dump({
        "name": "board", "connection": {"kind": "ssh", "host": "127.0.0.1", "port": free_port(),
                                        "connect_timeout_s": 3, "ssh_config": str(tmp_path / "empty_ssh_config")},
        "spec": HardwareSpec(peak_tflops_fp32=1.0, memory_bandwidth_gbs=20.0).model_dump(mode="json"),
    }))
    pipeline = write_pipeline(tmp_path, {**TINY_PIPELINE, "budgets": {"min_accuracy": 0.0}})
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(pipeline), "--out", str(run_dir), "--target", "local-cpu",
                                 "--target", str(board)])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "report.json").read_text())
    by_target = {(r["target"], r["estimated"]) for r in report["latency"]}
    assert ("local-cpu", False) in by_target and ("board", True) in by_target and ("board", False) not in by_target
    manifest = json.loads((run_dir / "manifest.json").read_text())
    failures = manifest["stages"]["profile"]["outputs"]["failures"]
    assert [f["target"] for f in failures] == ["board"] and "Connection refused" in failures[0]["error"]
    assert report["latency_failures"] == failures
    assert "Not measured:" in (run_dir / "report.md").read_text() and "(estimated)" in (run_dir / "report.md").read_text()


def test_a_run_past_the_timeout_is_stopped_and_named(own_sshd: LoopbackSshd, model: Path) -> None:
    long_run = SETTINGS.model_copy(update={"min_time_s": 60.0, "max_runs": 10**9, "layer_profile_runs": 0})
    start = time.monotonic()
    with pytest.raises(TargetError, match=r"did not finish \(run the timing script\) within 3 s.*connection.timeout_s"):
        _profile(own_sshd.target(timeout_s=3.0), model, long_run)
    assert time.monotonic() - start < 20
    assert list(own_sshd.workdir.iterdir()) == []  # cleaned up although the script still runs there
