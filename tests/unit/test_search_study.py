"""The KD proxy, the Optuna study (TPE, NSGA-II, resume, storage errors) and ``assistants: auto``."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.data import TensorDataset

from edgekd.config import DataConfig, ModelSpec, ProfileConfig, TeacherConfig, TrainConfig
from edgekd.data import load_data
from edgekd.distill import evaluate, soft_accuracy, train_model
from edgekd.errors import ConfigError
from edgekd.models import build_model, count_params, save_checkpoint
from edgekd.search import (
    HARD,
    ProxyConfig,
    SearchSettings,
    WorkerSource,
    build_space,
    choose_assistants,
    join_study,
    kd_proxy_train,
    open_storage,
    pareto_front,
    read_recipe,
    reference_budget,
    run_search,
    start_study,
    worker_from_storage,
)
from edgekd.targets import load_target

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter

FAST = ProfileConfig(warmup_runs=2, min_time_s=0.01, min_runs=5, layer_profile_runs=0)
PROXY = ProxyConfig(epochs=1, data_fraction=0.3, lr=0.1)
TEACHER = ModelSpec(name="plain_cnn", params={"channels": [16, 32]})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: two threads on a busy 2-core machine make these tiny trainings 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(kind="digits"), 0)


@pytest.fixture(scope="module")
def teacher(data):
    torch.manual_seed(0)
    model = build_model(TEACHER, data.num_classes, data.input_shape[0])
    train_model(model, data.train, TrainConfig(epochs=3, lr=0.1), default_batch_size=64, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def space():
    return build_space("plain_cnn", {"channels": [[4, 8], [8, 16]], "kernel_size": [3]})


@pytest.fixture(scope="module")
def target():
    return load_target("local-cpu")


def settings(**changes) -> SearchSettings:
    return SearchSettings(**{"budget_ms": 1000.0, "n_trials": 3, "proxy": PROXY, "profile": FAST, **changes})


def test_proxy_score_is_a_deterministic_fraction(data, teacher) -> None:
    spec = ModelSpec(name="plain_cnn", params={"channels": [8, 16]})
    model, first = kd_proxy_train(spec, teacher, data, PROXY)
    assert PROXY.score == "soft_accuracy" and first == soft_accuracy(model, data.val) and 0.0 < first < 1.0
    assert kd_proxy_train(spec, teacher, data, PROXY)[1] == first
    assert kd_proxy_train(spec, teacher, data, PROXY.model_copy(update={"seed": 1}))[1] != first
    model, top1 = kd_proxy_train(spec, teacher, data, PROXY.model_copy(update={"score": "accuracy"}))
    assert top1 == evaluate(model, data.val)


def test_soft_accuracy_is_the_mean_probability_of_the_true_class() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    labels = torch.tensor([0, 0, 0])
    model = torch.nn.Sequential(torch.nn.Identity())
    expected = logits.softmax(dim=1)[:, 0].mean()
    assert soft_accuracy(model, TensorDataset(logits, labels), batch_size=2) == pytest.approx(float(expected))
    assert evaluate(model, TensorDataset(logits, labels), batch_size=2) == pytest.approx(2 / 3)


def test_run_search_tpe_finds_a_student_within_budget(data, teacher, space, target, tmp_path) -> None:
    result = run_search(space, teacher, data, target, settings(), run_dir=tmp_path)
    assert (tmp_path / "search.db").is_file() and result.storage == f"sqlite:///{tmp_path / 'search.db'}"
    assert [row["number"] for row in result.trials] == [0, 1, 2]
    candidates = [spec.model_dump(mode="json") for spec in space.candidates()]
    for row in result.trials:
        assert set(row) == {"number", "spec", "accuracy", "score", "latency_ms", "reward", "met_budget"}
        assert row["spec"] in candidates and 0 <= row["accuracy"] <= 1 and row["latency_ms"] > 0 and row["met_budget"]
        assert 0 < row["score"] < 1 and row["score"] != row["accuracy"]  # soft accuracy ranks, by default
    assert result.met_budget and result.best_trial in result.trials
    assert result.best_trial["reward"] == max(row["reward"] for row in result.trials)
    assert result.best.model_dump(mode="json") == result.best_trial["spec"]
    assert result.to_dict()["best"] == result.best_trial["spec"]


def test_a_space_no_larger_than_the_trials_is_searched_exhaustively(data, teacher, space, target, tmp_path) -> None:
    result = run_search(space, teacher, data, target, settings(n_trials=len(space) + 1, seed=3, reward=HARD),
                        run_dir=tmp_path)
    specs = [row["spec"] for row in result.trials]
    candidates = [spec.model_dump(mode="json") for spec in space.candidates()]
    # every candidate once in the first len(space) trials, then the sampler's pick (a repeat)
    assert sorted(map(str, specs[:len(space)])) == sorted(map(str, candidates))
    assert specs[-1] in candidates
    # the hard reward within the budget is the proxy score: the best-scored candidate is the student
    assert result.best_trial["reward"] == result.best_trial["score"] == max(row["score"] for row in result.trials)


def test_an_interrupted_search_resumes(data, teacher, space, target, tmp_path) -> None:
    first = run_search(space, teacher, data, target, settings(n_trials=2), run_dir=tmp_path)
    assert [row["number"] for row in first.trials] == [0, 1]
    more = run_search(space, teacher, data, target, settings(n_trials=4), run_dir=tmp_path)
    assert [row["number"] for row in more.trials] == [0, 1, 2, 3]
    assert more.trials[:2] == first.trials
    same = run_search(space, teacher, data, target, settings(n_trials=4), run_dir=tmp_path)
    assert same.trials == more.trials  # nothing left to run
    with pytest.raises(ConfigError, match=r"another search \(settings.budget_ms differ\)"):
        run_search(space, teacher, data, target, settings(n_trials=4, budget_ms=5.0), run_dir=tmp_path)


def test_a_budget_from_a_reference_model_is_its_p50_and_the_reference_meets_it(data, teacher, space, target,
                                                                               tmp_path) -> None:
    reference = ModelSpec(name="plain_cnn", params={"channels": [8, 16], "kernel_size": 3})
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    budget = reference_budget(reference, target, data, storage=storage, study_name="ref", settings=FAST)
    assert budget > 0
    chosen = settings(n_trials=len(space), budget_ms=budget, reference=reference, reward=HARD)
    result = run_search(space, teacher, data, target, chosen, run_dir=tmp_path, storage=storage, study_name="ref")
    (row,) = [r for r in result.trials if r["spec"] == reference.model_dump(mode="json")]
    assert row["latency_ms"] == budget and row["met_budget"]  # not timed again: its p50 is the budget
    assert result.budget_from == reference.model_dump(mode="json")
    # a resumed search keeps the budget it timed, and is scored against the same number
    assert reference_budget(reference, target, data, storage=storage, study_name="ref", settings=FAST) == budget
    again = run_search(space, teacher, data, target, chosen, run_dir=tmp_path, storage=storage, study_name="ref")
    assert again.trials == result.trials


def test_a_budget_no_candidate_meets_reports_the_fastest(data, teacher, space, target, tmp_path) -> None:
    result = run_search(space, teacher, data, target, settings(budget_ms=1e-6), run_dir=tmp_path)
    assert not result.met_budget and not any(row["met_budget"] for row in result.trials)
    assert result.best_trial["latency_ms"] == min(row["latency_ms"] for row in result.trials)


def test_nsga2_returns_a_pareto_front(data, teacher, space, target, tmp_path) -> None:
    result = run_search(space, teacher, data, target, settings(sampler="nsga2", n_trials=4), run_dir=tmp_path)
    assert len(result.trials) == 4 and result.pareto == pareto_front(result.trials)
    for member in result.pareto:
        assert not any(o["score"] > member["score"] and o["latency_ms"] < member["latency_ms"]
                       for o in result.trials)
    assert result.best_trial in result.pareto
    assert result.best_trial["score"] == max(r["score"] for r in result.pareto if r["met_budget"])
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert len(study.directions) == 2 and study.trials[0].values == [result.trials[0]["score"],
                                                                    result.trials[0]["latency_ms"]]


def test_run_search_with_a_latency_table(data, teacher, target, tmp_path) -> None:
    small = build_space("plain_cnn", {"channels": [[4], [8, 16]], "kernel_size": [3]})
    result = run_search(small, teacher, data, target,
                        settings(latency="table", n_trials=2, table_fit_networks=1, table_holdout=1),
                        run_dir=tmp_path, table_cache=tmp_path / "tables.json")
    assert (tmp_path / "tables.json").is_file() and result.latency == "table"
    assert result.best_measured_ms > 0 and len(result.table_eval["errors"]) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent/folder/search.db", "is unreachable (unable to open database file)"),
        ("postgresql://edgekd:s3cret@127.0.0.1:1/edgekd", "driver for 'postgresql' is not installed"),
        ("not a url", "is unreachable"),
    ],
)
def test_an_unreachable_storage_is_a_one_line_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        open_storage(url)
    assert "\n" not in str(caught.value) and "s3cret" not in str(caught.value)


def test_workers_rebuild_the_study_from_storage(data, teacher, space, target, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    with pytest.raises(ConfigError, match="has no study 'nope'"):
        read_recipe(storage, "nope")
    start_study(space, data, target, settings(n_trials=2), storage=storage, study_name="bare")
    with pytest.raises(ConfigError, match="without a worker source"):
        worker_from_storage(storage, "bare")
    other = load_data(DataConfig(kind="digits", val_fraction=0.2), 0)
    with pytest.raises(ConfigError, match="other data"):
        join_study(storage, "bare", teacher, other)

    save_checkpoint(tmp_path / "teacher.pt", teacher, TEACHER, data.num_classes, data.input_shape)
    source = WorkerSource(teacher=TeacherConfig(model=TEACHER, weights=Path("teacher.pt")),
                          data=DataConfig(kind="digits"), seed=0, base_dir=tmp_path)
    start_study(space, data, target, settings(n_trials=2), storage=storage, study_name="full", source=source)
    recipe = read_recipe(storage, "full")
    assert recipe["space"] == space.to_dict() and recipe["target"]["name"] == "local-cpu"
    assert recipe["settings"]["n_trials"] == 2 and recipe["source"]["teacher"]["weights"] == "teacher.pt"
    assert worker_from_storage(storage, "full", n_trials=1) == [0]
    assert join_study(storage, "full", teacher, data) == [1]
    assert join_study(storage, "full", teacher, data) == []  # the study is complete


def test_choose_assistants_tries_chains_between_teacher_and_student(data, teacher) -> None:
    student = ModelSpec(name="plain_cnn", params={"channels": [4, 8]})
    family = build_space("plain_cnn", {"channels": [[4, 8, 16], [8, 16, 32]], "kernel_size": [3]})
    choice = choose_assistants(teacher, student, family, data, PROXY, max_assistants=2)
    assert [len(row["assistants"]) for row in choice.tried] == [0, 1, 2]
    assert sum(row["chosen"] for row in choice.tried) == 1
    chosen = next(row for row in choice.tried if row["chosen"])
    assert [a.model_dump(mode="json") for a in choice.assistants] == chosen["assistants"]
    low = count_params(build_model(student, data.num_classes, data.input_shape[0]))
    for row in choice.tried:
        sizes = [count_params(teacher), *row["params"], low]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
        assert 0 <= row["student_accuracy"] <= 1 and len(row["assistant_accuracy"]) == len(row["assistants"])


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask() plays the dead worker
def test_the_trial_of_a_dead_worker_is_run_again(data, teacher, space, target, tmp_path, monkeypatch) -> None:
    import edgekd.search.study as study_module

    monkeypatch.setattr(study_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    study = start_study(space, data, target, settings(n_trials=2), storage=storage, study_name="search")
    dead = study.ask()  # a worker that started a trial, sent one heartbeat and was killed
    open_storage(storage).record_heartbeat(dead._trial_id)
    result = run_search(space, teacher, data, target, settings(n_trials=2), run_dir=tmp_path, storage=storage)
    states = {t.number: t.state for t in optuna.load_study(study_name="search", storage=storage).trials}
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert len(result.trials) == 2 and dead.number not in [row["number"] for row in result.trials]
