"""Search benchmarks: latency-table accuracy, and two search workers against one.

    python bench/search.py lut                      # table error on held-out candidates (local-cpu)
    python bench/search.py lut --threads 1          # the same with one ONNX Runtime thread
    python bench/search.py workers --trials 12      # wall time of 1 vs 2 workers on one SQLite study

``lut`` builds a fresh table of a space (MobileNet, 48 candidates, at the quickstart's 16x16
input), fits its overhead on ``--fit`` networks, then measures ``--holdout`` other candidates and
prints how many predictions fall within 10% of the measured p50. Every block and network is
measured ``--rounds`` times round-robin and its median kept, as the table does. Each held-out
candidate is measured again (as many rounds) at the end: how often the two agree within 10% is
the noise floor of that number on this machine.

``workers`` starts a study (the latency table is built once, before the clock starts, so that
the workers do not time networks while competing for the CPU), then runs it to ``--trials``
finished trials once with one worker process and once with two, each worker exactly what
``edgekd search-worker`` runs (:func:`edgekd.search.worker_from_storage`), and prints the wall
times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's edgekd

import torch  # noqa: E402

from edgekd.config import DataConfig, ModelSpec, ProfileConfig, TeacherConfig, TrainConfig  # noqa: E402
from edgekd.data import load_data  # noqa: E402
from edgekd.distill import train_model  # noqa: E402
from edgekd.models import build_model, save_checkpoint  # noqa: E402
from edgekd.search import (  # noqa: E402
    LatencyTable,
    ProxyConfig,
    SearchSettings,
    WorkerSource,
    build_space,
    evaluate_table,
    measure_spec,
    median_over_rounds,
    sample_candidates,
    start_study,
    worker_from_storage,
)
from edgekd.targets import load_target  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)


def lut(args: argparse.Namespace) -> None:
    target = load_target(args.target)
    if args.threads is not None:
        target = target.model_copy(update={"threads": args.threads})
    space = build_space(args.space, json.loads(args.choices))
    shape = (1, args.image_size, args.image_size)
    settings = ProfileConfig(warmup_runs=5, min_time_s=args.min_time, min_runs=20, layer_profile_runs=0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        table = LatencyTable.build(space, target, shape, 10, cache=Path(tmp) / "table.json", settings=settings,
                                   fit_networks=args.fit, rounds=args.rounds, seed=0)
        build_s = time.perf_counter() - started
    fitted = [ModelSpec(**row["spec"]) for rows in table.fits.values() for row in rows]
    held_out = sample_candidates(space, args.holdout, seed=1, exclude=fitted)
    result = evaluate_table(table, held_out, target, settings=settings, rounds=args.rounds)
    again = list(median_over_rounds(
        {str(i): spec for i, spec in enumerate(held_out)},
        lambda spec: measure_spec(spec, target, shape, 10, settings=settings).p50_ms, args.rounds).values())
    agree = [abs(b / row["measured_ms"] - 1) <= 0.10 for row, b in zip(result["errors"], again, strict=True)]

    print(f"target {target.name} (threads {target.threads or 'default'}), {table.runtime}, space {args.space}"
          f" ({len(space)} candidates), input {shape}")
    print(f"table: {len(table.blocks)} blocks + {args.fit} fit networks in {build_s:.1f} s;"
          f" line: {next(iter(table.scale.values())):.3f} × blocks {next(iter(table.overhead_ms.values())):+.4f} ms\n")
    print("| candidate | predicted ms | measured p50 ms | error | re-measured ms |")
    print("|---|---:|---:|---:|---:|")
    for row, remeasured in zip(result["errors"], again, strict=True):
        params = ", ".join(f"{k}={v}" for k, v in row["spec"]["params"].items())
        print(f"| {params} | {row['predicted_ms']:.4f} | {row['measured_ms']:.4f} | {row['error']:+.1%}"
              f" | {remeasured:.4f} |")
    print(f"\nwithin 10% of measured p50: {result['within_10pct']:.0%} of {len(held_out)} held-out candidates"
          f" (median |error| {result['median_abs_error']:.1%})")
    print(f"noise floor: a second measurement within 10% of the first for {sum(agree) / len(agree):.0%}")


def _teacher(folder: Path, data_cfg: DataConfig) -> TeacherConfig:
    spec = ModelSpec(name="resnet_cifar", params={"depth": 8, "width": 16})
    data = load_data(data_cfg, 0)
    torch.manual_seed(0)
    model = build_model(spec, data.num_classes, data.input_shape[0])
    train_model(model, data.train, TrainConfig(epochs=4, lr=0.05), default_batch_size=64, seed=0)
    save_checkpoint(folder / "teacher.pt", model, spec, data.num_classes, data.input_shape)
    return TeacherConfig(model=spec, weights=folder / "teacher.pt")


def workers(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-search-") as tmp:
        rows = _race(Path(tmp), args)
    print(f"{args.trials} trials, MobileNet space, KD proxy {args.epochs} epoch(s) on {args.data_fraction:.0%} of"
          f" digits {args.image_size}x{args.image_size}, latency from a table, torch threads {args.threads} per"
          f" worker, {os.cpu_count()} CPUs\n")
    print("| workers | wall s | trials per worker |")
    print("|---:|---:|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['wall_s']:.1f} | {', '.join(map(str, row['trials']))} |")
    print(f"\ntwo workers / one worker wall time: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}")


def _race(folder: Path, args: argparse.Namespace) -> list[dict]:
    """Run the same study to ``args.trials`` with one worker process, then with two."""
    data_cfg = DataConfig(kind="digits", image_size=args.image_size)
    source = WorkerSource(teacher=_teacher(folder, data_cfg), data=data_cfg, seed=0)
    data = load_data(data_cfg, 0)
    target = load_target(args.target)
    space = build_space("mobilenet", {})
    cache = folder / "table.json"
    settings = SearchSettings(budget_ms=args.budget_ms, n_trials=args.trials, latency="table",
                              proxy=ProxyConfig(epochs=args.epochs, data_fraction=args.data_fraction))
    LatencyTable.build(space, target, data.input_shape, data.num_classes, cache=cache, settings=settings.profile,
                       fit_networks=settings.table_fit_networks, seed=0)
    rows = []
    for count in (1, 2):
        storage = f"sqlite:///{folder / f'workers{count}.db'}"
        start_study(space, data, target, settings, storage=storage, study_name="bench", source=source)
        command = [sys.executable, __file__, "_worker", storage, "bench", str(cache), str(args.threads)]
        started = time.perf_counter()
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
        outputs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
        wall = time.perf_counter() - started
        if any(proc.returncode for proc in procs):
            sys.exit(f"a worker failed with {count} workers")
        trials = [len(out) for out in outputs]
        rows.append({"workers": count, "wall_s": wall, "trials": trials})
    return rows


def worker_process(storage: str, study: str, cache: str, threads: str) -> None:
    """One worker process: what ``edgekd search-worker --storage URL --study NAME`` runs."""
    torch.set_num_threads(int(threads))
    print(json.dumps(worker_from_storage(storage, study, table_cache=Path(cache))))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_process(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    one = sub.add_parser("lut", help="latency-table prediction error on held-out candidates")
    one.add_argument("--target", default="local-cpu")
    one.add_argument("--threads", type=int, default=None, help="override the target's ONNX Runtime threads")
    one.add_argument("--space", default="mobilenet")
    one.add_argument("--choices", default="{}", help="the space's choices as JSON (default: the space's defaults)")
    one.add_argument("--image-size", type=int, default=16)
    one.add_argument("--fit", type=int, default=8)
    one.add_argument("--holdout", type=int, default=24)
    one.add_argument("--rounds", type=int, default=3, help="measurements of each block and network, round-robin")
    one.add_argument("--min-time", type=float, default=0.2, help="seconds of timed runs per measurement")
    two = sub.add_parser("workers", help="wall time of one vs two workers on one study")
    two.add_argument("--target", default="local-cpu")
    two.add_argument("--trials", type=int, default=12)
    two.add_argument("--epochs", type=int, default=2)
    two.add_argument("--data-fraction", type=float, default=0.5)
    two.add_argument("--image-size", type=int, default=16)
    two.add_argument("--budget-ms", type=float, default=0.05)
    two.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = parser.parse_args()
    {"lut": lut, "workers": workers}[args.bench](args)


if __name__ == "__main__":
    main()
