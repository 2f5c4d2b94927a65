"""torch: times an edgekd checkpoint (``.pt``) eagerly on the CPU, or on CUDA with device events.

On CUDA, batches up to :data:`CUDA_GRAPH_MAX_BATCH` replay a captured CUDA graph, so that
kernel-launch overhead does not dominate small models; larger batches run eagerly. The
input's host-to-device and the output's device-to-host copies are timed apart from the
compute (pinned host memory, one stream). ``torch`` is imported inside functions.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from edgekd.config.pipeline import ProfileConfig
from edgekd.profiling import time_runs
from edgekd.runtime.base import RUNTIMES, LatencyRecord, Runtime, cpu_affinity

CUDA_GRAPH_MAX_BATCH = 32
"""Largest batch timed as a CUDA graph replay."""
_CUDA_GRAPH_WARMUP = 3
_INPUT_SEED = 0
_CPU_METHOD = "host clock (perf_counter_ns) around the forward pass"


@RUNTIMES.register("torch")
class TorchRuntime(Runtime):
    """torch eager on the target's ``device`` (``cpu`` or ``cuda``), from an edgekd checkpoint."""

    name = "torch"
    model_format = "checkpoint"

    def check(self) -> list[str]:
        """Problems that stop torch here: no CUDA device when the target asks for one.

        Returns:
            One line per problem, each with its fix; empty when ready.
        """
        import torch

        if self.target.device == "cuda" and not torch.cuda.is_available():
            build = ("a CPU-only build" if torch.version.cuda is None
                     else f"CUDA {torch.version.cuda}, no device visible")
            return [
                f"torch {torch.__version__} ({build}) cannot use a CUDA device: install a CUDA build of torch"
                " on a machine with an NVIDIA GPU, or set the target's device to cpu"
            ]
        return []

    def describe(self) -> str:
        """``torch 2.13.0 on cpu`` or ``torch 2.13.0 on NVIDIA H100 (CUDA 12.8)``."""
        import torch

        if self.target.device == "cuda":
            return f"torch {torch.__version__} on {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
        return f"torch {torch.__version__} on cpu"

    def precisions_for(self, stored: str) -> list[str]:
        """FP32 checkpoints run at fp32, and at fp16 (``module.half()``) on CUDA."""
        possible = {stored, "fp16"} if self.target.device == "cuda" and stored == "fp32" else {stored}
        return [p for p in self.target.precisions if p in possible]

    def _profile(
        self,
        model_path: Path,
        *,
        model_name: str,
        batch: int,
        precision: str,
        settings: ProfileConfig,
    ) -> LatencyRecord:
        import numpy as np
        import torch

        from edgekd.models import load_checkpoint

        loaded = load_checkpoint(model_path)
        shape = (batch, *loaded.input_shape)
        host_input = torch.from_numpy(np.random.default_rng(_INPUT_SEED).standard_normal(shape).astype(np.float32))
        common = {"model": model_name, "target": self.target.name, "runtime": self.name, "precision": precision,
                  "batch": batch, "layers": ()}
        with torch.inference_mode():
            if self.target.device == "cuda":
                return self._profile_cuda(loaded.module, host_input, precision, settings, common)
            return self._profile_cpu(loaded.module, host_input, settings, common)

    def _profile_cpu(self, module, host_input, settings: ProfileConfig, common: dict) -> LatencyRecord:
        import torch

        previous = torch.get_num_threads()
        if self.target.threads is not None:
            torch.set_num_threads(self.target.threads)
        try:
            module(host_input)
            stats = time_runs(
                partial(module, host_input),
                warmup_runs=settings.warmup_runs,
                min_time_s=settings.min_time_s,
                min_runs=settings.min_runs,
                max_runs=settings.max_runs,
            )
            threads = torch.get_num_threads()
        finally:
            torch.set_num_threads(previous)
        return LatencyRecord.from_stats(
            stats, **common, threads=threads, runtime_version=torch.__version__, provider="cpu",
            cpu_affinity=cpu_affinity(), method=_CPU_METHOD,
        )

    def _profile_cuda(self, module, host_input, precision: str, settings: ProfileConfig,
                      common: dict) -> LatencyRecord:
        import torch

        from edgekd.runtime.cuda_timing import METHOD, time_cuda_runs

        dtype = torch.float16 if precision == "fp16" else torch.float32
        module = module.to("cuda", dtype)
        pinned_input = host_input.to(dtype).pin_memory()
        device_input = torch.empty_like(pinned_input, device="cuda")
        device_input.copy_(pinned_input)
        stream = torch.cuda.Stream()
        use_graph = host_input.shape[0] <= CUDA_GRAPH_MAX_BATCH
        output: list = [None]
        if use_graph:
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(_CUDA_GRAPH_WARMUP):
                    module(device_input)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output[0] = module(device_input)
            compute = graph.replay
        else:
            def compute() -> None:
                output[0] = module(device_input)
            with torch.cuda.stream(stream):
                compute()
            stream.synchronize()
        pinned_output = torch.empty_like(output[0], device="cpu").pin_memory()
        timing = time_cuda_runs(
            partial(device_input.copy_, pinned_input, non_blocking=True),
            compute,
            lambda: pinned_output.copy_(output[0], non_blocking=True),
            stream=stream,
            settings=settings,
        )
        mode = "CUDA graph" if use_graph else "eager"
        return LatencyRecord.from_stats(
            timing.stats, **common, threads=None,
            runtime_version=f"{torch.__version__} (CUDA {torch.version.cuda})",
            provider=f"{torch.cuda.get_device_name()} ({mode})",
            h2d_ms=timing.h2d_ms, compute_ms=timing.compute_ms, d2h_ms=timing.d2h_ms, method=METHOD,
        )
