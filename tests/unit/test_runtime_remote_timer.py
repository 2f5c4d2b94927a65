"""The timing script copied to SSH boards: self-contained, and it times like the local runtime."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from edgekd.runtime.ssh import SCRIPT_NAME, timer_script
from tests.unit.test_runtime_onnxruntime import tiny_cnn

ALLOWED = {"__future__", "json", "os", "platform", "shutil", "subprocess", "sys", "time", "numpy", "onnxruntime",
           "psutil"}


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names |= {"numpy", "onnxruntime"}  # import_runtime() imports exactly these by name
    return names


def test_script_needs_only_the_standard_library_numpy_and_onnxruntime() -> None:
    source = timer_script()
    assert _imports(source) <= ALLOWED
    assert "edgekd" not in _imports(source)
    compile(source, SCRIPT_NAME, "exec", flags=0, dont_inherit=True)


def test_edgekd_never_imports_the_script() -> None:
    code = "import sys, edgekd, edgekd.runtime, edgekd.runtime.ssh; print('edgekd.runtime.remote_timer' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _job(folder: Path, **changes: object) -> Path:
    onnx.save(tiny_cnn(), str(folder / "model.onnx"))
    (folder / SCRIPT_NAME).write_text(timer_script())
    job = {"mode": "onnxruntime", "model": "model.onnx", "seed": 0,
           "input": {"name": "input", "shape": [2, 3, 8, 8], "dtype": "float32"}, "threads": 1,
           "providers": ["CPUExecutionProvider"], "warmup_runs": 2, "min_time_s": 0.02, "min_runs": 5,
           "max_runs": 300, "layer_profile_runs": 3, **changes}
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return path


def test_onnxruntime_job_writes_samples_and_layer_events(tmp_path: Path) -> None:
    job = _job(tmp_path)
    subprocess.run([sys.executable, str(tmp_path / SCRIPT_NAME), str(job)], check=True, capture_output=True)
    result = json.loads((tmp_path / "result.json").read_text())
    import onnxruntime

    assert result["runtime_version"] == onnxruntime.__version__ and result["provider"] == "CPUExecutionProvider"
    assert result["threads"] == 1 and 5 <= len(result["samples_ns"]) <= 300 and min(result["samples_ns"]) > 0
    assert {e["cat"] for e in result["layer_events"]} == {"Session", "Node"}
    assert result["cpu_affinity"] >= 1 and result["python"] and result["host"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "model.onnx", SCRIPT_NAME, "result.json"]


def test_missing_provider_exits_3_with_what_is_missing(tmp_path: Path) -> None:
    job = _job(tmp_path, providers=["NoSuchExecutionProvider"])
    done = subprocess.run([sys.executable, str(tmp_path / SCRIPT_NAME), str(job)], capture_output=True, text=True)
    assert done.returncode == 3
    details = json.loads(done.stderr.strip().splitlines()[-1])
    assert details["missing_providers"] == ["NoSuchExecutionProvider"]
    assert "CPUExecutionProvider" in details["available"]


@pytest.mark.parametrize("command, code", [(["no-such-trtexec", "--onnx=m.onnx"], 4),
                                           ([sys.executable, "-c", "print('hi')"], 0)])
def test_command_job(tmp_path: Path, command: list[str], code: int) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"mode": "command", "argv": command, "outputs": ["times.json"]}))
    (tmp_path / SCRIPT_NAME).write_text(timer_script())
    done = subprocess.run([sys.executable, str(tmp_path / SCRIPT_NAME), str(job)], capture_output=True, text=True)
    assert done.returncode == code
    if code == 0:
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["returncode"] == 0 and result["log"] == "hi\n" and result["files"] == {"times.json": None}
    else:
        assert json.loads(done.stderr.strip().splitlines()[-1]) == {"missing_command": "no-such-trtexec"}
