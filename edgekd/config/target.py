"""The target file: where a model runs and how it is timed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from edgekd.config.base import StrictModel

RuntimeName = Literal["onnxruntime", "tensorrt", "torch"]


class ConnectionConfig(StrictModel):
    """How edgekd reaches the machine that runs the model.

    ``local`` runs in this process. ``ssh`` uses the OpenSSH client (``ssh``/``scp``) with
    ``BatchMode=yes``, so keys, ``~/.ssh/config`` (jump hosts, aliases) and ``known_hosts``
    apply as they do for the user; host keys are always checked.
    """

    kind: Literal["local", "ssh"] = "local"
    host: str | None = None
    """An ``ssh`` host, or an alias that the SSH config file knows."""
    user: str | None = None
    port: PositiveInt | None = None
    python: str = "python3"
    """The board's Python that runs the timing script (a venv's ``bin/python`` works)."""
    workdir: str = Field("/tmp/edgekd", pattern=r"^[A-Za-z0-9_./+-]+$")
    """Folder on the board under which each run makes, then deletes, its own sub-folder."""
    timeout_s: PositiveFloat = 120.0
    """Longest one remote command (copy, timing run, clean-up) may take."""
    connect_timeout_s: PositiveFloat = 10.0
    """Longest the SSH connection itself may take to open (``ConnectTimeout``)."""
    ssh_config: str | None = None
    """An SSH config file used instead of ``~/.ssh/config`` (``ssh -F``)."""
    identity_file: str | None = None
    """A private key (``ssh -i``); without it the SSH config and agent decide."""
    known_hosts: str | None = None
    """A known-hosts file (``UserKnownHostsFile``); host keys are checked against it."""

    @model_validator(mode="after")
    def _ssh_needs_host(self) -> ConnectionConfig:
        if self.kind == "ssh" and not self.host:
            raise ValueError("connection.kind ssh needs connection.host")
        return self


class HardwareSpec(StrictModel):
    """Dense peak numbers, used only for roofline estimates where nothing could be measured."""

    peak_tops_int8: PositiveFloat | None = None
    peak_tflops_fp16: PositiveFloat | None = None
    peak_tflops_fp32: PositiveFloat | None = None
    memory_bandwidth_gbs: PositiveFloat | None = None


class TargetConfig(StrictModel):
    name: str
    description: str = ""
    connection: ConnectionConfig = ConnectionConfig()
    runtime: RuntimeName = "onnxruntime"
    fallbacks: list[Literal["onnxruntime", "torch"]] = Field(default_factory=list)
    """Local runtimes tried in order when ``runtime`` is not usable on this machine."""
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    """ONNX Runtime execution providers, in order of preference."""
    threads: PositiveInt | None = None
    """Intra-op threads; ``None`` lets the runtime choose (physical cores)."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Device of the torch runtime."""
    trtexec: str = "trtexec"
    """The ``trtexec`` executable (a name on ``PATH`` or a path) for the TensorRT runtime."""
    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(default_factory=lambda: ["fp32"])
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1])
    spec: HardwareSpec | None = None

    @model_validator(mode="after")
    def _remote_runtimes(self) -> TargetConfig:
        if self.connection.kind == "ssh":
            if self.runtime == "torch":
                raise ValueError("runtime torch runs on local targets only; use onnxruntime or tensorrt over ssh")
            if self.fallbacks:
                raise ValueError("fallbacks apply to local targets only; remove them from this ssh target")
        return self
