"""Latency of a candidate on a target: measured, or predicted from a per-target lookup table.

Measured: the candidate is exported (ONNX, or an edgekd checkpoint for the torch runtime) to a
temporary folder and timed by the target's runtime at batch 1 with short settings.

Predicted (Once-for-All, nn-Meter): every distinct block of a space (stem, each stage's blocks,
last conv, head; see :mod:`edgekd.search.blocks`) is timed once with the input shape it gets
inside the network; a network's latency is a line through the sum of its blocks, ``scale × sum +
overhead``, fitted on a few measured networks of the family. A block's time is its *marginal*
time in context, ``(T_K - T_1) / (K - 1)`` over ``K`` copies, so that the runtime's fixed cost
per call, paid once per network, cancels out:

- a block that keeps its input's shape is chained ``K`` times behind a 1x1 convolution
  (:class:`_Chain`), as the repeated blocks of a stage run;
- any other block runs in ``K`` branches, each a 1x1 convolution and the block, summed
  (:class:`_Branches`); the convolutions' own marginal time is timed apart and subtracted
  (their sum adds tensors of the block's input shape, the branches' of its output shape: a
  difference of one elementwise add, well under a microsecond at these sizes).

Either way the copies run in the memory layout blocks have inside a network (ONNX Runtime's
blocked NCHWc layout), and each branch pays the layout conversion its input needs from the
layer before it, as a block does in a network; a block exported alone pays conversions at
both ends that no network pays. Every block and fit network is timed in several rounds,
round-robin, and its median kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from edgekd.config import ModelSpec, ProfileConfig, TargetConfig
from edgekd.errors import ConfigError
from edgekd.export.onnx import export_onnx
from edgekd.fsutil import atomic_write_json
from edgekd.models import build_model, save_checkpoint
from edgekd.progress import NullProgress, Progress
from edgekd.runtime import LatencyRecord, Runtime, get_runtime
from edgekd.search.blocks import Block
from edgekd.search.spaces import SearchSpace, candidate_blocks

log = logging.getLogger(__name__)
T = TypeVar("T")

QUICK_PROFILE = ProfileConfig(warmup_runs=5, min_time_s=0.2, min_runs=20, layer_profile_runs=0)
"""Short timing settings for search candidates and table blocks (no per-layer profile)."""

TABLE_FORMAT = "edgekd-latency-table/1"
BLOCK_TIMING = "marginal, in context: chained after a 1x1 conv, or a branch after its own 1x1 conv"
"""How block times were taken; cached blocks timed another way are measured again."""


def default_table_cache() -> Path:
    """``$XDG_CACHE_HOME/edgekd/latency-tables.json`` (``~/.cache`` when the variable is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "edgekd" / "latency-tables.json"


def measure_spec(spec: ModelSpec, target: TargetConfig, input_shape: tuple[int, int, int], num_classes: int, *,
                 settings: ProfileConfig = QUICK_PROFILE, precision: str = "fp32", seed: int = 0) -> LatencyRecord:
    """Build ``spec``, write it in the format the target's runtime times, and time it at batch 1.

    Args:
        spec: The candidate.
        target: Where it runs.
        input_shape: ``(channels, height, width)`` of one input.
        num_classes: Number of output logits.
        settings: Warm-up and run counts.
        precision: A precision of the target that the runtime can time an FP32 model at (``fp32``;
            ``fp16`` where the runtime builds its own engine, e.g. TensorRT).
        seed: Seeds the (untrained) weights.

    Raises:
        ConfigError: The runtime cannot time an FP32 model at ``precision`` on this target.
        RuntimeBackendError: The runtime cannot run the model.
        TargetError: An SSH target cannot be reached.
    """
    runtime = get_runtime(target)
    possible = runtime.precisions_for("fp32")
    if precision not in possible:
        raise ConfigError(
            f"search candidates are FP32 models, which {runtime.name} on target {target.name!r} times at"
            f" {', '.join(possible) or 'no precision the target lists'}, not {precision}; set the search precision"
            " to one of those (INT8 comes from the qkd stage)"
        )
    torch.manual_seed(seed)
    model = build_model(spec, num_classes, input_shape[0]).eval()
    with tempfile.TemporaryDirectory(prefix="edgekd-search-") as tmp:
        if runtime.model_format == "checkpoint":
            path = Path(tmp) / "candidate.pt"
            save_checkpoint(path, model, spec, num_classes, input_shape)
        else:
            path = Path(tmp) / "candidate.onnx"
            export_onnx(model, input_shape, path)
        return runtime.profile(path, model_name=spec.name, batch=1, precision=precision, settings=settings)


def measure_p50(spec: ModelSpec, target: TargetConfig, input_shape: tuple[int, int, int], num_classes: int, *,
                settings: ProfileConfig = QUICK_PROFILE, precision: str = "fp32", rounds: int = 3) -> float:
    """The median p50 (ms) of ``rounds`` timings of ``spec`` by :func:`measure_spec`, back to back:
    one timing of a tiny network on a shared machine can be 20-30% off (a 14 µs network once
    timed at 18 µs here)."""
    return statistics.median(
        measure_spec(spec, target, input_shape, num_classes, settings=settings, precision=precision).p50_ms
        for _ in range(rounds))


class _Chain(nn.Module):
    """A 1x1 convolution, then ``copies`` of a block that keeps its input's shape, one after another:
    the block as the repeated blocks of a stage run, each copy's input the previous one's output."""

    def __init__(self, block: Block, copies: int) -> None:
        super().__init__()
        self.pre = nn.Conv2d(block.in_channels, block.in_channels, 1)
        self.copies = nn.Sequential(*(block.build() for _ in range(copies)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.copies(self.pre(x))


class _Branches(nn.Module):
    """``copies`` branches side by side, each a 1x1 convolution followed by a copy of the block (or
    the convolution alone, ``with_block=False``), their outputs summed into one."""

    def __init__(self, block: Block, copies: int, with_block: bool = True) -> None:
        super().__init__()
        self.pres = nn.ModuleList(nn.Conv2d(block.in_channels, block.in_channels, 1) for _ in range(copies))
        self.blocks = nn.ModuleList(block.build() for _ in range(copies)) if with_block else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [pre(x) for pre in self.pres]
        if self.blocks is not None:
            outputs = [block(y) for block, y in zip(self.blocks, outputs, strict=True)]
        total, *others = outputs
        for y in others:
            total = total + y
        return total


def _time_onnx(module: nn.Module, block: Block, runtime: Runtime, settings: ProfileConfig,
               precision: str) -> LatencyRecord:
    with tempfile.TemporaryDirectory(prefix="edgekd-block-") as tmp:
        path = Path(tmp) / "block.onnx"
        export_onnx(module.eval(), block.input_shape, path)
        return runtime.profile(path, model_name=block.signature, batch=1, precision=precision, settings=settings)


_Job = tuple[str, Block]
"""What one timing measures: ``("block", b)``, block ``b`` in context, or ``("conv", b)``, the
1x1 convolution of ``b``'s branches alone (subtracted from ``b``'s branch time)."""


def _jobs(blocks: Iterable[Block]) -> dict[str, _Job]:
    """The timings a table needs for ``blocks``: each block, and one convolution per input shape
    of the blocks timed in branches."""
    jobs: dict[str, _Job] = {}
    for block in blocks:
        jobs[block.signature] = ("block", block)
        if not block.keeps_shape:
            jobs.setdefault(_conv_key(block), ("conv", block))
    return jobs


def _conv_key(block: Block) -> str:
    return f"conv1x1:c{block.in_channels}:hw{block.height}x{block.width}"


def _marginal_ms(job: _Job, runtime: Runtime, settings: ProfileConfig, precision: str, copies: int) -> float:
    """``(T_copies - T_1) / (copies - 1)`` of the job's model: the fixed cost per call cancels."""
    kind, block = job
    torch.manual_seed(0)

    def model(count: int) -> nn.Module:
        if kind == "conv":
            return _Branches(block, count, with_block=False)
        return _Chain(block, count) if block.keeps_shape else _Branches(block, count)

    single = _time_onnx(model(1), block, runtime, settings, precision)
    many = _time_onnx(model(copies), block, runtime, settings, precision)
    return (many.p50_ms - single.p50_ms) / (copies - 1)


def _target_digest(target: TargetConfig) -> str:
    config = target.model_dump(mode="json", exclude={"description"})
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def _host(target: TargetConfig) -> str:
    return socket.gethostname() if target.connection.kind == "local" else str(target.connection.host)


def _fit_key(family: str, input_shape: Sequence[int]) -> str:
    return f"{family}@{'x'.join(str(d) for d in input_shape)}"


@dataclass
class LatencyTable:
    """Block latencies of one target, runtime version, host and precision, and the fitted network overheads.

    Attributes:
        target: The target's name.
        runtime: Runtime name and version, e.g. ``onnxruntime 1.32.0``.
        host: The machine that ran the timings (this one for local targets, else the board).
        target_digest: Hash of the target's settings (providers, threads, ...).
        precision: The precision everything was timed at.
        input_shape: The network input the table predicts for.
        num_classes: The network output the table predicts for.
        copies: ``K`` of the marginal block time.
        blocks: Block signature → marginal time in ms.
        overhead_ms: ``family@CxHxW`` → fitted overhead in ms (the runtime's fixed cost per call).
        scale: ``family@CxHxW`` → fitted factor on the sum of blocks.
        fits: ``family@CxHxW`` → the networks the line was fitted on: spec, measured p50, sum
            of blocks.
    """

    target: str
    runtime: str
    host: str
    target_digest: str
    precision: str
    input_shape: tuple[int, int, int]
    num_classes: int
    copies: int = 4
    blocks: dict[str, float] = field(default_factory=dict)
    overhead_ms: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    fits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the table is cached under: target, runtime version, host, target settings, precision."""
        return f"{self.target}|{self.runtime}|{self.host}|{self.target_digest}|{self.precision}"

    @classmethod
    def build(cls, space: SearchSpace, target: TargetConfig, input_shape: tuple[int, int, int], num_classes: int, *,
              cache: Path | None = None, settings: ProfileConfig = QUICK_PROFILE, precision: str = "fp32",
              copies: int = 4, fit_networks: int = 8, rounds: int = 3, seed: int = 0,
              progress: Progress = NullProgress()) -> LatencyTable:
        """Time every distinct block of ``space`` and fit the family's overhead on a few networks.

        With ``cache``, blocks and overheads already in the cache file for this target, runtime
        version, host, target settings and precision are reused, and what is measured is added.

        Args:
            space: The candidates to cover.
            target: Where they run; its runtime must time ONNX files.
            input_shape: ``(channels, height, width)`` of the network input.
            num_classes: Number of output logits.
            cache: A table file to reuse and extend; ``None`` measures everything, saves nothing.
            settings: Timing settings of each block and network.
            precision: The precision to time at (see :func:`measure_spec`).
            copies: ``K`` of the marginal block time (at least 2).
            fit_networks: Networks measured to fit the overhead (at least 1).
            rounds: Every block and fit network is timed once per round, in a new session each
                time, and its median over the rounds kept (see :func:`median_over_rounds`).
            seed: Picks the fit networks.
            progress: Receives one step per timing: each block, branch convolution and fit
                network, once per round.

        Raises:
            ConfigError: The target's runtime does not time ONNX files, or a bad argument.
            RuntimeBackendError: The runtime cannot run a block.
        """
        if copies < 2 or fit_networks < 1 or rounds < 1:
            raise ConfigError("a latency table needs copies >= 2, fit_networks >= 1 and rounds >= 1"
                              f" (got {copies}, {fit_networks}, {rounds})")
        runtime = get_runtime(target)
        if runtime.model_format != "onnx":
            raise ConfigError(
                f"target {target.name!r} times models with {runtime.name}, which does not run ONNX files;"
                " latency tables need an ONNX runtime: use latency: measured"
            )
        unique: dict[str, Block] = {}
        for spec in space.candidates():
            for block in candidate_blocks(spec, input_shape, num_classes):
                unique.setdefault(block.signature, block)
        first = next(iter(unique.values()))
        # Timing one block tells the runtime's version, part of the cache key (remote boards too).
        probe = _time_onnx(first.build(), first, runtime, settings, precision)
        table = cls(target=target.name, runtime=f"{probe.runtime} {probe.runtime_version}", host=_host(target),
                    target_digest=_target_digest(target), precision=precision, input_shape=tuple(input_shape),
                    num_classes=num_classes, copies=copies)
        if cache is not None and Path(cache).is_file():
            table._merge(_read_tables(Path(cache)).get(table.key, {}), cache)
        missing = [block for signature, block in unique.items() if signature not in table.blocks]
        fit_key = _fit_key(space.family, input_shape)
        fit_specs = sample_candidates(space, fit_networks, seed) if fit_key not in table.overhead_ms else []
        task = f"latency table · {target.name}"
        jobs = _jobs(missing)
        progress.start(task, total=(len(jobs) + len(fit_specs)) * rounds)
        timed = median_over_rounds(jobs, lambda job: _marginal_ms(job, runtime, settings, precision, copies),
                                   rounds, lambda key: progress.advance(task, status=key))
        for block in missing:
            conv = 0.0 if block.keeps_shape else timed[_conv_key(block)]
            table.blocks[block.signature] = timed[block.signature] - conv
        if fit_specs:
            table._fit(fit_key, fit_specs, target, settings, rounds, lambda status: progress.advance(task, status=status))
        progress.finish(task)
        if cache is not None:
            table.save(Path(cache))
        return table

    def _fit(self, fit_key: str, specs: list[ModelSpec], target: TargetConfig, settings: ProfileConfig, rounds: int,
             advance: Callable[[str], None]) -> None:
        measured = median_over_rounds(
            {f"network {i}/{len(specs)}": spec for i, spec in enumerate(specs, start=1)},
            lambda spec: self.measure(spec, target, settings), rounds, advance)
        rows = [{"spec": spec.model_dump(mode="json"), "measured_ms": ms, "blocks_ms": self._sum(spec)}
                for spec, ms in zip(specs, measured.values(), strict=True)]
        self.scale[fit_key], self.overhead_ms[fit_key] = fit_line(
            [row["blocks_ms"] for row in rows], [row["measured_ms"] for row in rows])
        self.fits[fit_key] = rows

    def measure(self, spec: ModelSpec, target: TargetConfig, settings: ProfileConfig) -> float:
        """One timing (p50, ms) of ``spec`` with the table's input, output and precision."""
        return measure_spec(spec, target, self.input_shape, self.num_classes, settings=settings,
                            precision=self.precision).p50_ms

    def _sum(self, spec: ModelSpec) -> float:
        total = 0.0
        for block in candidate_blocks(spec, self.input_shape, self.num_classes):
            if block.signature not in self.blocks:
                raise ConfigError(
                    f"latency table of {self.target} has no block {block.signature} of {spec.name}"
                    f" {spec.params}; build the table with a search space that contains this candidate"
                )
            total += self.blocks[block.signature]
        return total

    def predict(self, spec: ModelSpec) -> float:
        """Predicted latency of ``spec`` in ms: ``scale × (sum of its blocks) + overhead`` of its family.

        Raises:
            ConfigError: A block of ``spec``, or its family's overhead, is not in the table.
        """
        fit_key = _fit_key(spec.name, self.input_shape)
        if fit_key not in self.overhead_ms:
            raise ConfigError(
                f"latency table of {self.target} has no fitted overhead for {fit_key};"
                " build the table with a search space of that family and input shape"
            )
        return self.scale.get(fit_key, 1.0) * self._sum(spec) + self.overhead_ms[fit_key]

    def save(self, path: Path) -> None:
        """Write the table into ``path`` (atomically), keeping the other tables stored there."""
        path = Path(path)
        tables = _read_tables(path) if path.is_file() else {}
        tables[self.key] = {
            "target": self.target, "runtime": self.runtime, "host": self.host, "target_digest": self.target_digest,
            "precision": self.precision, "copies": self.copies, "timing": BLOCK_TIMING,
            "blocks": self.blocks,
            "overhead_ms": self.overhead_ms, "scale": self.scale, "fits": self.fits,
        }
        atomic_write_json(path, {"format": TABLE_FORMAT, "tables": tables})

    @classmethod
    def load(cls, path: Path, target: TargetConfig, input_shape: tuple[int, int, int], num_classes: int, *,
             precision: str = "fp32", runtime: str | None = None) -> LatencyTable:
        """The table of ``target`` (its current settings, this host) at ``precision`` stored in ``path``.

        Args:
            path: A file written by :meth:`save` or :meth:`build`.
            target: The target the table was built for.
            input_shape: The network input to predict for.
            num_classes: The network output to predict for.
            precision: The precision the table was timed at.
            runtime: ``name version`` to pick when the file has tables of several runtime versions.

        Raises:
            ConfigError: The file is missing or not a table file, or holds no (single) table for
                the target.
        """
        host, digest = _host(target), _target_digest(target)
        entries = {
            key: entry for key, entry in _read_tables(Path(path)).items()
            if entry["target"] == target.name and entry["host"] == host and entry["target_digest"] == digest
            and entry["precision"] == precision and runtime in (None, entry["runtime"])
        }
        if len(entries) != 1:
            found = "none" if not entries else ", ".join(sorted(e["runtime"] for e in entries.values()))
            raise ConfigError(
                f"{path}: expected one {precision} latency table of target {target.name!r} with its current"
                f" settings on {host} (found: {found}); rebuild it, or name the runtime version"
            )
        entry = next(iter(entries.values()))
        table = cls(target=target.name, runtime=entry["runtime"], host=host, target_digest=digest, precision=precision,
                    input_shape=tuple(input_shape), num_classes=num_classes, copies=entry["copies"])
        table._merge(entry, path)
        return table

    def _merge(self, entry: dict[str, Any], path: Path) -> None:
        if entry and (entry.get("copies"), entry.get("timing")) != (self.copies, BLOCK_TIMING):
            log.info("%s: ignoring cached blocks timed with %s copies, %s (now %s, %s)", path, entry.get("copies"),
                     entry.get("timing"), self.copies, BLOCK_TIMING)
            return
        self.blocks.update(entry.get("blocks", {}))
        self.overhead_ms.update(entry.get("overhead_ms", {}))
        self.scale.update(entry.get("scale", {}))
        self.fits.update(entry.get("fits", {}))


def median_over_rounds(items: dict[str, T], measure: Callable[[T], float], rounds: int,
                       advance: Callable[[str], None] = lambda key: None) -> dict[str, float]:
    """Each item's median of ``rounds`` measurements, taken round-robin: every item once per round.

    On a shared machine a network's p50 drifts by 10-15% within a minute and differs between two
    sessions of the same model; rounds spread over the whole measuring time let every item see
    the same mix of conditions, so that items measured minutes apart stay comparable.
    """
    samples: dict[str, list[float]] = {key: [] for key in items}
    for _ in range(rounds):
        for key, item in items.items():
            samples[key].append(measure(item))
            advance(key)
    return {key: statistics.median(values) for key, values in samples.items()}


def fit_line(blocks_ms: Sequence[float], measured_ms: Sequence[float]) -> tuple[float, float]:
    """``(scale, overhead)`` of ``measured = scale × blocks + overhead`` by least squares on
    relative residuals (each network's error divided by its measured time).

    Marginal block times over-count a network's compute a little (each block is timed in a model
    of its own), and the runtime's fixed cost per call is paid once per network: both show up as
    a line, not a constant offset. With fewer than three networks, sums too alike to show a slope,
    or a slope outside 0.5–2 (noise), the scale is 1 and the overhead the median difference.
    """
    blocks, measured = np.asarray(blocks_ms, dtype=float), np.asarray(measured_ms, dtype=float)
    if len(blocks) >= 3 and blocks.std() > 0.05 * blocks.mean():
        # Relative residuals: a 5 µs miss matters on a 40 µs network, not on a 400 µs one.
        scale, overhead = np.polyfit(blocks, measured, 1, w=1.0 / measured)
        if 0.5 <= scale <= 2.0:
            return float(scale), float(overhead)
    return 1.0, float(np.median(measured - blocks))


def _read_tables(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: latency table file not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable latency table ({exc}); delete it to rebuild") from None
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT or not isinstance(data.get("tables"), dict):
        raise ConfigError(f"{path}: not a latency table file of format {TABLE_FORMAT}; delete it to rebuild")
    return data["tables"]


def sample_candidates(space: SearchSpace, count: int, seed: int,
                      exclude: Iterable[ModelSpec] = ()) -> list[ModelSpec]:
    """Up to ``count`` distinct candidates of ``space``, drawn by ``seed``, none of ``exclude``."""
    skip = {json.dumps(spec.model_dump(mode="json"), sort_keys=True) for spec in exclude}
    pool = [spec for spec in space.candidates() if json.dumps(spec.model_dump(mode="json"), sort_keys=True) not in skip]
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[:count]]


def evaluate_table(table: LatencyTable, held_out: Sequence[ModelSpec], target: TargetConfig, *,
                   settings: ProfileConfig = QUICK_PROFILE, rounds: int = 3,
                   progress: Progress = NullProgress()) -> dict[str, Any]:
    """Measure ``held_out`` candidates and compare them with the table's predictions.

    Args:
        table: The table to check.
        held_out: Candidates that were not used to fit the table's overhead.
        target: The target the table was built for.
        settings: Timing settings of the measurements.
        rounds: Measurements of each candidate, round-robin; the median is its measured p50.
        progress: Receives one step per measurement.

    Returns:
        ``within_10pct``: fraction of candidates whose prediction is within 10% of the measured
        p50; ``median_abs_error``: median of ``|predicted / measured - 1|``; ``errors``: per
        candidate ``spec``, ``predicted_ms``, ``measured_ms`` and ``error`` (relative, signed).

    Raises:
        ValueError: ``held_out`` is empty.
    """
    if not held_out:
        raise ValueError("evaluate_table needs at least one held-out candidate")
    task = f"latency table check · {target.name}"
    progress.start(task, total=len(held_out) * rounds)
    measured = median_over_rounds(
        {str(i): spec for i, spec in enumerate(held_out)},
        lambda spec: table.measure(spec, target, settings), rounds, lambda key: progress.advance(task))
    progress.finish(task)
    errors = []
    for spec, measured_ms in zip(held_out, measured.values(), strict=True):
        predicted = table.predict(spec)
        errors.append({"spec": spec.model_dump(mode="json"), "predicted_ms": predicted, "measured_ms": measured_ms,
                       "error": predicted / measured_ms - 1.0})
    relative = [abs(row["error"]) for row in errors]
    return {
        "within_10pct": sum(e <= 0.10 for e in relative) / len(relative),
        "median_abs_error": statistics.median(relative),
        "errors": errors,
    }
