"""Boards reached over SSH: copy the model and a timing script, run it there, copy the result back.

The OpenSSH client does the work (``ssh``, ``scp``), so the user's ``~/.ssh/config`` (aliases,
jump hosts, ``IdentityFile``), keys, agent and ``known_hosts`` apply. edgekd adds
``BatchMode=yes`` (never a prompt), ``ConnectTimeout`` and keep-alives (a board that drops
is noticed in seconds), and never turns host-key checking off. Every remote command is one
string built with :func:`shlex.join`. Each profile makes its own folder under the target's
``workdir`` and removes it afterwards, also when the run fails.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgekd.config.pipeline import ProfileConfig
from edgekd.config.target import TargetConfig
from edgekd.errors import RuntimeBackendError, TargetError
from edgekd.onnx_model import input_spec, load_onnx
from edgekd.profiling import summarize
from edgekd.runtime.base import Finding, LatencyRecord, Runtime
from edgekd.runtime.trtexec import (
    LAYER_INFO_FILE,
    PROFILE_FILE,
    TIMES_FILE,
    TrtexecOutput,
    trtexec_command,
    trtexec_record,
)

log = logging.getLogger(__name__)

SCRIPT_NAME = "remote_timer.py"
"""The timing script in this package, copied to the board as text."""
EXIT_MISSING_MODULE = 3
EXIT_MISSING_COMMAND = 4
_SSH_ERROR = 255
_COMMAND_NOT_FOUND = 127
_KEEPALIVE_S = 5
_KEEPALIVE_COUNT = 3
_INPUT_SEED = 0
_METHOD = "host clock (perf_counter_ns) around session.run, on the board (over SSH)"
_PROBE = """\
import json, platform, shutil, sys
found = {"python": platform.python_version(), "modules": {}, "which": {}}
for arg in sys.argv[1:]:
    if arg.startswith("which:"):
        found["which"][arg[6:]] = shutil.which(arg[6:])
        continue
    try:
        module = __import__(arg)
    except ImportError:
        found["modules"][arg] = None
    else:
        providers = getattr(module, "get_available_providers", None)
        found["modules"][arg] = {"version": getattr(module, "__version__", "?"),
                                  "providers": providers() if providers else None}
print(json.dumps(found))
"""


def timer_script() -> str:
    """The text of the self-contained timing script that runs on the board."""
    return resources.files("edgekd.runtime").joinpath(SCRIPT_NAME).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RemoteResult:
    """A finished remote command."""

    returncode: int
    stdout: str
    stderr: str


class SshClient:
    """Runs commands on, and copies files to and from, one target's host with OpenSSH.

    Args:
        target: An SSH target.
    """

    def __init__(self, target: TargetConfig) -> None:
        self.target = target
        self.connection = target.connection
        self._control_path: str | None = None

    @property
    def destination(self) -> str:
        """``user@host`` or ``host``, as ssh takes it."""
        host = self.connection.host or ""
        return f"{self.connection.user}@{host}" if self.connection.user else host

    def _options(self) -> list[str]:
        c = self.connection
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(c.connect_timeout_s))}",
                   "-o", f"ServerAliveInterval={_KEEPALIVE_S}", "-o", f"ServerAliveCountMax={_KEEPALIVE_COUNT}"]
        if c.ssh_config:
            options += ["-F", str(Path(c.ssh_config).expanduser())]
        if c.identity_file:
            options += ["-i", str(Path(c.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if c.known_hosts:
            options += ["-o", f"UserKnownHostsFile={Path(c.known_hosts).expanduser()}"]
        if self._control_path is not None:
            options += ["-o", "ControlMaster=no", "-o", f"ControlPath={self._control_path}"]
        return options

    def _ssh_port(self) -> list[str]:
        return ["-p", str(self.connection.port)] if self.connection.port else []

    def ssh_argv(self, command: list[str]) -> list[str]:
        """The local argv that runs ``command`` on the host, quoted as one string with :func:`shlex.join`."""
        return ["ssh", *self._options(), *self._ssh_port(), self.destination, "--", shlex.join(command)]

    @contextmanager
    def shared_connection(self) -> Iterator[None]:
        """Run the block's commands and copies over one SSH connection (an OpenSSH ControlMaster).

        The master is a child process (``ssh -M -N``) that this block owns and ends; each
        command then skips the key exchange and authentication.

        Raises:
            TargetError: If the connection cannot be opened.
        """
        # A short folder: the control socket's path must fit a Unix socket address.
        with tempfile.TemporaryDirectory(prefix="edgekd-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None) as tmp:
            socket_path, log_path = os.path.join(tmp, "cm"), Path(tmp) / "master.log"
            with open(log_path, "w") as log:
                master = subprocess.Popen(
                    ["ssh", *self._options(), "-o", "ControlMaster=yes", "-o", f"ControlPath={socket_path}", "-N",
                     *self._ssh_port(), self.destination],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                )
            try:
                deadline = time.monotonic() + self.connection.connect_timeout_s + 5
                while not os.path.exists(socket_path):
                    if master.poll() is not None:
                        raise TargetError(self._connection_error(log_path.read_text(), "connect"))
                    if time.monotonic() > deadline:
                        raise TargetError(f"target {self.target.name}: no SSH connection to {self.destination}"
                                          f" within {self.connection.connect_timeout_s:g} s; check the board is on"
                                          " and reachable, or raise connection.connect_timeout_s")
                    time.sleep(0.01)
                self._control_path = socket_path
                yield
            finally:
                self._control_path = None
                master.terminate()
                try:
                    master.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    master.kill()
                    master.wait()

    def _remote_path(self, path: str) -> str:
        host = self.destination
        if ":" in (self.connection.host or ""):  # an IPv6 address
            user, _, address = host.rpartition("@")
            host = f"{user}@[{address}]" if user else f"[{address}]"
        return f"{host}:{path}"

    def run(self, command: list[str], *, what: str, timeout_s: float | None = None) -> RemoteResult:
        """Run ``command`` on the host.

        Args:
            command: The remote argv.
            what: What the command does, for error messages.
            timeout_s: Limit in seconds (default: the target's ``connection.timeout_s``).

        Returns:
            The exit code and output of the remote command.

        Raises:
            TargetError: If ssh could not connect or lost the connection (exit 255), or
                the command did not finish in time.
        """
        return self._call(self.ssh_argv(command), what=what, timeout_s=timeout_s)

    def upload(self, files: list[Path], remote_dir: str) -> None:
        """Copy local ``files`` into ``remote_dir`` on the host with scp."""
        self._scp([*(str(f) for f in files), self._remote_path(f"{remote_dir}/")], what="copy the model over")

    def download(self, remote_file: str, local_file: Path) -> None:
        """Copy ``remote_file`` from the host to ``local_file`` with scp."""
        self._scp([self._remote_path(remote_file), str(local_file)], what="copy the result back")

    def _scp(self, paths: list[str], *, what: str) -> None:
        port = ["-P", str(self.connection.port)] if self.connection.port else []  # scp's port flag
        done = self._call(["scp", "-q", *self._options(), *port, *paths], what=what)
        if done.returncode != 0:
            raise TargetError(f"target {self.target.name}: could not {what} ({_last_line(done.stderr)})")

    def _call(self, argv: list[str], *, what: str, timeout_s: float | None = None) -> RemoteResult:
        limit = self.connection.timeout_s if timeout_s is None else timeout_s
        log.debug("target %s: %s", self.target.name, shlex.join(argv))
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TargetError(
                f"target {self.target.name}: {self.destination} did not finish ({what}) within {limit:g} s;"
                " check the board is up and not overloaded, or raise connection.timeout_s"
            ) from None
        except FileNotFoundError:
            raise TargetError(
                f"target {self.target.name}: the OpenSSH client ({argv[0]}) is not installed here;"
                " install it (apt-get install openssh-client)"
            ) from None
        if done.returncode == _SSH_ERROR:
            raise TargetError(self._connection_error(done.stderr, what))
        return RemoteResult(done.returncode, done.stdout, done.stderr)

    def _connection_error(self, stderr: str, what: str) -> str:
        line = _last_line(stderr)
        where = f"target {self.target.name}: {what} over SSH to {self.destination} failed ({line})"
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            return (f"{where}; the host key is unknown or changed: connect once with ssh {self.destination} to"
                    " check and accept it (or set connection.known_hosts); edgekd never skips host-key checks")
        if "Permission denied" in stderr:
            return (f"{where}; no key was accepted: install your public key on the board (ssh-copy-id)"
                    " or set connection.identity_file")
        return (f"{where}; check the board is on and reachable and that ssh {self.destination} works"
                " without a prompt (host, port, user, ~/.ssh/config)")


class SshRuntime(Runtime):
    """Times ONNX models on an SSH board with its ONNX Runtime or its trtexec (``target.runtime``)."""

    model_format = "onnx"

    def __init__(self, target: TargetConfig) -> None:
        super().__init__(target)
        self.name = target.runtime  # type: ignore[misc]  # the runtime on the board
        self.client = SshClient(target)

    def check(self) -> list[str]:
        """Local problems only: the OpenSSH client must be installed (the board is asked by :meth:`diagnose`)."""
        missing = [tool for tool in ("ssh", "scp") if shutil.which(tool) is None]
        if missing:
            return [f"the OpenSSH client ({', '.join(missing)}) is not installed here:"
                    " apt-get install openssh-client (or your system's OpenSSH package)"]
        return []

    def describe(self) -> str:
        """``onnxruntime on pi@raspberrypi over SSH``."""
        return f"{self.name} on {self.client.destination} over SSH"

    def precisions_for(self, stored: str) -> list[str]:
        """As the runtime on the board: trtexec builds FP16 engines from FP32 files, ONNX Runtime does not."""
        possible = {"fp32", "fp16"} if self.name == "tensorrt" and stored == "fp32" else {stored}
        return [p for p in self.target.precisions if p in possible]

    def diagnose(self) -> list[Finding]:
        """Reachable, the board's Python, and the runtime and its version there, each with a fix."""
        local = self.check()
        if local:
            return [Finding(False, problem) for problem in local]
        name, python = self.target.name, self.target.connection.python
        wanted = ["onnxruntime", "numpy"] if self.name == "onnxruntime" else [f"which:{self.target.trtexec}"]
        try:
            with self.client.shared_connection():
                findings = [Finding(True, f"{name}: reachable as {self.client.destination} (ssh, BatchMode)")]
                done = self.client.run([python, "-c", _PROBE, *wanted], what="check the board's runtime")
        except TargetError as exc:
            return [Finding(False, str(exc))]
        if done.returncode != 0:
            return [*findings, Finding(False, self._python_problem(done))]
        found = json.loads(done.stdout)
        findings.append(Finding(True, f"{name}: {python} is Python {found['python']}"))
        for module, info in found["modules"].items():
            if info is None:
                findings.append(Finding(False, f"{name}: {module} is missing for {python} on the board:"
                                               f" run {python} -m pip install {module} there"))
                continue
            available = info.get("providers")
            findings.append(Finding(True, f"{name}: {module} {info['version']}"
                                          + (f" ({', '.join(available)})" if available else "")))
            lacking = [p for p in self.target.providers if available is not None and p not in available]
            if lacking:
                findings.append(Finding(False, f"{name}: {module} on the board lacks {', '.join(lacking)};"
                                               " change the target's providers or install a build that has them"))
        for tool, path in found["which"].items():
            findings.append(
                Finding(True, f"{name}: trtexec at {path}") if path else Finding(
                    False, f"{name}: {tool} is not on the board: install TensorRT (JetPack puts trtexec at"
                           " /usr/src/tensorrt/bin/trtexec) or set the target's trtexec to its path"))
        return findings

    def _profile(
        self,
        model_path: Path,
        *,
        model_name: str,
        batch: int,
        precision: str,
        settings: ProfileConfig,
    ) -> LatencyRecord:
        remote_dir = f"{self.target.connection.workdir.rstrip('/')}/run-{uuid.uuid4().hex[:12]}"
        job = self._job(model_path, remote_dir, batch, precision, settings)
        with tempfile.TemporaryDirectory(prefix="edgekd-ssh-") as tmp:
            staging = Path(tmp)
            (staging / "model.onnx").symlink_to(Path(model_path).resolve())
            (staging / SCRIPT_NAME).write_text(timer_script(), encoding="utf-8")
            (staging / "job.json").write_text(json.dumps(job), encoding="utf-8")
            with self.client.shared_connection():
                self._run_remotely(staging, remote_dir)
            result = json.loads((staging / "result.json").read_text(encoding="utf-8"))
        common = {"model": model_name, "target": self.target.name, "batch": batch, "precision": precision}
        if self.name == "tensorrt":
            return self._trtexec_record(result, settings, common)
        return self._onnxruntime_record(result, settings, common)

    def _run_remotely(self, staging: Path, remote_dir: str) -> None:
        """Make ``remote_dir``, copy the staged files there, run the job, copy ``result.json`` back, clean up."""
        made = self.client.run(["mkdir", "-p", remote_dir], what="make the remote folder")
        if made.returncode != 0:
            raise TargetError(f"target {self.target.name}: cannot make {remote_dir} on {self.client.destination}"
                              f" ({_last_line(made.stderr)}); set connection.workdir to a writable folder")
        try:
            self.client.upload([staging / "model.onnx", staging / SCRIPT_NAME, staging / "job.json"], remote_dir)
            done = self.client.run([self.target.connection.python, f"{remote_dir}/{SCRIPT_NAME}",
                                    f"{remote_dir}/job.json"], what="run the timing script")
            if done.returncode != 0:
                raise self._script_error(done)
            self.client.download(f"{remote_dir}/result.json", staging / "result.json")
        finally:
            self._clean_up(remote_dir)

    def _job(self, model_path: Path, remote_dir: str, batch: int, precision: str,
             settings: ProfileConfig) -> dict[str, Any]:
        name, shape, dtype = input_spec(load_onnx(model_path))
        full_shape = [batch, *shape[1:]]
        if self.name == "tensorrt":
            argv = trtexec_command(self.target.trtexec, f"{remote_dir}/model.onnx", input_name=name,
                                   input_shape=tuple(full_shape), precision=precision, settings=settings,
                                   out_dir=remote_dir)
            return {"mode": "command", "argv": argv, "outputs": [TIMES_FILE, PROFILE_FILE, LAYER_INFO_FILE]}
        return {
            "mode": "onnxruntime", "model": "model.onnx", "seed": _INPUT_SEED,
            "input": {"name": name, "shape": full_shape, "dtype": str(dtype)},
            "threads": self.target.threads, "providers": list(self.target.providers),
            **settings.model_dump(include={"warmup_runs", "min_time_s", "min_runs", "max_runs", "layer_profile_runs"}),
        }

    def _onnxruntime_record(self, result: dict[str, Any], settings: ProfileConfig,
                            common: dict[str, Any]) -> LatencyRecord:
        from edgekd.runtime.onnxruntime import layer_times

        layers = (layer_times(result["layer_events"], runs=settings.layer_profile_runs, top=settings.top_layers)
                  if settings.layer_profile_runs > 0 else ())
        return LatencyRecord.from_stats(
            summarize(result["samples_ns"]), **common, runtime=self.name, threads=result["threads"],
            runtime_version=result["runtime_version"], provider=result["provider"], layers=layers,
            cpu_affinity=result["cpu_affinity"], method=_METHOD,
        )

    def _trtexec_record(self, result: dict[str, Any], settings: ProfileConfig,
                        common: dict[str, Any]) -> LatencyRecord:
        files = result["files"]
        if result["returncode"] != 0:
            tail = " | ".join(result["log"].strip().splitlines()[-3:])
            raise RuntimeBackendError(
                f"target {self.target.name}: trtexec failed on the board (exit {result['returncode']}): {tail}"
            )
        output = TrtexecOutput(result["log"], files.get(TIMES_FILE), files.get(PROFILE_FILE),
                               files.get(LAYER_INFO_FILE))
        return trtexec_record(output, settings=settings, where=f"trtexec on {result['host']}", **common)

    def _script_error(self, done: RemoteResult) -> Exception:
        name, python, host = self.target.name, self.target.connection.python, self.client.destination
        details = _json_line(done.stderr)
        if done.returncode == EXIT_MISSING_MODULE and "missing_modules" in details:
            modules = " ".join(details["missing_modules"])
            return TargetError(f"target {name}: {modules} not installed for {python} on {host}:"
                               f" on the board run {python} -m pip install {modules}")
        if done.returncode == EXIT_MISSING_MODULE and "missing_providers" in details:
            return TargetError(
                f"target {name}: onnxruntime {details['version']} on {host} lacks"
                f" {', '.join(details['missing_providers'])} (it has {', '.join(details['available'])});"
                " change the target's providers or install an onnxruntime build that has them on the board")
        if done.returncode == EXIT_MISSING_COMMAND:
            return TargetError(f"target {name}: {details.get('missing_command')} not found on {host}: install"
                               " TensorRT (JetPack puts trtexec at /usr/src/tensorrt/bin/trtexec) or set the"
                               " target's trtexec to its path")
        if done.returncode == _COMMAND_NOT_FOUND:
            return TargetError(self._python_problem(done))
        return RuntimeBackendError(f"target {name}: the timing script failed on {host}"
                                   f" (exit {done.returncode}: {_last_line(done.stderr)})")

    def _python_problem(self, done: RemoteResult) -> str:
        python = self.target.connection.python
        return (f"target {self.target.name}: {python} failed on {self.client.destination}"
                f" (exit {done.returncode}: {_last_line(done.stderr)}); install Python 3.8+ on the board or set"
                " connection.python to its path")

    def _clean_up(self, remote_dir: str) -> None:
        try:
            done = self.client.run(["rm", "-rf", "--", remote_dir], what="remove the remote folder",
                                   timeout_s=self.target.connection.connect_timeout_s + 10)
        except TargetError as exc:
            log.warning("%s; %s may be left on the board", exc, remote_dir)
            return
        if done.returncode != 0:
            log.warning("target %s: could not remove %s (%s)", self.target.name, remote_dir, _last_line(done.stderr))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _json_line(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_last_line(text))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
