"""How well ``assistants: auto``'s one-training choice predicts the better chain, on the VALIDATION split only.

    python bench/quickstart.py --pipeline quickstart-search --budget-from quickstart --seeds 0 1 2 --out .bench/qsearch_soft
    python bench/assistants_fidelity.py .bench/qsearch_soft/seed0 .bench/qsearch_soft/seed1 .bench/qsearch_soft/seed2

For each finished quickstart-search run folder (its teacher and its searched student are reused),
every chain ``assistants: auto`` tries (0–2 ResNet assistants) is trained as the distill stage
trains it, with ``--seeds`` training seeds (seed ``k`` gives the model at position ``i`` of a
chain the seed ``run seed + i + 1000 k``; ``k = 0`` is exactly what the pipeline trains). Each
chain's student is scored on val by top-1 accuracy and by soft accuracy (the mean probability
of the true class). The reference is a chain's mean top-1 val accuracy over seeds 1, 2, …
(independent of seed 0); the summary says which chain the stage's rule (``choose_chain``) picks
from seed 0's numbers under each score, and where it stands in the reference. The test split
is never scored.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from proxy_fidelity import distill, kendall, run_setup, val_scores
from torch import nn

from edgekd.config import ModelSpec
from edgekd.models import build_model, count_params
from edgekd.search import build_space
from edgekd.search.assistants import assistant_chains, choose_chain, family_pool

Chain = list[tuple[ModelSpec, int]]


def chain_key(chain: Chain) -> str:
    return " → ".join(f"{s.params['depth']}×{s.params['width']}" for s, _ in chain) or "none"


def train_chains(chains: list[Chain], teacher: nn.Module, student: ModelSpec, pipe, data,
                 seed: int) -> dict[tuple[str, ...], tuple[nn.Module, float, float]]:
    """Every prefix of every chain trained once: ``prefix → (model, val top-1, val soft accuracy)``."""
    trained: dict[tuple[str, ...], tuple[nn.Module, float, float]] = {}
    for chain in chains:
        tutor, prefix = teacher, ()
        for position, spec in enumerate([*(s for s, _ in chain), student], start=1):
            prefix = (*prefix, spec.model_dump_json())
            if prefix not in trained:
                model = distill(spec, tutor, pipe, data, seed + position)
                trained[prefix] = (model, *val_scores(model, data.val))
            tutor = trained[prefix][0]
    return trained


def pick(chains: list[Chain], teacher: nn.Module, student: ModelSpec, trained, metric: int) -> str:
    """The chain ``choose_chain`` (the stage's rule) picks when scores are ``trained``'s ``metric``."""
    prefixes = {id(model): prefix for prefix, (model, *_) in trained.items()}

    def replay(spec: ModelSpec, tutor: nn.Module, _: int) -> tuple[nn.Module, float]:
        entry = trained[(*prefixes.get(id(tutor), ()), spec.model_dump_json())]
        return entry[0], entry[metric]

    chosen = choose_chain(teacher, student, chains, replay).assistants
    return chain_key([(spec, 0) for spec in chosen])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished quickstart-search run folders")
    parser.add_argument("--seeds", type=int, default=4, help="training seeds per chain (seed 0 + the reference's)")
    parser.add_argument("--out", type=Path, default=Path(".bench/assistants_fidelity.json"))
    args = parser.parse_args()
    results = []
    for run in args.runs:
        seed, pipe, data, teacher = run_setup(run)
        student = ModelSpec(**json.loads((run / "report.json").read_text())["search"]["best"])
        teacher_params = count_params(teacher)
        student_params = count_params(build_model(student, data.num_classes, data.input_shape[0]))
        space = build_space(pipe.stages.teacher.model.name, {}, "bench")
        chains = assistant_chains(family_pool(space, data, teacher_params, student_params),
                                  teacher_params, student_params, 2, 3)
        rows = {chain_key(c): {"run": str(run), "seed": seed, "chain": chain_key(c), "student": []} for c in chains}
        picks = {}
        for k in range(args.seeds):
            trained = train_chains(chains, teacher, student, pipe, data, seed + 1000 * k)
            for chain in chains:
                prefix = tuple(s.model_dump_json() for s in [*(s for s, _ in chain), student])
                rows[chain_key(chain)]["student"].append(trained[prefix][1:])
            if k == 0:
                picks = {"top-1 (now)": pick(chains, teacher, student, trained, 1),
                         "soft accuracy": pick(chains, teacher, student, trained, 2)}
            print(json.dumps(list(rows.values())), flush=True)
        results.append({"seed": seed, "rows": list(rows.values()), "picks": picks})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    summarize(results)


def summarize(results: list[dict]) -> None:
    reference = lambda r: statistics.mean(s[0] for s in r["student"][1:])  # noqa: E731
    scores = {"top-1 (now)": lambda r: r["student"][0][0], "soft accuracy": lambda r: r["student"][0][1]}
    for result in results:
        rows = {r["chain"]: r for r in result["rows"]}
        print(f"\nseed {result['seed']}: student val top-1, reference (mean of training seeds 1..) and per"
              " training seed · soft accuracy per training seed")
        for r in sorted(rows.values(), key=reference, reverse=True):
            print(f"  {r['chain']:14s} {reference(r):.2%} ({', '.join(f'{s[0]:.1%}' for s in r['student'])})"
                  f" · soft {', '.join(f'{s[1]:.3f}' for s in r['student'])}")
        best = max(rows.values(), key=reference)
        for name, chosen in result["picks"].items():
            print(f"  {name:14s} picks {chosen:14s} reference {reference(rows[chosen]):.2%}"
                  f" (best {best['chain']} {reference(best):.2%})"
                  f" · Kendall tau over {len(rows)}: {kendall(list(rows.values()), scores[name], reference):+.2f}")


if __name__ == "__main__":
    main()
