"""Shared fixtures: a shrunken quickstart that runs end to end in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_PIPELINE = {
    "name": "tiny",
    "seed": 0,
    "data": {"kind": "digits", "batch_size": 64},
    "stages": {
        "teacher": {"model": {"name": "resnet_cifar", "params": {"depth": 8, "width": 8}},
                    "train": {"epochs": 2, "lr": 0.05}},
        "distill": {
            "assistants": [{"name": "plain_cnn", "params": {"channels": [8, 16]}}],
            "student": {"name": "test_tiny"},
            "train": {"epochs": 1, "lr": 0.05},
        },
        "profile": {"targets": ["local-cpu"], "batch_sizes": [1], "min_time_s": 0.01, "min_runs": 5,
                    "warmup_runs": 2, "layer_profile_runs": 2},
    },
    "budgets": {"min_accuracy": 0.0, "max_latency_p50_ms": {"local-cpu": 1000.0}},
}


def write_pipeline(folder: Path, data: dict = TINY_PIPELINE, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def tiny_pipeline(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path)
