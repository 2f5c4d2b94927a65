"""How well the search's KD proxy predicts full distillation, on the VALIDATION split only.

    python bench/quickstart.py --pipeline quickstart-search --budget-from quickstart --seeds 0 1 2 \\
        --out .bench/qsearch_fixed --set 'stages.distill.assistants=[{name: resnet_cifar, params: {depth: 8, width: 16}}]'
    python bench/proxy_fidelity.py .bench/qsearch_fixed/seed0 .bench/qsearch_fixed/seed1 .bench/qsearch_fixed/seed2

For each finished quickstart-search run folder (its teacher, its ``assistant_1`` and its trial
table are reused), every candidate of the search space is

* scored by the pipeline's proxy (``stages.search.proxy``) with ``--proxy-seeds`` seeds, and
* fully distilled from the run's assistant as the distill stage does (same epochs, lr, losses),
  with ``--full-seeds`` seeds: the mean val accuracy of those is the reference the proxy should
  predict.

Each score is recorded as top-1 val accuracy and as val *soft accuracy* (the mean probability
the model gives the true class: an estimate of the same quantity with less sampling noise on
a small val split; ``ProxyConfig.score``, soft accuracy by default since this study). The
summary says, per run, which candidate within the run's budget each rule picks and where that
candidate stands in the reference; the test split is never scored.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import torch

from edgekd.api import load_pipeline
from edgekd.config import ModelSpec, PipelineConfig
from edgekd.data import load_data
from edgekd.distill import build_losses, evaluate, soft_accuracy, train_model
from edgekd.models import build_model, load_checkpoint
from edgekd.search.proxy import ProxyConfig, kd_proxy_train


def val_scores(model: torch.nn.Module, val) -> tuple[float, float]:
    """(top-1 accuracy, soft accuracy) on ``val``."""
    return evaluate(model, val), soft_accuracy(model, val)


def distill(spec: ModelSpec, tutor: torch.nn.Module, pipe: PipelineConfig, data, seed: int) -> torch.nn.Module:
    """``spec`` distilled from ``tutor`` as the distill stage trains one model of its chain."""
    cfg = pipe.stages.distill
    torch.manual_seed(seed)
    model = build_model(spec, data.num_classes, data.input_shape[0])
    train_model(model, data.train, cfg.train, default_batch_size=pipe.data.batch_size, seed=seed,
                teacher=tutor, losses=build_losses(cfg.losses, "stages.distill"), ce_weight=cfg.ce_weight)
    return model.eval()


def full_distill(spec: ModelSpec, tutor: torch.nn.Module, pipe: PipelineConfig, data, seed: int) -> tuple[float, float]:
    return val_scores(distill(spec, tutor, pipe, data, seed), data.val)


def run_setup(run: Path) -> tuple[int, PipelineConfig, object, torch.nn.Module]:
    """A finished quickstart-search run's seed, its pipeline config, data splits and teacher."""
    seed = int(json.loads((run / "manifest.json").read_text())["config"]["seed"])
    base, _ = load_pipeline("quickstart-search")
    pipe = PipelineConfig.model_validate({**base.model_dump(mode="json"), "seed": seed})
    teacher = load_checkpoint(run / "teacher" / "teacher.pt").module.eval()
    return seed, pipe, load_data(pipe.data, seed), teacher


def candidates(pipe: PipelineConfig) -> list[ModelSpec]:
    choices = pipe.stages.search.choices["channels"]
    return [ModelSpec(name=pipe.stages.search.space, params={"channels": list(c)}) for c in itertools.product(*choices)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished quickstart-search run folders")
    parser.add_argument("--proxy-seeds", type=int, default=3)
    parser.add_argument("--full-seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(".bench/proxy_fidelity.json"))
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        seed, pipe, data, teacher = run_setup(run)
        assistant = load_checkpoint(run / "distill" / "assistant_1.pt").module.eval()
        trials = json.loads((run / "report.json").read_text())["search"]["trials"]
        met = {json.dumps(t["spec"]["params"]["channels"]): t["met_budget"] for t in trials}
        for spec in candidates(pipe):
            row = {"run": str(run), "seed": seed, "channels": spec.params["channels"],
                   "met_budget": met[json.dumps(spec.params["channels"])], "proxy": [], "full": []}
            for k in range(args.proxy_seeds):
                proxy = ProxyConfig.model_validate({**pipe.stages.search.proxy, "seed": seed + 1000 * k})
                model, _ = kd_proxy_train(spec, teacher, data, proxy)
                row["proxy"].append(val_scores(model, data.val))
            for k in range(args.full_seeds):
                row["full"].append(full_distill(spec, assistant, pipe, data, seed + 2 + 1000 * k))
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    summarize(rows)


RULES = {
    "proxy acc, 1 seed (before)": lambda r: r["proxy"][0][0],
    "proxy soft acc, 1 seed (now)": lambda r: r["proxy"][0][1],
    "proxy acc, mean of seeds": lambda r: statistics.mean(p[0] for p in r["proxy"]),
    "proxy soft acc, mean of seeds": lambda r: statistics.mean(p[1] for p in r["proxy"]),
}


def summarize(rows: list[dict]) -> None:
    reference = lambda r: statistics.mean(f[0] for f in r["full"])  # noqa: E731
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        print(f"\nseed {seed}: full-distillation val acc (mean of {len(mine[0]['full'])}) and proxy scores")
        for r in sorted(mine, key=reference, reverse=True):
            print(f"  {str(r['channels']):10s} {'within' if r['met_budget'] else 'over  '} full {reference(r):.2%}"
                  f" ({', '.join(f'{f[0]:.1%}' for f in r['full'])}) soft {statistics.mean(f[1] for f in r['full']):.3f}"
                  f" · proxy acc {', '.join(f'{p[0]:.1%}' for p in r['proxy'])}"
                  f" soft {', '.join(f'{p[1]:.3f}' for p in r['proxy'])}")
        within = [r for r in mine if r["met_budget"]]
        best = max(within, key=reference)
        for name, score in RULES.items():
            pick = max(within, key=score)
            print(f"  {name:30s} picks {str(pick['channels']):10s} reference {reference(pick):.2%}"
                  f" (best within budget {best['channels']} {reference(best):.2%})")
        for name, score in RULES.items():
            print(f"  {name:30s} Kendall tau vs reference over all {len(mine)}: {kendall(mine, score, reference):+.2f}")


def kendall(rows: list[dict], a, b) -> float:
    pairs = list(itertools.combinations(rows, 2))
    sign = lambda v: (v > 0) - (v < 0)  # noqa: E731
    return sum(sign(a(x) - a(y)) * sign(b(x) - b(y)) for x, y in pairs) / len(pairs)


if __name__ == "__main__":
    main()
