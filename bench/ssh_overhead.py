"""The same model profiled locally and over SSH to a loopback sshd: p50 ratio and fixed overhead.

Starts a real sshd on 127.0.0.1 (as tests/integration/test_ssh.py does; needs openssh-server),
exports a small CNN, then alternates, in one process, ``OnnxRuntime.profile()`` here and
``SshRuntime.profile()`` through the sshd, with the same threads and settings (edgekd's
defaults: 10 warm-ups, at least 1 s and 20 runs, 20 per-layer runs). The board is this machine,
so the p50s should agree; the wall-time difference of the two calls is what SSH adds per
profiled model and batch (connections, copies, the remote Python start, clean-up).

    python bench/ssh_overhead.py [--rounds 5] [--threads 1] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # time this checkout's edgekd, and reuse the tests' sshd fixture

from bench.profile_overhead import export_cnn  # noqa: E402
from edgekd.config.pipeline import ProfileConfig  # noqa: E402
from edgekd.runtime.onnxruntime import OnnxRuntime  # noqa: E402
from edgekd.runtime.ssh import SshRuntime  # noqa: E402
from tests.integration.conftest import sshd_unavailable, start_loopback_sshd  # noqa: E402


def timed(runtime, model: Path, batch: int, settings: ProfileConfig) -> tuple[float, float]:
    """(p50 ms, wall seconds of the whole profile() call)."""
    start = time.perf_counter()
    record = runtime.profile(model, model_name="cnn64", batch=batch, precision="fp32", settings=settings)
    return record.p50_ms, time.perf_counter() - start


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    reason = sshd_unavailable()
    if reason:
        sys.exit(f"cannot run: {reason}")

    settings = ProfileConfig()
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-ssh-") as tmp:
        model = Path(tmp) / "cnn64.onnx"
        export_cnn(model)
        sshd = start_loopback_sshd(Path(tmp) / "sshd")
        try:
            remote_target = sshd.target(name="loopback").model_copy(update={"threads": args.threads})
            local_target = remote_target.model_copy(update={
                "name": "local", "connection": remote_target.connection.model_copy(update={"kind": "local"})})
            local, remote = OnnxRuntime(local_target), SshRuntime(remote_target)
            load_before = os.getloadavg()
            rows = []
            for round_index in range(1, args.rounds + 1):
                local_p50, local_s = timed(local, model, args.batch, settings)
                remote_p50, remote_s = timed(remote, model, args.batch, settings)
                rows.append((round_index, local_p50, remote_p50, local_s, remote_s))
            load_after = os.getloadavg()
        finally:
            sshd.kill()

    print(f"CNN 3->64->64->64 ch, 16x16, batch {args.batch}, {args.threads} thread(s), edgekd default settings;"
          f" {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    header = (f"{'round':>5} | {'local p50 ms':>12} | {'ssh p50 ms':>10} | {'ratio':>6} | {'local s':>7} |"
              f" {'ssh s':>6} | {'overhead s':>10}")
    print(header)
    print("-" * len(header))
    for round_index, local_p50, remote_p50, local_s, remote_s in rows:
        print(f"{round_index:>5} | {local_p50:>12.4f} | {remote_p50:>10.4f} | {remote_p50 / local_p50:>6.3f} |"
              f" {local_s:>7.2f} | {remote_s:>6.2f} | {remote_s - local_s:>10.2f}")
    print("-" * len(header))
    ratios = [remote / local for _, local, remote, _, _ in rows]
    overheads = [remote_s - local_s for *_, local_s, remote_s in rows]
    print(f"p50 ratio ssh/local: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    print(f"fixed overhead per profile: median {statistics.median(overheads):.2f} s, max {max(overheads):.2f} s")


if __name__ == "__main__":
    main()
