"""Two worker processes share one SQLite study, each rebuilt from the storage alone (what
``edgekd search-worker --storage URL --study NAME`` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from edgekd.config import DataConfig, ModelSpec, ProfileConfig, TeacherConfig, TrainConfig
from edgekd.data import load_data
from edgekd.distill import train_model
from edgekd.models import build_model, save_checkpoint
from edgekd.search import ProxyConfig, SearchSettings, WorkerSource, build_space, start_study
from edgekd.targets import load_target

pytestmark = pytest.mark.slow

TRIALS = 6

# Each worker imports everything, says it is ready, and waits for the go file, so that both
# start their trials together (a process start takes seconds on a busy machine).
WORKER = """
import json, sys, time, warnings
from pathlib import Path
import torch
from edgekd.search import worker_from_storage
warnings.simplefilter("ignore", DeprecationWarning)
torch.set_num_threads(1)
folder = Path(sys.argv[3])
(folder / f"ready{sys.argv[4]}").touch()
while not (folder / "go").exists():
    time.sleep(0.05)
print(json.dumps(worker_from_storage(sys.argv[1], sys.argv[2])))
"""


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    spec = ModelSpec(name="plain_cnn", params={"channels": [16, 32]})
    data = load_data(DataConfig(kind="digits"), 0)
    torch.manual_seed(0)
    teacher = build_model(spec, data.num_classes, data.input_shape[0])
    train_model(teacher, data.train, TrainConfig(epochs=1, lr=0.1), default_batch_size=64, seed=0)
    save_checkpoint(tmp_path / "teacher.pt", teacher, spec, data.num_classes, data.input_shape)
    source = WorkerSource(teacher=TeacherConfig(model=spec, weights=tmp_path / "teacher.pt"),
                          data=DataConfig(kind="digits"), seed=0)
    space = build_space("plain_cnn", {"channels": [[4, 8, 16], [8, 16, 32]], "kernel_size": [3, 5]})
    settings = SearchSettings(budget_ms=1000.0, n_trials=TRIALS, proxy=ProxyConfig(epochs=1, data_fraction=0.3),
                              profile=ProfileConfig(warmup_runs=2, min_time_s=0.01, min_runs=5, layer_profile_runs=0))
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    start_study(space, data, load_target("local-cpu"), settings, storage=storage, study_name="shared", source=source)

    workers = [subprocess.Popen([sys.executable, "-c", WORKER, storage, "shared", str(tmp_path), str(i)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a worker did not start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [w.communicate(timeout=240) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    numbers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    assert all(numbers), f"both workers run trials: {numbers}"
    assert not set(numbers[0]) & set(numbers[1])
    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t.number for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert sorted(numbers[0] + numbers[1]) == complete and len(complete) == TRIALS
