"""edgekd's timing script for boards reached over SSH (copied there as text; edgekd never imports it).

Self-contained: Python 3.8+ and the standard library, plus numpy and onnxruntime for ONNX
Runtime jobs (imported only then). ``python3 remote_timer.py JOB.json`` reads the job that
edgekd copied next to it and writes ``result.json`` beside it; edgekd copies that back and
computes the statistics, so that they mean the same as for a local run.

Jobs:
- ``onnxruntime``: the session options of edgekd's local ONNX Runtime (full graph
  optimization, sequential, one inter-op thread, the target's intra-op threads and
  providers), a fixed-seed normal input, warm-up, then runs timed one by one with
  ``perf_counter_ns`` until ``min_runs`` and ``min_time_s`` are reached (or ``max_runs``),
  then a second session under ONNX Runtime's profiler for per-node times.
- ``command``: runs ``argv`` (trtexec) and returns its log and the files it exported.

Exit codes: 0 done; 3 a Python module or execution provider is missing; 4 the command is
not found. In both error cases the last line of stderr is a JSON object saying what is missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time

EXIT_MISSING_MODULE = 3
EXIT_MISSING_COMMAND = 4
LAYER_WARMUP_RUNS = 2
KERNEL_SUFFIX = "_kernel_time"


def fail(code, **details):
    """Print ``details`` as one JSON line on stderr and exit with ``code``."""
    sys.stderr.write(json.dumps(details) + "\n")
    sys.exit(code)


def cpu_affinity():
    """How many CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def physical_cores():
    """Physical cores (psutil when installed), else logical CPUs: ONNX Runtime's default threads."""
    try:
        import psutil
    except ImportError:
        return os.cpu_count()
    return psutil.cpu_count(logical=False) or os.cpu_count()


def import_runtime():
    """numpy and onnxruntime, or exit 3 naming every missing one."""
    modules, missing = [], []
    for name in ("onnxruntime", "numpy"):
        try:
            modules.append(__import__(name))
        except ImportError:
            missing.append(name)
    if missing:
        fail(EXIT_MISSING_MODULE, missing_modules=missing, python=sys.executable)
    return modules


def create_session(ort, job, model, profile_prefix=None):
    """A session with edgekd's options (see the module docstring)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if job["threads"] is not None:
        options.intra_op_num_threads = job["threads"]
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, options, providers=job["providers"])


def time_runs(run_once, job):
    """Durations in nanoseconds of the timed runs, after the warm-up runs."""
    for _ in range(job["warmup_runs"]):
        run_once()
    clock = time.perf_counter_ns
    samples = [0] * job["max_runs"]
    done = 0
    deadline = clock() + int(job["min_time_s"] * 1e9)
    while done < job["max_runs"]:
        start = clock()
        run_once()
        end = clock()
        samples[done] = end - start
        done += 1
        if done >= job["min_runs"] and end >= deadline:
            break
    return samples[:done]


def layer_events(ort, job, model, feed, folder):
    """The profiler's ``model_run`` and per-node kernel events of the profiled runs."""
    session = create_session(ort, job, model, profile_prefix=os.path.join(folder, "ort-profile"))
    for _ in range(LAYER_WARMUP_RUNS + job["layer_profile_runs"]):
        session.run(None, feed)
    path = session.end_profiling()
    with open(path) as handle:
        events = json.load(handle)
    os.remove(path)
    kept = []
    for event in events:
        name = event.get("name", "")
        is_run = event.get("cat") == "Session" and name == "model_run"
        is_node = event.get("cat") == "Node" and name.endswith(KERNEL_SUFFIX)
        if is_run or is_node:
            op = event.get("args", {}).get("op_name", "unknown")
            kept.append({"cat": event["cat"], "name": name, "ts": event.get("ts", 0), "dur": event.get("dur", 0),
                         "args": {"op_name": op}})
    return kept


def time_onnxruntime(job, folder):
    """Run an ``onnxruntime`` job."""
    ort, np = import_runtime()
    available = ort.get_available_providers()
    missing = [p for p in job["providers"] if p not in available]
    if missing:
        fail(EXIT_MISSING_MODULE, missing_providers=missing, available=available, version=ort.__version__)
    model = os.path.join(folder, job["model"])
    session = create_session(ort, job, model)
    spec = job["input"]
    array = np.random.default_rng(job["seed"]).standard_normal(spec["shape"]).astype(spec["dtype"])
    feed = {spec["name"]: array}
    session.run(None, feed)
    samples = time_runs(lambda: session.run(None, feed), job)
    events = layer_events(ort, job, model, feed, folder) if job["layer_profile_runs"] > 0 else []
    return {
        "runtime_version": ort.__version__,
        "provider": session.get_providers()[0],
        "threads": job["threads"] if job["threads"] is not None else physical_cores(),
        "samples_ns": samples,
        "layer_events": events,
    }


def run_command(job, folder):
    """Run a ``command`` job: its exit code, log, and the text of the files it should export."""
    if shutil.which(job["argv"][0]) is None:
        fail(EXIT_MISSING_COMMAND, missing_command=job["argv"][0])
    done = subprocess.run(job["argv"], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    files = {}
    for name in job["outputs"]:
        path = os.path.join(folder, name)
        files[name] = open(path).read() if os.path.isfile(path) else None
    return {"returncode": done.returncode, "log": done.stdout, "files": files}


def main(argv):
    """Read the job, run it, write ``result.json`` next to it (atomically)."""
    job_path = os.path.abspath(argv[1])
    folder = os.path.dirname(job_path)
    with open(job_path) as handle:
        job = json.load(handle)
    result = time_onnxruntime(job, folder) if job["mode"] == "onnxruntime" else run_command(job, folder)
    result.update(host=platform.node(), python=platform.python_version(), cpu_affinity=cpu_affinity())
    partial = os.path.join(folder, "result.json.partial")
    with open(partial, "w") as handle:
        json.dump(result, handle)
    os.replace(partial, os.path.join(folder, "result.json"))


if __name__ == "__main__":
    main(sys.argv)
