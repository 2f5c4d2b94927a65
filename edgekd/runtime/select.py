"""Which runtime times a target: SSH boards, else the target's runtime or its first ready fallback."""

from __future__ import annotations

from pathlib import Path

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.runtime.base import RUNTIMES, Finding, LatencyRecord, Runtime


class NoRuntimeReady(Runtime):
    """Stands for a local target none of whose runtimes can run here; :meth:`check` says why, for each.

    :meth:`Runtime.profile` raises before :meth:`_profile` is reached, since :meth:`check` is
    never empty.
    """

    def __init__(self, target: TargetConfig, candidates: list[Runtime]) -> None:
        super().__init__(target)
        self.name = target.runtime  # type: ignore[misc]
        self.candidates = candidates

    def check(self) -> list[str]:
        """Every candidate's problems, each prefixed with the candidate's name."""
        return [f"{runtime.name}: {problem}" for runtime in self.candidates for problem in runtime.check()]

    def diagnose(self) -> list[Finding]:
        """One problem line per candidate problem, and which order they were tried in."""
        order = " → ".join(runtime.name for runtime in self.candidates)
        return [Finding(False, f"{self.target.name}: no runtime is ready (tried {order})"),
                *(Finding(False, problem) for problem in self.check())]

    def _profile(self, model_path: Path, *, model_name: str, batch: int, precision: str,
                 settings: ProfileConfig) -> LatencyRecord:
        raise AssertionError("profile() stops at check() for a target without a ready runtime")


def get_runtime(target: TargetConfig) -> Runtime:
    """The runtime that times ``target``.

    SSH targets get :class:`~edgekd.runtime.ssh.SshRuntime`, which runs ``target.runtime`` on
    the board. Local targets get ``target.runtime`` if it is ready here, else the first ready
    runtime of ``target.fallbacks`` (``local-cuda``: TensorRT, else ONNX Runtime with the CUDA
    provider, else torch on CUDA). With no fallbacks the runtime is returned even when not ready,
    so that its own :meth:`~Runtime.check` explains; with fallbacks and none ready, a
    :class:`NoRuntimeReady` that lists every candidate's problems.

    Args:
        target: The target to run on.

    Returns:
        A runtime instance.

    Raises:
        UnknownNameError: If a named runtime is not registered.
    """
    if target.connection.kind == "ssh":
        from edgekd.runtime.ssh import SshRuntime

        return SshRuntime(target)
    candidates = [RUNTIMES.get(name)(target) for name in (target.runtime, *target.fallbacks)]
    if len(candidates) == 1:
        return candidates[0]
    for runtime in candidates:
        if not runtime.check():
            return runtime
    return NoRuntimeReady(target, candidates)
