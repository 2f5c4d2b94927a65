"""Runtimes that time ONNX models on targets; ``get_runtime(target)`` picks the target's one."""

from edgekd.runtime import onnxruntime as _onnxruntime  # noqa: F401  (registers "onnxruntime")
from edgekd.runtime.base import RUNTIMES, LatencyRecord, LayerTime, Runtime, get_runtime

__all__ = ["RUNTIMES", "LatencyRecord", "LayerTime", "Runtime", "get_runtime"]
