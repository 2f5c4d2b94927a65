"""The target file: where a model runs and how it is timed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from edgekd.config.base import StrictModel


class ConnectionConfig(StrictModel):
    kind: Literal["local", "ssh"] = "local"
    host: str | None = None
    """An ``ssh`` host as the user's ``~/.ssh/config`` knows it."""
    user: str | None = None
    port: PositiveInt | None = None
    python: str = "python3"
    workdir: str = "/tmp/edgekd"
    timeout_s: PositiveFloat = 120.0

    @model_validator(mode="after")
    def _ssh_needs_host(self) -> ConnectionConfig:
        if self.kind == "ssh" and not self.host:
            raise ValueError("connection.kind ssh needs connection.host")
        return self


class HardwareSpec(StrictModel):
    """Peak numbers used only for latency estimates when the target cannot be reached."""

    peak_tops_int8: PositiveFloat | None = None
    peak_tflops_fp16: PositiveFloat | None = None
    peak_tflops_fp32: PositiveFloat | None = None
    memory_bandwidth_gbs: PositiveFloat | None = None


class TargetConfig(StrictModel):
    name: str
    description: str = ""
    connection: ConnectionConfig = ConnectionConfig()
    runtime: Literal["onnxruntime", "tensorrt", "torch"] = "onnxruntime"
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: PositiveInt | None = None
    """Intra-op threads; ``None`` lets the runtime choose (physical cores)."""
    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(default_factory=lambda: ["fp32"])
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1])
    spec: HardwareSpec | None = None
