"""The search: an Optuna study over a space, scoring each candidate by KD proxy and latency.

TPE maximizes the single reward (:mod:`edgekd.search.reward`); NSGA-II optimizes (proxy score max,
latency min) and the student is the best-scored front member within the budget. The study
lives in an SQLAlchemy storage (SQLite in the run folder by default), so an interrupted search
resumes and workers on other machines join it: the study's user attributes hold everything a
worker needs (space, settings, target, how to rebuild the teacher and the data).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field, PositiveFloat, PositiveInt
from sqlalchemy.engine import make_url
from torch import nn

from edgekd.config import DataConfig, ModelSpec, ProfileConfig, TargetConfig, TeacherConfig
from edgekd.config.base import StrictModel
from edgekd.data import DataSplits, load_data
from edgekd.distill import evaluate
from edgekd.errors import ConfigError, ModelError
from edgekd.models import load_teacher
from edgekd.progress import NullProgress, Progress
from edgekd.search.latency import (
    QUICK_PROFILE,
    LatencyTable,
    default_table_cache,
    evaluate_table,
    measure_p50,
    sample_candidates,
)
from edgekd.search.proxy import ProxyConfig, kd_proxy_train
from edgekd.search.reward import SOFT, RewardConfig, reward
from edgekd.search.spaces import SearchSpace, build_space, same_architecture

STUDY_ATTR = "edgekd_search"
"""The study user attribute that holds the search recipe."""
RECIPE_FORMAT = 3
"""Format 3: trial rows hold the proxy ``score`` that ranks them beside top-1 ``accuracy``."""
ROW_KEYS = ("accuracy", "score", "latency_ms", "reward", "met_budget")
"""A trial's numbers, kept in its user attributes."""
HEARTBEAT_S = 5
"""A running trial writes a heartbeat this often; one silent for ``GRACE_S`` is failed (its worker died)."""
GRACE_S = 20
POLL_S = 0.5
"""How often a worker with nothing to start checks whether the others' trials finished."""


class SearchSettings(StrictModel):
    """What a search optimizes and how it scores candidates."""

    budget_ms: PositiveFloat
    """Latency budget on the target at batch 1."""
    reference: ModelSpec | None = None
    """The model whose p50 ``budget_ms`` is (see :func:`reference_budget`): a candidate with its
    architecture gets that latency instead of a second timing, which would land on either side
    of its own p50."""
    n_trials: PositiveInt = 20
    """Finished trials the study needs, over all workers and resumed runs."""
    sampler: Literal["tpe", "nsga2"] = "tpe"
    latency: Literal["measured", "table"] = "measured"
    reward: RewardConfig = SOFT
    proxy: ProxyConfig = ProxyConfig()
    profile: ProfileConfig = QUICK_PROFILE
    """Timing settings of each measured candidate (and of the table's blocks)."""
    precision: Literal["fp32", "fp16"] = "fp32"
    """Precision the (FP32) candidates are timed at: ``fp16`` where the runtime builds its own
    engine (TensorRT, torch on CUDA); INT8 is the qkd stage's."""
    table_fit_networks: PositiveInt = 8
    """Networks measured to fit the table's line (scale and overhead)."""
    timing_rounds: PositiveInt = 3
    """Every latency the search times is the median of this many timings: a measured candidate and
    the ``reference`` back to back; a table's blocks, fit networks and held-out candidates round-robin."""
    table_holdout: int = Field(8, ge=0)
    """Candidates measured after the search to report the table's prediction error."""
    seed: int = 0
    """Seeds the sampler of :func:`run_search` (joining workers draw their own) and picks the table's networks."""


class WorkerSource(StrictModel):
    """How a worker rebuilds the teacher and the data from config alone (paths must exist there)."""

    teacher: TeacherConfig
    """The teacher, loadable as is: ``model`` with ``weights`` (e.g. the teacher stage's
    checkpoint), ``torchscript``, ``export_archive`` or ``factory``."""
    data: DataConfig
    seed: int = 0
    """The pipeline seed, which fixes the data split."""
    base_dir: Path | None = None
    """The folder relative paths in ``teacher`` and ``data`` resolve against."""


@dataclass
class SearchResult:
    """What a search found.

    Attributes:
        best: The chosen student.
        best_trial: Its row of ``trials``.
        met_budget: Whether the chosen student meets the budget; when no candidate does, the
            student is the fastest candidate and this is False (the caller exits 1).
        budget_ms: The budget.
        budget_from: The model whose p50 the budget is (``SearchSettings.reference``), if any.
        sampler: ``tpe`` or ``nsga2``.
        latency: ``measured`` or ``table``.
        score: What ranked the candidates (``ProxyConfig.score``).
        trials: One row per finished trial, by number: ``number``, ``spec``, ``accuracy`` (the
            proxy's top-1 val accuracy), ``score`` (what ranks it: ``ProxyConfig.score``),
            ``latency_ms``, ``reward``, ``met_budget``.
        pareto: The rows no other row beats on both score and latency, fastest first.
        study_name: The Optuna study.
        storage: Its storage URL, password hidden.
        best_measured_ms: With ``latency: table``, the chosen student's measured latency.
        table_eval: With ``latency: table``, :func:`~edgekd.search.latency.evaluate_table` on
            ``table_holdout`` candidates the overhead was not fitted on (``None`` if none is left).
    """

    best: ModelSpec
    best_trial: dict[str, Any]
    met_budget: bool
    budget_ms: float
    sampler: str
    latency: str
    score: str
    trials: list[dict[str, Any]]
    pareto: list[dict[str, Any]]
    study_name: str
    storage: str
    best_measured_ms: float | None = None
    table_eval: dict[str, Any] | None = None
    budget_from: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``best`` as ``{"name", "params"}``)."""
        data = asdict(self)
        data["best"] = self.best.model_dump(mode="json")
        return data


def default_storage(run_dir: Path) -> str:
    """``sqlite:///<run_dir>/search.db`` (absolute)."""
    return f"sqlite:///{(Path(run_dir) / 'search.db').resolve()}"


def shown_url(url: str) -> str:
    """``url`` with its password masked, for messages and reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to an SQLAlchemy storage, with heartbeats so that a dead worker's trial is failed.

    Raises:
        ConfigError: The URL is malformed, its database driver is missing, or the database
            cannot be reached; one line that names the URL without its password.
    """
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    connect_args = {"timeout": 30} if dialect == "sqlite" else {}
    if dialect in ("postgresql", "mysql", "mariadb"):
        connect_args = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": connect_args},
                heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            )
    except ImportError:
        raise ConfigError(
            f"search storage {shown_url(url)}: the database driver for {dialect!r} is not installed"
            " (e.g. pip install psycopg2-binary for postgresql, pymysql for mysql+pymysql)"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(
            f"search storage {shown_url(url)} is unreachable ({reason}); check the URL, that the"
            " database exists and its server is up, and that this machine may connect to it"
        ) from None


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial to stderr; the library reports through Progress instead."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _sampler(settings: SearchSettings, seed: int | None) -> optuna.samplers.BaseSampler:
    if settings.sampler == "nsga2":
        population = max(2, min(20, settings.n_trials // 2))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    startup = max(2, min(10, settings.n_trials // 3))
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, constant_liar=True)


def _directions(settings: SearchSettings) -> list[str]:
    return ["maximize", "minimize"] if settings.sampler == "nsga2" else ["maximize"]


def _data_digest(data: DataSplits) -> str:
    """Labels and shapes of the splits: exact on any machine, so a worker can check its data."""
    digest = hashlib.sha256()
    for split in (data.train, data.val):
        digest.update(str(tuple(split.tensors[0].shape)).encode())
        digest.update(split.tensors[1].numpy().tobytes())
    return digest.hexdigest()[:16]


def _recipe(space: SearchSpace, settings: SearchSettings, target: TargetConfig, data: DataSplits,
            source: WorkerSource | None) -> dict[str, Any]:
    return {
        "format": RECIPE_FORMAT,
        "space": space.to_dict(),
        "settings": settings.model_dump(mode="json"),
        "target": target.model_dump(mode="json"),
        "data": {"input_shape": list(data.input_shape), "num_classes": data.num_classes,
                 "digest": _data_digest(data)},
        "source": source.model_dump(mode="json") if source is not None else None,
    }


def _same_search(stored: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """The parts in which a stored recipe differs from a new one (``n_trials`` may change)."""
    differ = [key for key in ("space", "data") if stored.get(key) != recipe[key]]
    if {**stored.get("target", {}), "description": ""} != {**recipe["target"], "description": ""}:
        differ.append("target")
    old = {k: v for k, v in stored.get("settings", {}).items() if k != "n_trials"}
    new = {k: v for k, v in recipe["settings"].items() if k != "n_trials"}
    return differ + [f"settings.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _load_study(storage: optuna.storages.RDBStorage, study_name: str, url: str,
                sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:
        raise ConfigError(
            f"search storage {shown_url(url)} has no study {study_name!r}; start it with edgekd compress"
        ) from None


def _open_recipe(storage: str, study_name: str) -> tuple[optuna.storages.RDBStorage, dict[str, Any]]:
    rdb = open_storage(storage)
    recipe = _load_study(rdb, study_name, storage).user_attrs.get(STUDY_ATTR)
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT:
        raise ConfigError(
            f"study {study_name!r} in {shown_url(storage)} was not started by this edgekd version's search"
        )
    return rdb, recipe


def read_recipe(storage: str, study_name: str) -> dict[str, Any]:
    """The search recipe stored in a study: space, settings, target, data shape and source.

    Raises:
        ConfigError: The storage is unreachable, or has no edgekd study of that name.
    """
    return _open_recipe(storage, study_name)[1]


class _Objective:
    """Scores one trial: samples a candidate, then its KD proxy score and latency."""

    def __init__(self, space: SearchSpace, teacher: nn.Module, data: DataSplits, target: TargetConfig,
                 settings: SearchSettings, table: LatencyTable | None, progress: Progress) -> None:
        self.space, self.teacher, self.data, self.target = space, teacher, data, target
        self.settings, self.table, self.progress = settings, table, progress

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        occupied = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        if sum(t.number < trial.number for t in occupied) >= self.settings.n_trials:
            trial.set_user_attr("surplus", True)  # another worker took the last slot first
            raise optuna.TrialPruned()
        spec = self.space.sample(trial)
        done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        twin = next((t for t in done if t.params == trial.params), None)
        if twin is not None:  # the proxy is deterministic: a repeated candidate costs nothing
            row = {**{k: twin.user_attrs[k] for k in ROW_KEYS},
                   "reused_from": twin.number}
        else:
            row = self._score(spec, trial.number)
        for key, value in {"spec": spec.model_dump(mode="json"), **row}.items():
            trial.set_user_attr(key, value)
        if self.settings.sampler == "nsga2":
            return row["score"], row["latency_ms"]
        return row["reward"]

    def _score(self, spec: ModelSpec, number: int) -> dict[str, Any]:
        settings = self.settings
        if settings.reference is not None and same_architecture(spec, settings.reference):
            latency = settings.budget_ms
        elif self.table is not None:
            latency = self.table.predict(spec)
        else:
            latency = measure_p50(spec, self.target, self.data.input_shape, self.data.num_classes,
                                  settings=settings.profile, precision=settings.precision, rounds=settings.timing_rounds)
        model, score = kd_proxy_train(spec, self.teacher, self.data, settings.proxy, progress=self.progress,
                                      task=f"trial {number}")
        # A table may predict <= 0 ms for a tiny network; the reward needs a positive latency.
        latency = max(latency, 1e-6)
        value = reward(score, latency, settings.budget_ms, settings.reward.w_under, settings.reward.w_over)
        return {"accuracy": evaluate(model, self.data.val), "score": score, "latency_ms": latency, "reward": value,
                "met_budget": latency <= settings.budget_ms}


def _work(study: optuna.Study, objective: _Objective, total: int, limit: int | None, progress: Progress) -> list[int]:
    """Run trials until the study has ``total`` finished ones (or this worker ran ``limit``).

    Trials others are running count as taken; with nothing left to start, wait for them, so
    that the study is complete on return (a dead worker's trial is failed after ``GRACE_S`` and
    run again here).
    """
    ran: list[int] = []

    def finished(_: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            ran.append(trial.number)
            row = trial.user_attrs
            progress.advance("search", status=f"trial {trial.number}: acc {row['accuracy']:.1%}, score {row['score']:.3f}"
                                              f" · {row['latency_ms']:.3f} ms · reward {row['reward']:.3f}")

    while limit is None or len(ran) < limit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
        if complete >= total:
            break
        if complete + running >= total:
            time.sleep(POLL_S)
            continue
        study.optimize(objective, n_trials=1, callbacks=[finished])
    return ran


def _rows(study: optuna.Study) -> list[dict[str, Any]]:
    return [
        {"number": t.number, "spec": t.user_attrs["spec"], **{k: t.user_attrs[k] for k in ROW_KEYS}}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that no other row beats on proxy score (higher) and latency (lower) together, fastest
    first; a candidate tried more than once appears once."""

    def beaten(row: dict[str, Any]) -> bool:
        return any(
            o["score"] >= row["score"] and o["latency_ms"] <= row["latency_ms"]
            and (o["score"] > row["score"] or o["latency_ms"] < row["latency_ms"])
            for o in rows
        )

    front, seen = [], []
    for row in sorted(rows, key=lambda r: (r["latency_ms"], -r["score"], r["number"])):
        if not beaten(row) and row["spec"] not in seen:  # a repeated candidate appears once
            front.append(row)
            seen.append(row["spec"])
    return front


def choose(rows: list[dict[str, Any]], sampler: str) -> dict[str, Any]:
    """The student: within the budget, the best reward (TPE) or the best-scored front member
    (NSGA-II); with none within the budget, the fastest candidate."""
    if not rows:
        raise ValueError("no finished trials to choose from")
    within = [r for r in (pareto_front(rows) if sampler == "nsga2" else rows) if r["met_budget"]]
    if not within:
        return min(rows, key=lambda r: (r["latency_ms"], r["number"]))
    score = "score" if sampler == "nsga2" else "reward"
    return max(within, key=lambda r: (r[score], -r["latency_ms"], -r["number"]))


def _table(space: SearchSpace, target: TargetConfig, data: DataSplits, settings: SearchSettings,
           cache: Path | None, progress: Progress) -> LatencyTable:
    return LatencyTable.build(space, target, data.input_shape, data.num_classes, cache=cache or default_table_cache(),
                              settings=settings.profile, precision=settings.precision,
                              fit_networks=settings.table_fit_networks, rounds=settings.timing_rounds,
                              seed=settings.seed, progress=progress)


def reference_budget(reference: ModelSpec, target: TargetConfig, data: DataSplits, *, storage: str,
                     study_name: str, settings: ProfileConfig = QUICK_PROFILE, precision: str = "fp32",
                     rounds: int = 3) -> float:
    """The p50 of ``reference`` on ``target`` at batch 1 (median of ``rounds`` timings): the budget
    of a search for a student "as fast as this model". A study of that name already started with
    this reference keeps the budget it timed then, so that a resumed search scores its trials
    against the same number.

    Raises:
        ConfigError: The storage is unreachable, or the runtime cannot time the model.
    """
    rdb = open_storage(storage)
    try:
        stored = _load_study(rdb, study_name, storage).user_attrs.get(STUDY_ATTR) or {}
    except ConfigError:  # no such study yet
        stored = {}
    earlier = stored.get("settings", {})
    if earlier.get("reference") == reference.model_dump(mode="json"):
        return float(earlier["budget_ms"])
    return measure_p50(reference, target, data.input_shape, data.num_classes, settings=settings,
                       precision=precision, rounds=rounds)


def start_study(space: SearchSpace, data: DataSplits, target: TargetConfig, settings: SearchSettings, *,
                storage: str, study_name: str = "search", source: WorkerSource | None = None) -> optuna.Study:
    """Create the study, or reopen it if it was started with the same search, and store the recipe.

    No trial runs: :func:`run_search` and workers (:func:`join_study`) run them.

    Args:
        space: The candidates.
        data: The splits (their shape and a digest of their labels are stored).
        target: Where latency is measured.
        settings: Budget, trials, sampler, latency source, reward, proxy.
        storage: Any SQLAlchemy URL.
        study_name: The study within the storage.
        source: How workers rebuild the teacher and the data; without it no worker can join.

    Returns:
        The study, sampled by ``settings.sampler`` seeded with ``settings.seed``.

    Raises:
        ConfigError: Unreachable storage, or a study of that name made with another search
            (``n_trials`` may differ: the stored value is updated).
    """
    recipe = _recipe(space, settings, target, data, source)
    with _quiet_optuna():
        study = optuna.create_study(storage=open_storage(storage), study_name=study_name, load_if_exists=True,
                                    directions=_directions(settings), sampler=_sampler(settings, settings.seed))
    stored = study.user_attrs.get(STUDY_ATTR)
    where = f"study {study_name!r} in {shown_url(storage)}"
    if stored is not None:
        differ = _same_search(stored, recipe)
        if differ:
            raise ConfigError(f"{where} was started with another search ({', '.join(differ)} differ);"
                              " use another study name or start afresh")
    elif study.trials:
        raise ConfigError(f"{where} was not started by edgekd search; use another study name")
    study.set_user_attr(STUDY_ATTR, recipe)
    if stored is None and len(space) <= settings.n_trials:
        _enqueue_every_candidate(study, space, settings.seed)
    return study


def _enqueue_every_candidate(study: optuna.Study, space: SearchSpace, seed: int) -> None:
    """A space no larger than ``n_trials`` is searched exhaustively: every candidate is queued once
    (in a seeded order), so that no trial is spent on a repeat while a candidate is left untried.
    The trials left after that are the sampler's (repeats, scored once)."""
    picks = list(space.picks())
    random.Random(seed).shuffle(picks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for params in picks:
            study.enqueue_trial(params, skip_if_exists=True)


def run_search(space: SearchSpace, teacher: nn.Module, data: DataSplits, target: TargetConfig,
               settings: SearchSettings, *, run_dir: Path, storage: str | None = None, study_name: str = "search",
               source: WorkerSource | None = None, table: LatencyTable | None = None,
               table_cache: Path | None = None, progress: Progress = NullProgress()) -> SearchResult:
    """Search ``space`` for the student ``teacher`` teaches best within the latency budget.

    Starts the study (:func:`start_study`) or resumes it: finished trials count, and only the
    rest of ``settings.n_trials`` run (workers may run some of them). Returns once the study has
    ``n_trials`` finished trials.

    Args:
        space: The candidates.
        teacher: The model the KD proxy distils from.
        data: The splits; the proxy trains on part of ``train`` and scores on ``val``.
        target: Where latency is measured (or the table was built).
        settings: Budget, trials, sampler, latency source, reward, proxy.
        run_dir: Folder of the default SQLite storage (created if needed).
        storage: Any SQLAlchemy URL; default ``sqlite:///<run_dir>/search.db``.
        study_name: The study within the storage.
        source: How workers rebuild the teacher and the data; without it no worker can join.
        table: With ``latency: table``, a ready table; else one is built (or loaded from
            ``table_cache``).
        table_cache: The table file to reuse and extend (default :func:`default_table_cache`).
        progress: Receives one step per finished trial.

    Returns:
        The chosen student, the trial table and the Pareto front; with ``latency: table`` also
        the chosen student's measured latency and the table's error on held-out candidates.

    Raises:
        ConfigError: Unreachable storage, a study of that name made with another search, or a
            latency table that cannot be built.
        EdgeKDError: A candidate cannot be built, exported or timed (its trial is failed first).
    """
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(run_dir)
    study = start_study(space, data, target, settings, storage=url, study_name=study_name, source=source)
    if settings.latency == "table" and table is None:
        table = _table(space, target, data, settings, table_cache, progress)
    with _quiet_optuna():
        progress.start("search", total=settings.n_trials)
        earlier = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if earlier:
            progress.advance("search", steps=min(earlier, settings.n_trials), status=f"resumed: {earlier} trials done")
        _work(study, _Objective(space, teacher, data, target, settings, table, progress), settings.n_trials, None,
              progress)
        progress.finish("search")
    rows = _rows(study)
    best = choose(rows, settings.sampler)
    result = SearchResult(
        best=ModelSpec(**best["spec"]), best_trial=best, met_budget=best["met_budget"], budget_ms=settings.budget_ms,
        sampler=settings.sampler, latency=settings.latency, score=settings.proxy.score, trials=rows, pareto=pareto_front(rows),
        study_name=study_name, storage=shown_url(url),
        budget_from=settings.reference.model_dump(mode="json") if settings.reference is not None else None,
    )
    if table is not None:
        result.best_measured_ms = measure_p50(result.best, target, data.input_shape, data.num_classes,
                                              settings=settings.profile, precision=settings.precision,
                                              rounds=settings.timing_rounds)
        fitted = [ModelSpec(**row["spec"]) for fit in table.fits.values() for row in fit]
        held_out = sample_candidates(space, settings.table_holdout, settings.seed + 1, exclude=fitted)
        if held_out:
            result.table_eval = evaluate_table(table, held_out, target, settings=settings.profile,
                                               rounds=settings.timing_rounds, progress=progress)
    return result


def join_study(storage: str, study_name: str, teacher: nn.Module, data: DataSplits, *, n_trials: int | None = None,
               table_cache: Path | None = None, seed: int | None = None,
               progress: Progress = NullProgress()) -> list[int]:
    """Run trials of a study another process started, until it has its ``n_trials``.

    Space, settings and target come from the study; ``teacher`` and ``data`` must be the ones
    the study was started with (the data's labels and shapes are checked).

    Args:
        storage: The study's SQLAlchemy URL.
        study_name: The study.
        teacher: The teacher.
        data: The splits.
        n_trials: The most trials this worker runs; ``None`` helps until the study is complete.
        table_cache: With ``latency: table``, the table file to reuse and extend.
        seed: Seeds this worker's sampler; ``None`` draws one (workers must not share a seed).
        progress: Receives one step per trial this worker finishes.

    Returns:
        The numbers of the trials this worker finished.

    Raises:
        ConfigError: Unreachable storage, no edgekd study of that name, or other data.
    """
    rdb, recipe = _open_recipe(storage, study_name)
    return _join(rdb, storage, study_name, recipe, teacher, data, n_trials, table_cache, seed, progress)


def _join(rdb: optuna.storages.RDBStorage, storage: str, study_name: str, recipe: dict[str, Any],
          teacher: nn.Module, data: DataSplits, n_trials: int | None, table_cache: Path | None, seed: int | None,
          progress: Progress) -> list[int]:
    if recipe["data"]["digest"] != _data_digest(data):
        raise ConfigError(f"study {study_name!r} was started on other data (labels or shapes differ); give this worker"
                          " the study's data config and seed")
    space = build_space(recipe["space"]["name"], recipe["space"]["choices"])
    settings = SearchSettings.model_validate(recipe["settings"])
    target = TargetConfig.model_validate(recipe["target"])
    with _quiet_optuna():
        study = _load_study(rdb, study_name, storage, _sampler(settings, seed))
        table = _table(space, target, data, settings, table_cache, progress) if settings.latency == "table" else None
        progress.start("search", total=n_trials or settings.n_trials)
        objective = _Objective(space, teacher, data, target, settings, table, progress)
        ran = _work(study, objective, settings.n_trials, n_trials, progress)
        progress.finish("search")
    return ran


def worker_from_storage(storage: str, study_name: str, n_trials: int | None = None, *,
                        table_cache: Path | None = None, progress: Progress = NullProgress()) -> list[int]:
    """Join a study with nothing but its storage: what ``edgekd search-worker`` runs.

    Rebuilds the data and the teacher from the study's stored source, then :func:`join_study`.

    Args:
        storage: The study's SQLAlchemy URL.
        study_name: The study.
        n_trials: The most trials this worker runs; ``None`` helps until the study is complete.
        table_cache: With ``latency: table``, the table file to reuse and extend.
        progress: Receives one step per trial this worker finishes.

    Returns:
        The numbers of the trials this worker finished.

    Raises:
        ConfigError: Unreachable storage, no edgekd study of that name, or a study started
            without a source.
        DataError, ModelError: The data or the teacher cannot be loaded here.
    """
    rdb, recipe = _open_recipe(storage, study_name)
    if recipe["source"] is None:
        raise ConfigError(f"study {study_name!r} was started without a worker source (teacher and data config),"
                          " so no worker can rebuild it; start it from edgekd compress")
    source = WorkerSource.model_validate(recipe["source"])
    data = load_data(source.data, source.seed, source.base_dir)
    teacher = load_teacher(source.teacher, data.num_classes, data.input_shape, source.base_dir)
    if teacher is None:
        raise ModelError("the study's teacher config names a model without weights; workers need trained weights")
    return _join(rdb, storage, study_name, recipe, teacher.eval(), data, n_trials, table_cache, None, progress)
