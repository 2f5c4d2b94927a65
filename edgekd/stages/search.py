"""search (AKD): the student architecture this teacher teaches best within the latency budget.

The default study is SQLite at the top of the run folder (``search.db``), outside the stage's
half-written folder, so a killed search resumes from the trials it finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.config import PipelineConfig, TargetConfig, TeacherConfig
from edgekd.errors import ConfigError
from edgekd.pipeline.manifest import fingerprint
from edgekd.pipeline.stage import STAGES, RunContext, Stage, StageRecord
from edgekd.stages.chain import TEACHER_CHECKPOINT, load_teacher_module

@STAGES.register("search")
class SearchStage(Stage):
    name = "search"
    needs = ("teacher",)

    def enabled(self, ctx: RunContext) -> bool:
        return ctx.config.stages.search is not None

    def fingerprint_inputs(self, ctx: RunContext) -> dict[str, Any]:
        return {"search": ctx.config.stages.search.model_dump(mode="json"), "budget_ms": budget_ms(ctx.config, search_target(ctx.config, ctx.targets).name),
                "target": search_target(ctx.config, ctx.targets).model_dump(mode="json"),
                "data": ctx.data_inputs()}

    def run(self, ctx: RunContext, work_dir: Path, inputs: dict[str, StageRecord]) -> dict[str, Any]:
        from edgekd.search import WorkerSource, build_space, default_storage, reference_budget, run_search

        cfg = ctx.config.stages.search
        data = ctx.data()
        teacher = load_teacher_module(ctx, inputs["teacher"])
        checkpoint = inputs["teacher"].dir / TEACHER_CHECKPOINT
        teacher_cfg = ctx.config.stages.teacher
        if checkpoint.exists():  # workers load the trained teacher, never train it again
            teacher_cfg = TeacherConfig(model=teacher_cfg.model, weights=checkpoint.resolve())
        source = WorkerSource(teacher=teacher_cfg, data=ctx.config.data, seed=ctx.config.seed, base_dir=ctx.base_dir)
        storage = cfg.storage or default_storage(ctx.run_dir)
        study_name = cfg.study_name or f"{ctx.config.name}-{fingerprint(self.fingerprint_inputs(ctx))[:8]}"
        target = search_target(ctx.config, ctx.targets)
        chosen = settings(ctx.config, target.name)
        if cfg.budget_from is not None:
            ctx.progress.note(f"search budget: timing {cfg.budget_from.name} {cfg.budget_from.params} on {target.name}")
            budget = reference_budget(cfg.budget_from, target, data, storage=storage, study_name=study_name,
                                      settings=chosen.profile, precision=chosen.precision,
                                      rounds=chosen.timing_rounds)
            chosen = chosen.model_copy(update={"budget_ms": budget})
        result = run_search(
            build_space(cfg.space, cfg.choices, "stages.search.choices"), teacher, data,
            target, chosen, run_dir=ctx.run_dir, storage=storage,
            study_name=study_name, source=source, progress=ctx.progress,
        )
        return {"student": result.best.model_dump(mode="json"), "result": result.to_dict(),
                "target": search_target(ctx.config, ctx.targets).name}


def search_target(config: PipelineConfig, targets: list[TargetConfig]) -> TargetConfig:
    wanted = config.stages.search.target or targets[0].name
    for target in targets:
        if target.name == wanted:
            return target
    raise ConfigError(f"stages.search.target: {wanted!r} is not profiled (profiled: "
                      f"{', '.join(t.name for t in targets)}); add it to stages.profile.targets")


def budget_ms(config: PipelineConfig, target: str) -> float | None:
    """The budget the config states for the search's ``target`` (its name); ``None`` with
    ``budget_from`` (timed when the search starts)."""
    search = config.stages.search
    if search.budget_from is not None:
        return None
    if search.budget_ms is not None:
        return search.budget_ms
    limit = config.budgets.max_latency_p50_ms.get(target)
    if limit is None:
        raise ConfigError(f"stages.search: no latency budget; set stages.search.budget_ms, stages.search.budget_from"
                          f" or budgets.max_latency_p50_ms.{target}")
    return limit


_UNTIMED_MS = 1.0
"""``budget_ms`` of the settings until the ``budget_from`` model is timed (``SearchStage.run``)."""


def settings(config: PipelineConfig, target: str):
    """The library's typed search settings, from the stage's config (errors name the YAML key);
    with ``budget_from``, ``budget_ms`` is a stand-in until that model is timed."""
    from edgekd.config import validate
    from edgekd.search import ProxyConfig, RewardConfig, SearchSettings

    cfg = config.stages.search
    return SearchSettings(
        budget_ms=_UNTIMED_MS if cfg.budget_from is not None else budget_ms(config, target), reference=cfg.budget_from,
        n_trials=cfg.trials, sampler=cfg.sampler, latency=cfg.latency,
        reward=validate(RewardConfig, cfg.reward, "stages.search.reward"),
        proxy=validate(ProxyConfig, {"seed": config.seed, **cfg.proxy}, "stages.search.proxy"),
        seed=config.seed,
    )
