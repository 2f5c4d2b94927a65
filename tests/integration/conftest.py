"""A real OpenSSH server on 127.0.0.1 for the SSH target's tests (and bench/ssh_overhead.py).

The fixture generates a host key and a user key, writes an ``sshd_config`` and a client SSH
config (an alias with the port, user, key and a known_hosts holding the host key: host-key
checking stays on), and runs ``sshd -D`` as the current user on a free port.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from edgekd.config.target import ConnectionConfig, TargetConfig

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)
PRIVSEP_DIR = Path("/run/sshd")
ALIAS = "edgekd-loopback"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sshd_unavailable() -> str | None:
    """Why no loopback sshd can run here, or ``None``."""
    if SSHD is None or shutil.which("ssh-keygen") is None:
        return "sshd is not installed (apt-get install openssh-server openssh-client; .ci/run installs it)"
    if not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(parents=True)
        except OSError as exc:
            return f"sshd needs {PRIVSEP_DIR}, which cannot be made here ({exc.strerror})"
    return None


@dataclass
class LoopbackSshd:
    """A running sshd and the client files that reach it."""

    port: int
    folder: Path
    process: subprocess.Popen
    ssh_config: Path
    identity_file: Path
    known_hosts: Path

    @property
    def workdir(self) -> Path:
        """The ``connection.workdir`` of the targets: on this machine, seen from both sides."""
        return self.folder / "remote"

    def target(self, name: str = "loopback", **connection: object) -> TargetConfig:
        """An SSH target through the alias, with this Python as the board's Python and one thread."""
        settings = {"kind": "ssh", "host": ALIAS, "ssh_config": str(self.ssh_config), "python": sys.executable,
                    "workdir": str(self.workdir), "timeout_s": 60.0, **connection}
        return TargetConfig(name=name, connection=ConnectionConfig(**settings), threads=1,
                            precisions=["fp32"], batch_sizes=[1])

    def kill(self) -> None:
        """SIGKILL sshd and every process it started (sessions, their shells, the timing script)."""
        try:
            processes = [psutil.Process(self.process.pid)]
            processes += processes[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=10)


def start_loopback_sshd(folder: Path) -> LoopbackSshd:
    """Generate keys and configs in ``folder`` and start sshd on a free loopback port.

    Raises:
        RuntimeError: If sshd does not accept connections within 10 s.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remote").mkdir(exist_ok=True)
    host_key, user_key = folder / "host_ed25519", folder / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)], check=True)
    (folder / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nSubsystem sftp internal-sftp\nMaxStartups 100\nLogLevel ERROR\n"
    )
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    ssh_config = folder / "ssh_config"
    ssh_config.write_text(
        f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {user_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
    )
    log = open(folder / "sshd.log", "w")  # noqa: SIM115  (sshd writes to it for its lifetime)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited at once: {(folder / 'sshd.log').read_text().strip()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("sshd did not accept connections within 10 s")
    return LoopbackSshd(port, folder, process, ssh_config, user_key, known_hosts)


def _sshd(folder: Path) -> Iterator[LoopbackSshd]:
    reason = sshd_unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = start_loopback_sshd(folder)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """One loopback sshd for a test module."""
    yield from _sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[LoopbackSshd]:
    """A loopback sshd for one test, which may kill it."""
    yield from _sshd(tmp_path / "sshd")
