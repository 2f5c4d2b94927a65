"""Candidate latency: measured with the target's runtime, and predicted from a lookup table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgekd.config import ModelSpec, ProfileConfig
from edgekd.errors import ConfigError
from edgekd.progress import NullProgress
from edgekd.search import LatencyTable, build_space, candidate_blocks, evaluate_table, measure_spec
from edgekd.search.blocks import Block
from edgekd.search.latency import _Branches, _Chain, _jobs, fit_line, median_over_rounds
from edgekd.targets import load_target

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter

SHAPE = (1, 8, 8)
FAST = ProfileConfig(warmup_runs=2, min_time_s=0.01, min_runs=5, layer_profile_runs=0)


class Steps(NullProgress):
    """A Progress that counts the steps of each task."""

    def __init__(self) -> None:
        self.totals: dict[str, int | None] = {}
        self.done: dict[str, int] = {}

    def start(self, task: str, total: int | None = None) -> None:
        self.totals[task] = total

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        self.done[task] = self.done.get(task, 0) + steps


@pytest.fixture(scope="module")
def target():
    return load_target("local-cpu")


@pytest.fixture(scope="module")
def space():
    return build_space("plain_cnn", {"channels": [[4, 8], [8]], "kernel_size": [3]})


@pytest.fixture(scope="module")
def built(tmp_path_factory, space, target) -> tuple[LatencyTable, Path, Steps]:
    cache = tmp_path_factory.mktemp("lut") / "tables.json"
    steps = Steps()
    table = LatencyTable.build(space, target, SHAPE, 10, cache=cache, settings=FAST, fit_networks=1, rounds=2,
                               progress=steps)
    return table, cache, steps


def test_measure_spec_times_the_candidate_at_batch_1(target) -> None:
    record = measure_spec(ModelSpec(name="plain_cnn", params={"channels": [4, 8]}), target, SHAPE, 10, settings=FAST)
    assert record.batch == 1 and record.precision == "fp32" and record.target == "local-cpu"
    assert record.p50_ms > 0 and not record.estimated


def test_table_covers_every_block_and_predicts(built, space) -> None:
    table, _, steps = built
    signatures = {b.signature for spec in space.candidates() for b in candidate_blocks(spec, SHAPE, 10)}
    assert set(table.blocks) == signatures
    assert list(table.overhead_ms) == ["plain_cnn@1x8x8"] and len(table.fits["plain_cnn@1x8x8"]) == 1
    assert table.target == "local-cpu" and table.runtime.startswith("onnxruntime ")
    convs = {(b.in_channels, b.height, b.width) for b in blocks_of(space) if not b.keeps_shape}
    # two rounds of: each block, one 1x1 conv per input shape of the blocks timed in branches, the fit network
    assert steps.done[f"latency table · {table.target}"] == 2 * (len(signatures) + len(convs) + 1)
    for spec in space.candidates():
        blocks = candidate_blocks(spec, SHAPE, 10)
        assert table.predict(spec) == pytest.approx(  # one fit network: no slope, scale 1
            sum(table.blocks[b.signature] for b in blocks) + table.overhead_ms["plain_cnn@1x8x8"])
    assert table.scale["plain_cnn@1x8x8"] == 1.0


def test_table_save_load_round_trip_and_cache_reuse(built, space, target, tmp_path) -> None:
    table, cache, _ = built
    stored = json.loads(cache.read_text())
    assert stored["format"] == "edgekd-latency-table/1" and list(stored["tables"]) == [table.key]
    loaded = LatencyTable.load(cache, target, SHAPE, 10)
    assert loaded == table
    copy = tmp_path / "copy.json"
    loaded.save(copy)
    assert LatencyTable.load(copy, target, SHAPE, 10, runtime=table.runtime) == table
    steps = Steps()
    again = LatencyTable.build(space, target, SHAPE, 10, cache=cache, settings=FAST, fit_networks=1, progress=steps)
    assert again.blocks == table.blocks and steps.done == {}  # nothing measured twice


def test_blocks_timed_another_way_are_measured_again(built, space, target, tmp_path) -> None:
    table, cache, _ = built
    stored = json.loads(cache.read_text())
    stored["tables"][table.key]["timing"] = "side by side"  # a cache written by an older edgekd
    old = tmp_path / "old.json"
    old.write_text(json.dumps(stored))
    steps = Steps()
    LatencyTable.build(space, target, SHAPE, 10, cache=old, settings=FAST, fit_networks=1, rounds=1, progress=steps)
    assert steps.done[f"latency table · {table.target}"] == len(_jobs(blocks_of(space))) + 1


def blocks_of(space) -> list[Block]:
    return list({b.signature: b for spec in space.candidates() for b in candidate_blocks(spec, SHAPE, 10)}.values())


def test_fit_line_recovers_scale_and_overhead_and_falls_back_when_it_cannot() -> None:
    blocks = [0.02, 0.04, 0.05, 0.08]
    assert fit_line(blocks, [0.9 * b + 0.007 for b in blocks]) == pytest.approx((0.9, 0.007))
    assert fit_line([0.02, 0.04], [0.03, 0.05]) == pytest.approx((1.0, 0.01))  # two networks: no slope
    assert fit_line([0.04, 0.04, 0.04], [0.05, 0.06, 0.07]) == pytest.approx((1.0, 0.02))  # no spread
    assert fit_line(blocks, [0.05, 0.01, 0.12, 0.02])[0] == 1.0  # a wild slope is noise, not a fit


def test_blocks_are_timed_chained_or_in_branches_behind_a_conv() -> None:
    same = Block("conv_bn", 8, 8, 3, 1, 8, 8)
    assert same.keeps_shape and not Block("conv_bn", 8, 16, 3, 1, 8, 8).keeps_shape
    assert not Block("conv_bn", 8, 8, 3, 2, 8, 8).keeps_shape and not Block("head", 8, 8, 1, 1, 8, 8).keeps_shape
    x = torch.randn(1, 8, 8, 8)
    chained = _Chain(same, 3).eval()
    expected = chained.pre(x)
    for copy in chained.copies:
        expected = copy(expected)
    assert torch.equal(chained(x), expected)
    wider = Block("conv_bn", 8, 16, 3, 2, 8, 8)
    branches = _Branches(wider, 3).eval()
    assert branches(x).shape == (1, 16, 4, 4)
    assert torch.allclose(branches(x), sum(block(pre(x)) for pre, block in zip(branches.pres, branches.blocks)))
    convs = _Branches(wider, 3, with_block=False).eval()
    assert convs.blocks is None and torch.allclose(convs(x), sum(pre(x) for pre in convs.pres))
    # one conv timing per input shape of the blocks in branches; chained blocks need none
    jobs = _jobs([same, wider, Block("conv_bn", 8, 32, 3, 2, 8, 8)])
    assert [kind for kind, _ in jobs.values()] == ["block", "block", "conv", "block"]


def test_median_over_rounds_measures_round_robin() -> None:
    calls: list[str] = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 9.0, 4.0])}

    def measure(key: str) -> float:
        calls.append(key)
        return next(times[key])

    advanced: list[str] = []
    assert median_over_rounds({"a": "a", "b": "b"}, measure, 3, advanced.append) == {"a": 2.0, "b": 5.0}
    assert calls == ["a", "b"] * 3 and advanced == calls


def test_evaluate_table_reports_error_on_held_out_candidates(built, target) -> None:
    table, _, _ = built
    held_out = [ModelSpec(name="plain_cnn", params={"channels": [4, 8], "kernel_size": 3})]
    steps = Steps()
    result = evaluate_table(table, held_out, target, settings=FAST, rounds=2, progress=steps)
    assert steps.done == {"latency table check · local-cpu": 2}
    assert set(result) == {"within_10pct", "median_abs_error", "errors"}
    assert 0.0 <= result["within_10pct"] <= 1.0
    (row,) = result["errors"]
    assert row["spec"] == held_out[0].model_dump(mode="json") and row["measured_ms"] > 0
    assert row["error"] == pytest.approx(row["predicted_ms"] / row["measured_ms"] - 1)


def test_table_errors_are_config_errors(built, target, tmp_path) -> None:
    table, _, _ = built
    with pytest.raises(ConfigError, match="no block"):
        table.predict(ModelSpec(name="plain_cnn", params={"channels": [32, 64], "kernel_size": 3}))
    with pytest.raises(ConfigError, match="no fitted overhead"):
        table.predict(ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 4}))
    with pytest.raises(ConfigError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json", target, SHAPE, 10)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a latency table"):
        LatencyTable.load(tmp_path / "bad.json", target, SHAPE, 10)
    other = target.model_copy(update={"threads": 1 if target.threads != 1 else 2})
    with pytest.raises(ConfigError, match="expected one fp32 latency table"):
        LatencyTable.load(built[1], other, SHAPE, 10)
    with pytest.raises(ConfigError, match="expected one fp16 latency table"):
        LatencyTable.load(built[1], target, SHAPE, 10, precision="fp16")


def test_candidates_are_timed_at_a_precision_the_runtime_can_give_an_fp32_model(target) -> None:
    with pytest.raises(ConfigError, match="times at fp32, not int8"):
        measure_spec(ModelSpec(name="plain_cnn", params={"channels": [4, 8]}), target, SHAPE, 10, precision="int8")
