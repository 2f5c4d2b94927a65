"""The torch runtime on the CPU: an edgekd checkpoint timed eagerly, threads restored afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgekd.config.pipeline import ModelSpec, ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import ModelError
from edgekd.runtime import get_runtime
from edgekd.runtime.torch import TorchRuntime

SETTINGS = ProfileConfig(warmup_runs=2, min_time_s=0.05, min_runs=5, max_runs=500)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.models import build_model, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec(name="test_tiny")
    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    save_checkpoint(path, build_model(spec, 10, 1), spec, 10, (1, 8, 8))
    return path


@pytest.mark.parametrize("batch", [1, 16])
def test_profile_checkpoint_on_cpu(checkpoint: Path, batch: int) -> None:
    before = torch.get_num_threads()
    runtime = get_runtime(TargetConfig(name="pt", runtime="torch", threads=1))
    assert isinstance(runtime, TorchRuntime) and runtime.check() == []
    record = runtime.profile(checkpoint, model_name="student", batch=batch, precision="fp32", settings=SETTINGS)
    assert (record.runtime, record.provider, record.threads, record.batch) == ("torch", "cpu", 1, batch)
    assert 0 < record.p50_ms <= record.p99_ms and record.runs >= SETTINGS.min_runs
    assert record.runtime_version == torch.__version__ and record.estimated is False
    assert record.h2d_ms is None and record.cpu_affinity is not None and "forward" in record.method
    assert torch.get_num_threads() == before


def test_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match="not an edgekd checkpoint"):
        get_runtime(TargetConfig(name="pt", runtime="torch")).profile(
            path, model_name="x", batch=1, precision="fp32", settings=SETTINGS)


def test_cuda_without_a_device_says_what_to_install() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    problems = TorchRuntime(TargetConfig(name="g", runtime="torch", device="cuda")).check()
    assert len(problems) == 1 and "install a CUDA build of torch" in problems[0]
