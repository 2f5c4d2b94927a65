"""ONNX Runtime: times a model with the target's execution providers and threads.

``onnxruntime`` is imported inside functions, so that ``import edgekd`` stays light.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import RuntimeBackendError
from edgekd.onnx_model import example_input, one_line
from edgekd.profiling import time_runs
from edgekd.runtime.base import RUNTIMES, LatencyRecord, LayerTime, Runtime, cpu_affinity

if TYPE_CHECKING:
    import onnxruntime as ort

_KERNEL_SUFFIX = "_kernel_time"
_LAYER_WARMUP_RUNS = 2
_PREEMPTED = 3.0
"""A profiled run this many times slower than the median run was preempted: its layers are left out."""
_INPUT_SEED = 0
METHOD = "host clock (perf_counter_ns) around session.run"


def create_session(
    model_path: Path, target: TargetConfig, *, profile_prefix: str | None = None
) -> ort.InferenceSession:
    """An inference session set up the way edgekd times models.

    Full graph optimization, sequential execution, one inter-op thread,
    ``target.threads`` intra-op threads when set (else ONNX Runtime's default, the
    physical cores), and ``target.providers`` in order. Run :meth:`OnnxRuntime.check`
    first: ONNX Runtime silently skips providers it does not have.

    Args:
        model_path: The ``.onnx`` file.
        target: The target whose providers and threads apply.
        profile_prefix: When given, ONNX Runtime's profiler is on and writes its JSON
            trace to a file whose path starts with this prefix.

    Returns:
        The session.

    Raises:
        RuntimeBackendError: If ONNX Runtime cannot load the model.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if target.threads is not None:
        options.intra_op_num_threads = target.threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(model_path), options, providers=list(target.providers))
    except Exception as exc:  # onnxruntime's native errors derive from Exception only
        raise RuntimeBackendError(
            f"{model_path}: ONNX Runtime {ort.__version__} cannot load it ({one_line(exc)});"
            " re-export it with an opset and ops this version supports"
        ) from exc


def layer_times(events: Iterable[Mapping[str, Any]], *, runs: int, top: int) -> tuple[LayerTime, ...]:
    """The slowest nodes in an ONNX Runtime profiler trace.

    Only the last ``runs`` inferences (``model_run`` session events) count, so
    warm-up runs recorded earlier in the same trace are left out, and so is a run
    that took over 3× the median run (another process took the core; such a run
    can be 30× the others, ``docs/targets.md``). Node events are those with
    ``cat == "Node"`` whose name ends with ``_kernel_time``; ``dur`` is in
    microseconds and ``args.op_name`` is the operator type.

    Args:
        events: The parsed JSON trace (a list of Chrome-trace events).
        runs: Number of profiled inferences at the end of the trace.
        top: How many nodes to keep.

    Returns:
        Up to ``top`` nodes, slowest first, each with its mean time per inference and
        its share of the summed node time; empty if the trace has no node events.
    """
    events = list(events)
    measured = sorted((e["ts"], e.get("dur", 0)) for e in events
                      if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    typical = statistics.median(dur for _, dur in measured) if measured else 0
    kept = [(start, start + dur) for start, dur in measured if dur <= _PREEMPTED * typical]
    starts = [start for start, _ in kept]

    def in_kept_run(ts: float) -> bool:
        i = bisect_right(starts, ts) - 1
        return i >= 0 and ts <= kept[i][1]

    total_us: dict[str, float] = {}
    op_types: dict[str, str] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX) or not in_kept_run(event.get("ts", 0)):
            continue
        node = name[: -len(_KERNEL_SUFFIX)]
        total_us[node] = total_us.get(node, 0.0) + float(event.get("dur", 0))
        op_types.setdefault(node, event.get("args", {}).get("op_name", "unknown"))
    summed = sum(total_us.values())
    if summed <= 0:
        return ()
    ranked = sorted(total_us.items(), key=lambda item: (-item[1], item[0]))[:top]
    return tuple(
        LayerTime(name=node, op_type=op_types[node], mean_ms=us / len(kept) / 1000.0, share=us / summed)
        for node, us in ranked
    )


def _physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:
        return os.cpu_count()
    return psutil.cpu_count(logical=False) or os.cpu_count()


@RUNTIMES.register("onnxruntime")
class OnnxRuntime(Runtime):
    """ONNX Runtime with the target's execution providers (CPU by default)."""

    name = "onnxruntime"

    def check(self) -> list[str]:
        """Problems that stop ONNX Runtime here: not installed, or a provider it lacks.

        Returns:
            One line per problem, each with its fix; empty when ready.
        """
        try:
            import onnxruntime as ort
        except ImportError:
            return ["onnxruntime is not installed: pip install onnxruntime"]
        available = ort.get_available_providers()
        missing = [provider for provider in self.target.providers if provider not in available]
        if missing:
            return [
                f"execution provider {', '.join(missing)} is not available in onnxruntime"
                f" {ort.__version__} (available: {', '.join(available)}); change the target's"
                " providers or install an onnxruntime build that has it"
            ]
        return []

    def describe(self) -> str:
        """``onnxruntime 1.32.0 (CPUExecutionProvider)``."""
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({', '.join(self.target.providers)})"

    def _profile(
        self,
        model_path: Path,
        *,
        model_name: str,
        batch: int,
        precision: str,
        settings: ProfileConfig,
    ) -> LatencyRecord:
        import onnxruntime as ort

        session = create_session(model_path, self.target)
        feed = {session.get_inputs()[0].name: example_input(model_path, batch, seed=_INPUT_SEED)}
        try:
            session.run(None, feed)
        except Exception as exc:  # onnxruntime's native errors derive from Exception only
            raise RuntimeBackendError(
                f"{model_path}: ONNX Runtime {ort.__version__} cannot run it at batch {batch}"
                f" ({one_line(exc)}); re-export it or pick another runtime"
            ) from exc
        stats = time_runs(
            partial(session.run, None, feed),
            warmup_runs=settings.warmup_runs,
            min_time_s=settings.min_time_s,
            min_runs=settings.min_runs,
            max_runs=settings.max_runs,
        )
        layers = self._layer_times(model_path, feed, settings) if settings.layer_profile_runs > 0 else ()
        return LatencyRecord.from_stats(
            stats,
            model=model_name,
            target=self.target.name,
            runtime=self.name,
            precision=precision,
            batch=batch,
            threads=self.target.threads if self.target.threads is not None else _physical_cores(),
            runtime_version=ort.__version__,
            provider=session.get_providers()[0],
            layers=layers,
            cpu_affinity=cpu_affinity(),
            method=METHOD,
        )

    def _layer_times(
        self, model_path: Path, feed: Mapping[str, Any], settings: ProfileConfig
    ) -> tuple[LayerTime, ...]:
        with tempfile.TemporaryDirectory(prefix="edgekd-ort-profile-") as tmp:
            session = create_session(model_path, self.target, profile_prefix=str(Path(tmp) / "ort"))
            for _ in range(_LAYER_WARMUP_RUNS + settings.layer_profile_runs):
                session.run(None, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
        return layer_times(events, runs=settings.layer_profile_runs, top=settings.top_layers)
