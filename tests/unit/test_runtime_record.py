"""LatencyRecord: optional measurements are left out of its dict until measured, and round-trip."""

from __future__ import annotations

import json

import pytest

from edgekd.errors import RuntimeBackendError
from edgekd.profiling import summarize
from edgekd.runtime import LatencyRecord, LayerTime
from edgekd.runtime.base import cpu_affinity

COMMON = {"model": "m", "target": "t", "runtime": "torch", "precision": "fp32", "batch": 4, "threads": None,
          "runtime_version": "2.13.0", "provider": "cuda"}


def test_unmeasured_optional_fields_are_left_out() -> None:
    record = LatencyRecord.from_stats(summarize([1_000_000, 2_000_000, 3_000_000]), **COMMON)
    data = record.to_dict()
    assert not {"h2d_ms", "compute_ms", "d2h_ms", "cpu_affinity", "method"} & set(data)
    assert data["p50_ms"] == 2.0 and data["throughput"] == pytest.approx(2000.0)
    assert LatencyRecord.from_dict(data) == record


def test_measured_optional_fields_round_trip_through_json() -> None:
    record = LatencyRecord.from_stats(
        summarize([1_000_000, 3_000_000]), **COMMON, layers=(LayerTime("conv", "Conv", 0.5, 0.25),),
        h2d_ms=0.1, compute_ms=1.7, d2h_ms=0.2, cpu_affinity=2, method="CUDA events",
    )
    data = json.loads(json.dumps(record.to_dict()))
    assert (data["h2d_ms"], data["compute_ms"], data["d2h_ms"], data["cpu_affinity"]) == (0.1, 1.7, 0.2, 2)
    assert LatencyRecord.from_dict(data) == record


def test_from_dict_names_missing_and_unknown_fields() -> None:
    data = LatencyRecord.from_stats(summarize([1_000_000]), **COMMON).to_dict()
    del data["p50_ms"]
    data["p42_ms"] = 1.0
    with pytest.raises(RuntimeBackendError, match=r"missing fields \['p50_ms'\] and unknown fields \['p42_ms'\]"):
        LatencyRecord.from_dict(data)


def test_cpu_affinity_counts_the_allowed_cpus() -> None:
    import os

    assert cpu_affinity() == len(os.sched_getaffinity(0))
