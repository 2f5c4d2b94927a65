"""Fuzz: any YAML a user may write yields a typed pipeline or a one-line EdgeKDError, never a crash."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd.api import load_pipeline, load_targets
from edgekd.errors import EdgeKDError
from edgekd.resources import resolve
from edgekd.stages import preflight

QUICKSTART = yaml.safe_load(resolve("pipelines", "quickstart").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["digits", "resnet_cifar", "hinton", "local-cpu", "auto", "-1", "1e9"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def paths(node, prefix=()):
    """Every key path of a nested mapping/list."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from paths(child, (*prefix, i))


ALL_PATHS = [p for p in paths(QUICKSTART) if p]


def mutate(data, path, action, value):
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    else:
        parent[last] = value
    return data


# derandomize: CI runs the same 150 examples each time, so a failure there can be re-run here
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["delete", "rename", "replace"]), values),
        min_size=1, max_size=3,
    )
)
def test_any_pipeline_yaml_is_valid_or_a_one_line_error(tmp_path_factory, mutations) -> None:
    data = QUICKSTART
    for path, action, value in mutations:
        try:
            data = mutate(data, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced that path
    folder = tmp_path_factory.mktemp("fuzz")
    pipeline = Path(folder) / "p.yaml"
    pipeline.write_text(yaml.safe_dump(data))
    try:
        config, base_dir = load_pipeline(pipeline)
        preflight(config, load_targets(config.stages.profile.targets, base_dir), base_dir)
    except EdgeKDError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message


def test_preflight_checks_a_huge_model_without_allocating_it() -> None:
    # 10⁵ channels: 4e13 bytes of weights if preflight built it for real (it would fail or be killed)
    config, base_dir = load_pipeline("quickstart", ["stages.teacher.model.params.width=100000",
                                                    "stages.distill.student.params.channels=[100000, 100000]"])
    preflight(config, load_targets(config.stages.profile.targets, base_dir), base_dir)
