"""Commands. Exit codes: 0 done and every budget met; 1 a budget missed; 2 bad input; 3 a bug."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgekd import __version__
from edgekd.cli.progress import make_progress
from edgekd.errors import EdgeKDError

EXIT_BUDGET_MISSED = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3

app = typer.Typer(
    help="Distill, quantize, export and profile small models for GPUs and embedded boards.\n\n"
    "Exit codes: 0 done and every budget met · 1 done but a budget missed · 2 bad input · 3 a bug in edgekd.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
targets_app = typer.Typer(help="List, show and check latency targets.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")

PIPED_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    """A rich console; piped (a CI log) it is 160 columns wide, not rich's 80, so tables keep
    their names and numbers whole. ``COLUMNS`` still sets the width."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


out = _console()
err = _console(stderr=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn EdgeKDError into a one-line message and exit code 2 (with --debug, after its traceback)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgeKDError as exc:
            if _state["debug"]:
                traceback.print_exc()
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            err.print("interrupted: finished stages are kept; run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"edgekd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@app.command()
@user_errors
def compress(
    pipeline: Annotated[str, typer.Argument(help="A pipeline YAML path, or the name of a built-in one.")] = "quickstart",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<pipeline name>).")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t", help="Target name or YAML path; repeat for several. Replaces the pipeline's stages.profile.targets.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value: KEY.PATH=VALUE (YAML value).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard the run folder's finished stages and start over.")] = False,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Train on N processes (DistributedDataParallel: gloo on CPU, NCCL on GPUs) through torchrun.")] = 1,
) -> None:
    """Run a pipeline: teacher → assistants → student → INT8 → ONNX → latency → report.

    Writes to the run folder student.onnx (and student.int8.onnx with a qkd stage), report.md,
    report.html and report.json (which student to ship and why, budgets, latency). Re-running
    skips stages whose config, input files (data, teacher weights) and edgekd version are
    unchanged; an interrupted run resumes. Ctrl-C exits 130 and keeps the finished stages.
    """
    from edgekd.api import compress as run
    from edgekd.distributed import init_from_env, shutdown
    from edgekd.progress import NullProgress

    if nproc > 1:
        raise typer.Exit(_torchrun(nproc))
    is_main = init_from_env().is_main
    progress = make_progress(err) if is_main else NullProgress()
    try:
        result = run(pipeline, out=out_dir, targets=target or [], overrides=set_ or [], fresh=fresh, progress=progress)
    finally:
        if is_main:
            progress.close()
        shutdown()
    if is_main:
        _print_summary(result.report, result.run_dir)
    if not result.budgets_ok:
        raise typer.Exit(EXIT_BUDGET_MISSED)


def _torchrun(nproc: int) -> int:
    """Run this same command under torchrun with ``nproc`` processes; its exit code."""
    import subprocess

    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--nproc":
            del args[i : i + 2]
            break
        if arg.startswith("--nproc="):
            del args[i]
            break
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "edgekd", *args]
    return subprocess.call(cmd)


def _print_summary(report: dict, run_dir: Path) -> None:
    """The report's verdict, budgets, models and the deployable model's latency, as terminal tables."""
    from edgekd.report import tables

    deployable = report["deployable"]["model"]
    out.print(_rich(tables.model_table(report), "models"))
    records = [r for r in report["latency"] if r["model"] == deployable]
    if records:
        out.print(_rich(tables.latency_table(records), f"latency of {deployable}"))
    if report["budgets"]:
        out.print(_rich(tables.budget_table(report["budgets"]), "budgets"))
    out.print(tables.verdict(report["budgets"]), markup=False)
    out.print(f"deployable model: {run_dir / report['deployable']['onnx']}", markup=False)
    out.print(f"report: {run_dir / 'report.html'} · {run_dir / 'report.md'} · {run_dir / 'report.json'}", markup=False)


def _rich(table, title: str) -> Table:
    """A report table (plain-text cells) as a rich Table."""
    rich_table = Table(title=title, title_justify="left")
    for header, align in zip(table.headers, table.align):
        rich_table.add_column(header, justify="right" if align == "r" else "left")
    for row, tags in zip(table.rows, table.tags):
        rich_table.add_row(*(escape(cell) for cell in row), style="bold" if "deployable" in tags else None)
    return rich_table


@app.command()
@user_errors
def profile(
    models: Annotated[list[Path], typer.Argument(help="ONNX files (or edgekd checkpoints .pt for torch targets); several are timed side by side.")],
    target: Annotated[list[str] | None, typer.Option("--target", "-t", help="Target name or YAML path; repeat for several (default local-cpu).")] = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="Batch size; repeat for several (default: the target's).")] = None,
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed runs at least.")] = 1.0,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the records as JSON to this file.")] = None,
) -> None:
    """Time models on targets: p50/p90/p99, throughput and the slowest layers.

    A target that cannot be measured is reported (exit 2) after the others; where it has a
    hardware spec, a roofline estimate marked (estimated) stands in.
    """
    from edgekd.api import profile as run
    from edgekd.config import ProfileConfig
    from edgekd.fsutil import atomic_write_json
    from edgekd.report import render_latency_markdown

    if min_time < 0:
        raise _fail(f"--min-time {min_time}: give a number of seconds of at least 0")
    settings = ProfileConfig(min_time_s=min_time)
    progress = make_progress(err)
    try:
        result = run(models, target or ["local-cpu"], batch_sizes=batch or [], settings=settings, progress=progress)
    finally:
        progress.close()
    out.print(render_latency_markdown(result.records), markup=False, highlight=False, soft_wrap=True)
    if json_file is not None:
        atomic_write_json(json_file, result.records)
    for failure in result.failures:
        where = ", ".join(f"{key} {failure[key]}" for key in ("model", "precision", "batch") if failure[key] is not None)
        err.print(f"[bold red]not measured:[/] {escape(failure['error'])}" + (f" ({escape(where)})" if where else ""),
                  highlight=False, soft_wrap=True)
    if result.failures:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
@user_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="An edgekd checkpoint (*.pt in a run folder's distill/ or teacher/).")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or tensorrt.")] = "onnx",
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default: the checkpoint's path with .onnx or .engine).")] = None,
) -> None:
    """Export a checkpoint to ONNX (FP32, dynamic batch) or a TensorRT engine.

    The TensorRT engine is built for batch 1 (FP16 where the GPU has it) from an ONNX file
    written beside it. INT8 models come from the qkd stage of `edgekd compress`:
    RUN/student.int8.onnx.
    """
    from edgekd.api import export_checkpoint

    if fmt not in ("onnx", "tensorrt"):
        raise _fail(f"--format {fmt!r}: choose onnx or tensorrt")
    path = export_checkpoint(checkpoint, fmt=fmt, out=out_file)
    out.print(f"wrote {path}", markup=False)


@app.command()
@user_errors
def report(run_dir: Annotated[Path, typer.Argument(help="The folder of a finished run.")]) -> None:
    """Re-render report.json / report.md / report.html of a finished run."""
    from edgekd.api import rerender_report
    from edgekd.report import budgets_met

    result = rerender_report(run_dir)
    out.print(f"wrote {run_dir / 'report.html'}, {run_dir / 'report.md'}, {run_dir / 'report.json'}", markup=False)
    if not budgets_met(result["budgets"]):
        raise typer.Exit(EXIT_BUDGET_MISSED)


@app.command("search-worker")
@user_errors
def search_worker(
    storage: Annotated[str, typer.Option("--storage", help="The study's SQLAlchemy URL (sqlite:///…/search.db, postgresql://…).")],
    study: Annotated[str, typer.Option("--study", help="The study name (report.json: search.study_name).")],
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Run at most this many trials (default: until the study is complete).")] = None,
) -> None:
    """Join a running student search from another process or machine: trials are shared through the storage."""
    from edgekd.search import worker_from_storage

    progress = make_progress(err)
    try:
        done = worker_from_storage(storage, study, trials, progress=progress)
    finally:
        progress.close()
    out.print(f"this worker finished {len(done)} trial(s) of study {study}: {done}", markup=False)


@app.command()
def methods() -> None:
    """List the distillation losses with their papers."""
    from edgekd.distill import BORN_AGAIN_PAPER, LOSSES

    table = Table("name", "kind", "paper")
    for name, cls in LOSSES.items():
        table.add_row(name, cls.kind, cls.paper)
    out.print(table)
    out.print(f"chain option stages.distill.generations: n — born-again networks ({BORN_AGAIN_PAPER})", markup=False)


@targets_app.command("list")
def targets_list() -> None:
    """The built-in targets."""
    from edgekd.targets import builtin_targets, load_target

    table = Table("name", "runtime", "connection", "description")
    for name in builtin_targets():
        t = load_target(name)
        table.add_row(name, t.runtime, t.connection.kind, t.description)
    out.print(table)


@targets_app.command("show")
@user_errors
def targets_show(target: Annotated[str, typer.Argument(help="Target name or YAML path.")]) -> None:
    """Print a target's full configuration."""
    from edgekd.targets import load_target

    out.print_json(json.dumps(load_target(target).model_dump(mode="json")))


@targets_app.command("check")
@user_errors
def targets_check(target: Annotated[str, typer.Argument(help="Target name or YAML path.")]) -> None:
    """Check a target can be used now: reachable (SSH), runtime and version present, what to install if not."""
    from edgekd.runtime import get_runtime
    from edgekd.targets import load_target

    findings = get_runtime(load_target(target)).diagnose()
    for finding in findings:
        if finding.ok:
            out.print(f"[green]✓[/] {escape(finding.message)}", highlight=False, soft_wrap=True)
        else:
            err.print(f"[red]✗[/] {escape(finding.message)}", highlight=False, soft_wrap=True)
    if not all(finding.ok for finding in findings):
        raise typer.Exit(EXIT_BAD_INPUT)


def main() -> None:
    """Entry point: an unexpected exception is a bug, exit 3, never the 1 that means "budget missed"."""
    try:
        app(prog_name="edgekd")
    except Exception:
        traceback.print_exc()
        err.print(f"edgekd {__version__} hit a bug (exit {EXIT_BUG}); please report it with the traceback above",
                  markup=False)
        sys.exit(EXIT_BUG)
    sys.exit(0)
