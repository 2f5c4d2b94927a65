"""Every distillation method on the quickstart teacher → student pair, over seeds.

    python bench/methods.py                       # 3 seeds, every method, writes docs/methods.md
    python bench/methods.py --seeds 0 --epochs 8  # quicker
    python bench/methods.py --methods hinton crd --no-docs

The quickstart teacher (its pipeline's ResNet, digits at 16×16) is trained once and cached in
``.bench/methods/``; each method then distils the quickstart student (plain CNN 16/32) from it
directly (no assistant), with the quickstart's student training settings. A seed fixes the
student's initial weights (the same for every method) and the batch order; the data split is
the quickstart's. Rows: labels only (no KD), Hinton KD as the quickstart runs it, each method
with RepDistiller's recipe (cross-entropy weight 1 plus the method's weight β; AB and FSP train
on their loss in a first stage, then on labels, as RepDistiller does), the logit methods with
Hinton's 0.9 / 0.1 split, and born-again networks (two Hinton generations). RepDistiller's β
were tuned for CIFAR-100 at learning rate 0.05; here each weighted feature or relation method
tries β × 1, 0.1 and 0.01 on the first seed and keeps the best by *validation* accuracy (the
test split only scores the chosen β).

Wall time per epoch is the median over the main epochs of all seeds (each epoch includes one pass
over the val split); seeds run in the outer loop, so every row is timed across the whole run. A
method's own stage (hint, initialization, paraphraser, margins) is timed apart. Timings use
``--threads`` torch threads (1 by default: steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from edgekd.api import load_pipeline
from edgekd.config import LossSpec, PipelineConfig
from edgekd.data import DataSplits, load_data
from edgekd.distill import LOSSES, build_losses, evaluate, train_model
from edgekd.models import build_model, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "methods.md"
BEGIN, END = "<!-- bench:methods:begin -->", "<!-- bench:methods:end -->"


@dataclass(frozen=True)
class Recipe:
    """One row: the losses (weight, name, params), the CE weight and the number of generations."""

    label: str
    losses: tuple[tuple[float, str, dict[str, Any]], ...] = ()
    ce_weight: float = 1.0
    generations: int = 1
    tune: bool = False
    """Choose β among RepDistiller's × (1, 0.1, 0.01) by val accuracy on the first seed."""

    def scaled(self, factor: float) -> Recipe:
        (weight, name, params), *rest = self.losses
        return replace(self, losses=((weight * factor, name, params), *rest))

    def specs(self) -> list[LossSpec]:
        return [LossSpec(name=n, weight=w, params=p) for w, n, p in self.losses]

    def describe(self) -> str:
        parts = [f"{w:g}·{n}" + (f"({', '.join(f'{k}={v}' for k, v in p.items())})" if p else "")
                 for w, n, p in self.losses]
        text = " + ".join([f"{self.ce_weight:g}·CE", *parts]) if self.ce_weight else " + ".join(parts)
        return text + (f", {self.generations} generations" if self.generations > 1 else "")


HINTON = (0.9, "hinton", {"temperature": 4.0})
# β as in RepDistiller's scripts/run_cifar_distill.sh where the loss is reduced the same way here.
RECIPES = [
    Recipe("no KD"),
    Recipe("hinton", (HINTON,), ce_weight=0.1),
    Recipe("tf_kd", ((0.9, "tf_kd", {}),), ce_weight=0.1),
    Recipe("noisy_teacher", ((0.9, "noisy_teacher", {}),), ce_weight=0.1),
    Recipe("fitnets", ((100.0, "fitnets", {}),), tune=True),
    Recipe("at", ((1000.0, "at", {}),), tune=True),
    Recipe("fsp", ((0.0, "fsp", {"init_epochs": 2}),)),
    Recipe("nst", ((50.0, "nst", {}),), tune=True),
    Recipe("ft", ((200.0, "ft", {}),), tune=True),
    Recipe("ab", ((0.0, "ab", {}),)),
    Recipe("ofd", ((1.0, "ofd", {}),), tune=True),
    Recipe("vid", ((1.0, "vid", {}),), tune=True),
    Recipe("rkd", ((1.0, "rkd", {}),), tune=True),
    Recipe("sp", ((3000.0, "sp", {}),), tune=True),
    Recipe("cc", ((20.0, "cc", {}),), tune=True),
    Recipe("pkt", ((30000.0, "pkt", {}),), tune=True),
    Recipe("crd", ((0.8, "crd", {}),), tune=True),
    Recipe("born-again", (HINTON,), ce_weight=0.1, generations=2),
]


class Clock:
    """A Progress that records when each task starts and advances."""

    def __init__(self) -> None:
        self.marks: dict[str, list[float]] = {}

    def start(self, task: str, total: int | None = None) -> None:
        self.marks[task] = [time.perf_counter()]

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        self.marks[task].append(time.perf_counter())

    def finish(self, task: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def epoch_seconds(self, task: str) -> list[float]:
        marks = self.marks[task]
        return [b - a for a, b in pairwise(marks)]


@dataclass
class Run:
    """One seed: test and val top-1 (%), seconds of each main epoch, seconds of the own stages."""

    test: float
    val: float
    epoch_s: list[float]
    own_stage_s: float


@dataclass
class Result:
    recipe: Recipe
    runs: list[Run] = field(default_factory=list)

    @property
    def accuracy(self) -> list[float]:
        return [r.test for r in self.runs]

    @property
    def epoch_s(self) -> float:
        """Median seconds per main epoch over every run (robust to a busy machine's spikes)."""
        return statistics.median(s for r in self.runs for s in r.epoch_s)


def cached_teacher(config: PipelineConfig, data: DataSplits, cache: Path) -> torch.nn.Module:
    """The quickstart teacher, trained once per (teacher, data, seed) config and kept in ``cache``."""
    teacher_cfg = config.stages.teacher
    key = json.dumps([teacher_cfg.model_dump(mode="json"), config.data.model_dump(mode="json"), config.seed],
                     sort_keys=True)
    path = cache / f"teacher-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.is_file():
        return load_checkpoint(path).module.eval()
    print(f"training the teacher once ({teacher_cfg.train.epochs} epochs) → {path}", file=sys.stderr)
    torch.manual_seed(config.seed)
    teacher = build_model(teacher_cfg.model, data.num_classes, data.input_shape[0])
    train_model(teacher, data.train, teacher_cfg.train, default_batch_size=config.data.batch_size, seed=config.seed,
                val_set=data.val)
    save_checkpoint(path, teacher, teacher_cfg.model, data.num_classes, data.input_shape)
    return teacher.eval()


def run(recipe: Recipe, seed: int, config: PipelineConfig, data: DataSplits, teacher: torch.nn.Module,
        epochs: int) -> Run:
    """Train the student with ``recipe`` for one seed (every generation, for born-again)."""
    distill = config.stages.distill
    train_cfg = distill.train.model_copy(update={"epochs": epochs})
    tutor, epoch_s, own_s = teacher, [], 0.0
    for generation in range(recipe.generations):
        torch.manual_seed(1000 * (generation + 1) + seed)  # the same initial student for every recipe
        student = build_model(distill.student, data.num_classes, data.input_shape[0])
        clock = Clock()
        train_model(student, data.train, train_cfg, default_batch_size=config.data.batch_size, seed=seed,
                    val_set=data.val, teacher=tutor if recipe.losses else None,
                    losses=build_losses(recipe.specs(), recipe.label), ce_weight=recipe.ce_weight, progress=clock,
                    task="main")
        epoch_s += clock.epoch_seconds("main")
        own_s += sum(sum(clock.epoch_seconds(t)) for t in clock.marks if t != "main")
        tutor = student.eval()
    return Run(evaluate(tutor, data.test) * 100, evaluate(tutor, data.val) * 100, epoch_s, own_s)


def first_seed(recipe: Recipe, seed: int, *args: Any) -> Result:
    """The first seed of ``recipe``; a tuned recipe picks its β here, on val accuracy."""
    candidates = [recipe, *(recipe.scaled(f) for f in (0.1, 0.01))] if recipe.tune else [recipe]
    firsts = [(candidate, run(candidate, seed, *args)) for candidate in candidates]
    recipe, first = max(firsts, key=lambda pair: pair[1].val)  # ties keep the larger β
    return Result(recipe, [first])


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(results: dict[str, Result]) -> str:
    """The Markdown table: accuracy mean ± std, the verdict against Hinton KD, and timings."""
    hinton = _mean_std(results["hinton"].accuracy) if "hinton" in results else None
    hinton_epoch = results["hinton"].epoch_s if "hinton" in results else None
    lines = ["| method | recipe | student top-1 % (mean ± std) | vs Hinton KD | s / epoch | × Hinton | own stage s |",
             "|---|---|---:|---|---:|---:|---:|"]
    for label, result in results.items():
        mean, std = _mean_std(result.accuracy)
        epoch = result.epoch_s
        verdict = ratio = "—"
        if len(result.runs) < 2:
            verdict = "one seed: no spread"
        elif hinton is not None and label != "hinton":
            if mean - std > hinton[0] + hinton[1]:
                verdict = "better beyond the spread"
            elif mean + std < hinton[0] - hinton[1]:
                verdict = "worse beyond the spread"
            else:
                verdict = "within the spread"
        if hinton_epoch:
            ratio = f"{epoch / hinton_epoch:.2f}"
        own = statistics.mean(r.own_stage_s for r in result.runs)
        own_text = f"{own:.1f}" if own else "—"
        lines.append(f"| {label} | {result.recipe.describe()} | {mean:.2f} ± {std:.2f} | {verdict} | {epoch:.2f} "
                     f"| {ratio} | {own_text} |")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    """Replace the block between the bench markers of docs/methods.md."""
    doc = DOC.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (default: the quickstart's)")
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the rows (no KD and hinton stay)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench" / "methods")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/methods.md alone")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config, _ = load_pipeline("quickstart")
    data = load_data(config.data, config.seed)
    teacher = cached_teacher(config, data, args.cache)
    epochs = args.epochs if args.epochs is not None else config.stages.distill.train.epochs
    missing = sorted(set(LOSSES.names()) - {r.label for r in RECIPES})
    assert not missing, f"a registered loss has no bench recipe: {missing}"
    chosen = [r for r in RECIPES if args.methods is None or r.label in {"no KD", "hinton", *args.methods}]

    # Seeds in the outer loop: every row is timed across the whole run, whatever else loads the machine.
    started = time.perf_counter()
    results = {r.label: first_seed(r, args.seeds[0], config, data, teacher, epochs) for r in chosen}
    for seed in args.seeds[1:]:
        for result in results.values():
            result.runs.append(run(result.recipe, seed, config, data, teacher, epochs))
    for label, result in results.items():
        mean, std = _mean_std(result.accuracy)
        print(f"{label:14s} {mean:6.2f} ± {std:.2f} %  {result.epoch_s:.2f} s/epoch  {result.recipe.describe()}",
              file=sys.stderr)
    teacher_spec, student_spec = config.stages.teacher.model, config.stages.distill.student
    train = config.stages.distill.train
    command = " ".join(["python bench/methods.py", *sys.argv[1:]])
    setting = (
        f"Quickstart pair: teacher {teacher_spec.name} {teacher_spec.params} ({evaluate(teacher, data.test):.2%}"
        f" test top-1) → student {student_spec.name} {student_spec.params}; digits at {config.data.image_size}×"
        f"{config.data.image_size}, {len(data.train)} training / {len(data.test)} test images; {epochs} student"
        f" epochs (lr {train.lr}, {train.schedule}); seeds {', '.join(map(str, args.seeds))}; β of the feature"
        f" and relation rows chosen on the val split among RepDistiller's × 1 / 0.1 / 0.01;"
        f" {args.threads} torch thread(s). `{command}` took {(time.perf_counter() - started) / 60:.0f} min."
    )
    text = f"{setting}\n\n{table(results)}"
    print(text)
    if not args.no_docs:
        write_doc(text)


if __name__ == "__main__":
    main()
