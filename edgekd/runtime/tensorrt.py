"""TensorRT on this machine: ``trtexec`` when the target's one is found, else the Python API.

The Python path builds an engine with :func:`edgekd.export.tensorrt.build_engine` (FP16 when
asked, INT8 from the QDQ nodes), binds torch CUDA buffers to it and times
``execute_async_v3`` with CUDA events, H2D and D2H apart from compute; per-layer times
come from a TensorRT profiler in a second pass. TensorRT cannot be installed on edgekd's
CPU build machines: this code runs where it is importable and its tests skip elsewhere.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import partial
from pathlib import Path

from edgekd.config.pipeline import ProfileConfig
from edgekd.errors import RuntimeBackendError
from edgekd.onnx_model import example_input, input_spec, load_onnx
from edgekd.runtime.base import RUNTIMES, LatencyRecord, LayerTime, Runtime
from edgekd.runtime.trtexec import (
    LAYER_INFO_FILE,
    PROFILE_FILE,
    TIMES_FILE,
    TrtexecOutput,
    trtexec_command,
    trtexec_record,
)

_INPUT_SEED = 0
_TRTEXEC_TIMEOUT_S = 1800.0
_LAYER_WARMUP_RUNS = 2


@RUNTIMES.register("tensorrt")
class TensorRtRuntime(Runtime):
    """TensorRT engines built from the ONNX file, timed by trtexec or by the Python API."""

    name = "tensorrt"

    def _trtexec(self) -> str | None:
        return shutil.which(self.target.trtexec)

    def check(self) -> list[str]:
        """Problems that stop TensorRT here: neither trtexec nor the Python API with a CUDA device.

        Returns:
            One line per problem, each with its fix; empty when ready.
        """
        if self._trtexec() is not None:
            return []
        import importlib.util

        if importlib.util.find_spec("tensorrt") is None:
            return [
                f"TensorRT is not installed here (no {self.target.trtexec!r} on PATH, no tensorrt module):"
                " on a machine with an NVIDIA GPU run pip install 'edgekd[tensorrt]', or set the target's"
                " trtexec to the trtexec executable"
            ]
        import torch

        if not torch.cuda.is_available():
            return [
                "TensorRT's Python timing binds torch CUDA buffers, and torch sees no CUDA device:"
                " install a CUDA build of torch, or set the target's trtexec to the trtexec executable"
            ]
        return []

    def describe(self) -> str:
        """``trtexec (/usr/src/tensorrt/bin/trtexec)`` or ``TensorRT 10.3.0 (Python API) on <GPU>``."""
        trtexec = self._trtexec()
        if trtexec is not None:
            return f"trtexec ({trtexec})"
        import tensorrt as trt
        import torch

        return f"TensorRT {trt.__version__} (Python API) on {torch.cuda.get_device_name()}"

    def precisions_for(self, stored: str) -> list[str]:
        """FP32 ONNX builds FP32 or FP16 engines; a QDQ (int8) file builds an INT8 engine."""
        possible = {"fp32", "fp16"} if stored == "fp32" else {stored}
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
        trtexec = self._trtexec()
        common = {"model": model_name, "target": self.target.name, "batch": batch, "precision": precision}
        if trtexec is not None:
            return trtexec_record(self._run_trtexec(trtexec, model_path, batch, precision, settings),
                                  settings=settings, where=f"trtexec ({trtexec})", **common)
        return self._profile_python(model_path, settings=settings, **common)

    def _run_trtexec(self, trtexec: str, model_path: Path, batch: int, precision: str,
                     settings: ProfileConfig) -> TrtexecOutput:
        name, shape, _ = input_spec(load_onnx(model_path))
        with tempfile.TemporaryDirectory(prefix="edgekd-trtexec-") as tmp:
            argv = trtexec_command(trtexec, str(model_path), input_name=name, input_shape=(batch, *shape[1:]),
                                   precision=precision, settings=settings, out_dir=tmp)
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=_TRTEXEC_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeBackendError(
                    f"trtexec did not finish within {_TRTEXEC_TIMEOUT_S:.0f} s on {model_path}"
                ) from exc
            if done.returncode != 0:
                tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
                raise RuntimeBackendError(
                    f"trtexec failed on {model_path} at {precision}, batch {batch} (exit {done.returncode}): {tail}"
                )
            out = Path(tmp)
            texts = {file: (out / file).read_text() if (out / file).is_file() else None
                     for file in (TIMES_FILE, PROFILE_FILE, LAYER_INFO_FILE)}
        return TrtexecOutput(done.stdout, texts[TIMES_FILE], texts[PROFILE_FILE], texts[LAYER_INFO_FILE])

    def _profile_python(self, model_path: Path, *, model: str, target: str, batch: int, precision: str,
                        settings: ProfileConfig) -> LatencyRecord:
        import tensorrt as trt
        import torch

        from edgekd.export.tensorrt import build_engine
        from edgekd.runtime.cuda_timing import METHOD, time_cuda_runs

        with tempfile.TemporaryDirectory(prefix="edgekd-trt-") as tmp:
            engine_path = build_engine(model_path, Path(tmp) / "model.engine", batch=batch, fp16=precision == "fp16")
            engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        host_input = torch.from_numpy(example_input(model_path, batch, seed=_INPUT_SEED)).pin_memory()
        context.set_input_shape(inputs[0], tuple(host_input.shape))
        device = {n: torch.empty(tuple(context.get_tensor_shape(n)), dtype=_torch_dtype(engine.get_tensor_dtype(n)),
                                 device="cuda") for n in names}
        for n, tensor in device.items():
            context.set_tensor_address(n, tensor.data_ptr())
        host_output = torch.empty_like(device[outputs[0]], device="cpu").pin_memory()
        stream = torch.cuda.Stream()
        timing = time_cuda_runs(
            partial(device[inputs[0]].copy_, host_input, non_blocking=True),
            lambda: context.execute_async_v3(stream.cuda_stream),
            lambda: host_output.copy_(device[outputs[0]], non_blocking=True),
            stream=stream,
            settings=settings,
        )
        layers = _layer_times(trt, context, stream, settings) if settings.layer_profile_runs > 0 else ()
        return LatencyRecord.from_stats(
            timing.stats, model=model, target=target, runtime=self.name, precision=precision, batch=batch,
            threads=None, runtime_version=trt.__version__,
            provider=f"TensorRT Python API on {torch.cuda.get_device_name()}", layers=layers,
            h2d_ms=timing.h2d_ms, compute_ms=timing.compute_ms, d2h_ms=timing.d2h_ms, method=METHOD,
        )


def _torch_dtype(trt_dtype):
    import tensorrt as trt
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8,
             trt.int32: torch.int32, trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[trt_dtype]


def _layer_times(trt, context, stream, settings: ProfileConfig) -> tuple[LayerTime, ...]:
    """Mean time per layer over ``layer_profile_runs`` runs under a TensorRT profiler."""
    totals: dict[str, float] = {}

    class _Profiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.active = False

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            if self.active:
                totals[layer_name] = totals.get(layer_name, 0.0) + ms

    profiler = _Profiler()
    context.profiler = profiler
    for run in range(_LAYER_WARMUP_RUNS + settings.layer_profile_runs):
        profiler.active = run >= _LAYER_WARMUP_RUNS
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
    summed = sum(totals.values())
    if summed <= 0:
        return ()
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[: settings.top_layers]
    return tuple(
        LayerTime(name=name, op_type="", mean_ms=ms / settings.layer_profile_runs, share=ms / summed)
        for name, ms in ranked
    )
