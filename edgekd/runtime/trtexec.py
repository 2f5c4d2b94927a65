"""``trtexec``: the command line edgekd runs, and pure parsers of what it writes.

trtexec builds a TensorRT engine from the ONNX file and times it. edgekd asks it for the
per-query times (``--exportTimes``), the per-layer profile of a separate profiling run
(``--dumpProfile --separateProfileRun --exportProfile``) and the engine's layer types
(``--exportLayerInfo``). The statistics (p50/p90/p99, std, outliers) are edgekd's own, over
trtexec's per-query latencies (H2D + GPU compute + D2H), so they mean the same as on every
other runtime; the H2D, GPU compute and D2H medians come from trtexec's performance summary.
The same parsers serve a local ``trtexec`` and one run on a board over SSH.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from edgekd.config.pipeline import ProfileConfig
from edgekd.errors import RuntimeBackendError
from edgekd.profiling import summarize
from edgekd.runtime.base import LatencyRecord, LayerTime

METHOD = "trtexec per-query latency (H2D + GPU compute + D2H); statistics by edgekd"
TIMES_FILE = "times.json"
PROFILE_FILE = "profile.json"
LAYER_INFO_FILE = "layers.json"
PRECISION_FLAGS = {"fp32": (), "fp16": ("--fp16",), "int8": ("--int8",)}
_NS_PER_MS = 1e6

_VERSION = re.compile(r"\[TensorRT v(\d+)\]")
_METRIC = re.compile(r"\[I\] (?P<name>[A-Za-z0-9 -]+?): (?P<values>min = .*)$")
_VALUE = re.compile(r"(?P<key>min|max|mean|median|percentile\((?P<p>[\d.]+)%\)) = (?P<ms>[-+\d.eE]+) ms")
_THROUGHPUT = re.compile(r"\[I\] Throughput: (?P<qps>[-+\d.eE]+) qps")


@dataclass(frozen=True)
class MetricSummary:
    """One line of trtexec's performance summary, in milliseconds."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrtexecSummary:
    """trtexec's ``=== Performance summary ===``: throughput and each metric by its name
    (``Latency``, ``Enqueue Time``, ``H2D Latency``, ``GPU Compute Time``, ``D2H Latency``)."""

    throughput_qps: float
    metrics: dict[str, MetricSummary]
    tensorrt_version: str


@dataclass(frozen=True)
class TrtexecOutput:
    """What one trtexec run left: its log and the text of the JSON files it exported."""

    log: str
    times: str | None
    profile: str | None
    layer_info: str | None


def trtexec_command(
    trtexec: str,
    onnx_path: str,
    *,
    input_name: str,
    input_shape: tuple[int, ...],
    precision: str,
    settings: ProfileConfig,
    out_dir: str,
) -> list[str]:
    """The argv of one trtexec timing run.

    Args:
        trtexec: The executable.
        onnx_path: The model, as a path on the machine that runs trtexec.
        input_name: The model's input tensor.
        input_shape: The full input shape, batch first.
        precision: ``fp32``, ``fp16`` (``--fp16``) or ``int8`` (``--int8``; the QDQ nodes set the scales).
        settings: ``min_runs`` → ``--iterations``, ``min_time_s`` → ``--duration`` (whole
            seconds, rounded up), layer profiling when ``layer_profile_runs`` > 0.
        out_dir: Folder for the exported JSON files, on the machine that runs trtexec.

    Returns:
        The argv, each argument one list item (no shell quoting needed).
    """
    name = f"'{input_name}'" if ":" in input_name else input_name
    argv = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--shapes={name}:{'x'.join(str(d) for d in input_shape)}",
        *PRECISION_FLAGS[precision],
        f"--iterations={settings.min_runs}",
        f"--duration={math.ceil(settings.min_time_s)}",
        f"--exportTimes={out_dir}/{TIMES_FILE}",
    ]
    if settings.layer_profile_runs > 0:
        argv += [
            "--dumpProfile",
            "--separateProfileRun",
            "--profilingVerbosity=detailed",
            f"--exportProfile={out_dir}/{PROFILE_FILE}",
            f"--exportLayerInfo={out_dir}/{LAYER_INFO_FILE}",
        ]
    return argv


def tensorrt_version(log: str) -> str:
    """The TensorRT version in trtexec's banner: ``[TensorRT v100300]`` → ``10.3.0``, ``v8601`` → ``8.6.1``.

    Returns:
        The dotted version, or ``unknown`` if the banner is missing.
    """
    match = _VERSION.search(log)
    if match is None:
        return "unknown"
    number = int(match.group(1))
    if number >= 100_000:  # TensorRT 10+: major * 10000 + minor * 100 + patch
        return f"{number // 10_000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def parse_summary(log: str) -> TrtexecSummary:
    """Parse trtexec's performance summary from its log.

    Args:
        log: trtexec's standard output.

    Returns:
        The throughput and every ``name: min = … ms, max = …, mean = …, median = …,
        percentile(P%) = …`` line after ``=== Performance summary ===``.

    Raises:
        RuntimeBackendError: If the log has no performance summary (trtexec failed first).
    """
    _, marker, tail = log.partition("=== Performance summary ===")
    throughput = _THROUGHPUT.search(tail)
    if not marker or throughput is None:
        raise RuntimeBackendError(f"trtexec printed no performance summary; its log ends: {_log_tail(log)}")
    metrics: dict[str, MetricSummary] = {}
    for line in tail.splitlines():
        match = _METRIC.search(line)
        if match is None:
            continue
        values: dict[str, float] = {}
        percentiles: dict[float, float] = {}
        for value in _VALUE.finditer(match.group("values")):
            if value.group("p") is not None:
                percentiles[float(value.group("p"))] = float(value.group("ms"))
            else:
                values[value.group("key")] = float(value.group("ms"))
        if {"min", "max", "mean", "median"} <= values.keys():
            metrics[match.group("name").strip()] = MetricSummary(
                values["min"], values["max"], values["mean"], values["median"], percentiles
            )
    return TrtexecSummary(float(throughput.group("qps")), metrics, tensorrt_version(log))


def parse_times(text: str) -> list[float]:
    """Per-query latencies (``latencyMs``: H2D + GPU compute + D2H) from ``--exportTimes`` JSON.

    Raises:
        RuntimeBackendError: If the JSON is not a non-empty list of timing entries.
    """
    try:
        entries = json.loads(text)
        latencies = [float(entry["latencyMs"]) for entry in entries]
    except (ValueError, TypeError, KeyError) as exc:
        raise RuntimeBackendError(f"trtexec's --exportTimes file is not what edgekd reads ({exc})") from exc
    if not latencies:
        raise RuntimeBackendError("trtexec timed no queries; raise --iterations or --duration")
    return latencies


def parse_layer_info(text: str | None) -> dict[str, str]:
    """Layer name → TensorRT layer type from ``--exportLayerInfo`` JSON (detailed verbosity).

    Returns:
        The types of the layers that list one; empty for missing or name-only layer info.
    """
    if not text:
        return {}
    layers = json.loads(text).get("Layers", [])
    return {layer["Name"]: str(layer.get("LayerType", "")) for layer in layers if isinstance(layer, dict)}


def parse_profile(text: str | None, layer_types: dict[str, str], *, top: int) -> tuple[LayerTime, ...]:
    """The slowest layers from ``--exportProfile`` JSON.

    The file is ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, …]``;
    ``averageMs`` is the mean per inference and ``percentage`` the share of all layer time.

    Args:
        text: The JSON text, or ``None`` when no profile was asked for.
        layer_types: From :func:`parse_layer_info`; reformat layers are named ``Reformat``.
        top: How many layers to keep.

    Returns:
        Up to ``top`` layers, slowest first.
    """
    if not text:
        return ()
    rows = [row for row in json.loads(text) if isinstance(row, dict) and "name" in row]
    rows.sort(key=lambda row: (-float(row["averageMs"]), row["name"]))
    return tuple(
        LayerTime(
            name=row["name"],
            op_type=layer_types.get(row["name"]) or ("Reformat" if row["name"].startswith("Reformatting") else ""),
            mean_ms=float(row["averageMs"]),
            share=float(row["percentage"]) / 100.0,
        )
        for row in rows[:top]
    )


def trtexec_record(
    output: TrtexecOutput,
    *,
    model: str,
    target: str,
    batch: int,
    precision: str,
    settings: ProfileConfig,
    where: str,
) -> LatencyRecord:
    """The latency record of one trtexec run.

    Args:
        output: trtexec's log and exported files.
        model: Model name shown in reports.
        target: Target name.
        batch: Batch size of each query.
        precision: Precision label of the engine.
        settings: For ``top_layers``.
        where: ``trtexec`` and where it ran, as the record's provider.

    Returns:
        The record; its statistics over trtexec's per-query latencies.

    Raises:
        RuntimeBackendError: If trtexec left no timing output.
    """
    summary = parse_summary(output.log)
    if output.times is None:
        raise RuntimeBackendError("trtexec wrote no --exportTimes file; edgekd needs the per-query times")
    stats = summarize([ms * _NS_PER_MS for ms in parse_times(output.times)])
    layers = parse_profile(output.profile, parse_layer_info(output.layer_info), top=settings.top_layers)
    medians: dict[str, Any] = {
        key: summary.metrics[metric].median_ms
        for key, metric in (("h2d_ms", "H2D Latency"), ("compute_ms", "GPU Compute Time"), ("d2h_ms", "D2H Latency"))
        if metric in summary.metrics
    }
    return LatencyRecord.from_stats(
        stats, model=model, target=target, runtime="tensorrt", precision=precision, batch=batch, threads=None,
        runtime_version=summary.tensorrt_version, provider=where, layers=layers, method=METHOD, **medians,
    )


def _log_tail(log: str, lines: int = 3) -> str:
    kept = [line.strip() for line in log.strip().splitlines()[-lines:]]
    return " | ".join(kept) if kept else "(empty)"
