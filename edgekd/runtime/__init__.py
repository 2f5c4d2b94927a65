"""Runtimes that time models on targets; ``get_runtime(target)`` picks the target's one.

Local backends are registered in ``RUNTIMES`` (onnxruntime, torch, tensorrt); SSH boards are
timed by :class:`edgekd.runtime.ssh.SshRuntime`, which runs the target's runtime on the board.
Heavy libraries are imported only when a runtime checks or times something.
"""

from edgekd.runtime import onnxruntime as _onnxruntime  # noqa: F401  (registers "onnxruntime")
from edgekd.runtime import tensorrt as _tensorrt  # noqa: F401  (registers "tensorrt")
from edgekd.runtime import torch as _torch  # noqa: F401  (registers "torch")
from edgekd.runtime.base import RUNTIMES, Finding, LatencyRecord, LayerTime, Runtime
from edgekd.runtime.select import get_runtime

__all__ = ["RUNTIMES", "Finding", "LatencyRecord", "LayerTime", "Runtime", "get_runtime"]
