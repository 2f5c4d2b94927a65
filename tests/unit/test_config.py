"""Typed config: YAML loading, validation messages (file + dotted key + hint), --set overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgekd.api import load_pipeline
from edgekd.config import PipelineConfig, TargetConfig, apply_overrides, load_yaml, validate
from edgekd.errors import ConfigError, EdgeKDError, TargetError
from edgekd.resources import builtin_dir, resolve
from edgekd.targets import builtin_targets, load_target

QUICKSTART = builtin_dir("pipelines") / "quickstart.yaml"

MINIMAL: dict[str, Any] = {
    "name": "mini",
    "stages": {
        "teacher": {"model": {"name": "test_tiny"}},
        "distill": {"student": {"name": "test_tiny"}, "train": {"epochs": 1}},
    },
}


def mutated(change) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    change(data)
    return data


def config_error(data: dict[str, Any], source: str = "pipe.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        validate(PipelineConfig, data, source)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    assert message.startswith(f"{source}: "), "errors name the file"
    return message


# --- the built-in files ---------------------------------------------------------------------------


def test_builtin_quickstart_validates() -> None:
    config = validate(PipelineConfig, load_yaml(QUICKSTART), QUICKSTART)
    assert config.name == "quickstart"
    assert config.data.kind == "digits"
    assert config.stages.teacher.model is not None and config.stages.teacher.model.name == "resnet_cifar"
    assert config.stages.distill.losses[0].name == "hinton"
    assert config.stages.profile.targets == ["local-cpu"]
    assert config.budgets.min_accuracy is not None


def test_load_pipeline_by_name_applies_overrides_and_targets() -> None:
    config, base_dir = load_pipeline(
        "quickstart", ["stages.distill.train.epochs=1", "seed=7"], ["local-cpu", "other.yaml"]
    )
    assert config.stages.distill.train.epochs == 1
    assert config.seed == 7
    assert config.stages.profile.targets == ["local-cpu", "other.yaml"]
    assert base_dir == QUICKSTART.resolve().parent


def test_minimal_pipeline_gets_the_documented_defaults() -> None:
    config = validate(PipelineConfig, MINIMAL, "mini.yaml")
    assert config.data.kind == "digits"
    assert config.stages.profile.targets == ["local-cpu"]
    assert [loss.name for loss in config.stages.distill.losses] == ["hinton"]
    assert config.stages.teacher.train.epochs == 10  # TrainConfig default
    assert config.budgets.max_latency_p50_ms == {}


def test_every_builtin_target_validates() -> None:
    names = builtin_targets()
    assert "local-cpu" in names
    for name in names:
        assert isinstance(load_target(name), TargetConfig)
    local = load_target("local-cpu")
    assert local.runtime == "onnxruntime" and local.connection.kind == "local"


def test_resolve_builtin_name_path_and_unknown(tmp_path: Path) -> None:
    assert resolve("pipelines", "quickstart") == QUICKSTART
    own = tmp_path / "own.yaml"
    own.write_text("name: own\n")
    assert resolve("pipelines", own) == own
    with pytest.raises(ConfigError, match=r"did you mean 'quickstart'.*built in: .*quickstart"):
        resolve("pipelines", "quickstrt")
    with pytest.raises(ConfigError, match="file not found"):
        resolve("pipelines", tmp_path / "missing.yaml")
    with pytest.raises(TargetError, match="did you mean 'local-cpu'"):
        resolve("targets", "local-cp")


# --- load_yaml ------------------------------------------------------------------------------------


def test_load_yaml_reads_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nstages: {teacher: {model: {name: a}}}\n")
    assert load_yaml(path) == {"name": "x", "stages": {"teacher": {"model": {"name": "a"}}}}


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_yaml(path)


def test_load_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages:\n  teacher: {model: [unclosed\n  distill: 1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert str(path) in message
    assert "line " in message and "fix the YAML syntax" in message
    assert "\n" not in message


def test_load_yaml_syntax_error_line_number_is_one_based(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: 2\nc: [\n")  # the bracket opened on line 3 never closes
    with pytest.raises(ConfigError, match=r"line [34]\b"):
        load_yaml(path)
    path.write_text("a: 1\n\tb: 2\n")  # a tab where indentation is expected, on line 2
    with pytest.raises(ConfigError, match=r"line 2\b"):
        load_yaml(path)


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType")])
def test_load_yaml_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"expected a mapping.*got {kind}"):
        load_yaml(path)


def test_load_yaml_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(ConfigError, match="model.yaml"):
        load_yaml(path)


def test_load_yaml_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path)


def test_load_yaml_refuses_python_tags(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):
        load_yaml(path)


# --- validate -------------------------------------------------------------------------------------


def test_unknown_key_names_dotted_key_and_close_match() -> None:
    data = mutated(lambda d: d["stages"]["distill"]["train"].update(epoch=3))
    message = config_error(data)
    assert "stages.distill.train.epoch" in message
    assert "unknown key" in message
    assert "did you mean 'epochs'" in message


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    message = config_error(mutated(lambda d: d.update(data={"zzzz": 1})))
    assert "data.zzzz: unknown key" in message
    assert "allowed:" in message and "batch_size" in message and "kind" in message


def test_unknown_key_inside_a_list_item() -> None:
    message = config_error(mutated(lambda d: d["stages"]["distill"].update(assistants=[{"nme": "a"}])))
    assert "stages.distill.assistants.0.nme: unknown key" in message
    assert "did you mean 'name'" in message


def test_misspelt_stage_is_an_unknown_key_not_a_missing_stage() -> None:
    data = mutated(lambda d: d["stages"].update(distil=d["stages"].pop("distill")))
    message = config_error(data)
    assert "stages.distil: unknown key" in message
    assert "did you mean 'distill'" in message
    assert "missing" not in message


def test_wrong_type_names_key_and_value() -> None:
    message = config_error(mutated(lambda d: d["stages"]["distill"]["train"].update(epochs="many")))
    assert "stages.distill.train.epochs:" in message
    assert "integer" in message and "'many'" in message


def test_out_of_range_value() -> None:
    message = config_error(mutated(lambda d: d["stages"]["distill"]["train"].update(lr=-0.1)))
    assert "stages.distill.train.lr:" in message and "greater than 0" in message


def test_wrong_type_for_a_whole_section() -> None:
    message = config_error(mutated(lambda d: d["stages"].update(teacher=["resnet"])))
    assert "stages.teacher:" in message


def test_missing_required_key() -> None:
    assert "name: required key is missing" in config_error(mutated(lambda d: d.pop("name")))
    message = config_error(mutated(lambda d: d["stages"]["distill"].pop("student")))
    assert "stages: distill.student: required key is missing (or add stages.search" in message


def test_teacher_with_two_sources() -> None:
    data = mutated(lambda d: d["stages"]["teacher"].update(torchscript="teacher.ts"))
    message = config_error(data)
    assert "stages.teacher:" in message
    assert "exactly one of" in message and "got model, torchscript" in message


def test_teacher_with_no_source() -> None:
    message = config_error(mutated(lambda d: d["stages"].update(teacher={})))
    assert "stages.teacher:" in message and "exactly one of" in message and "got none" in message


def test_teacher_weights_need_a_model() -> None:
    data = mutated(lambda d: d["stages"].update(teacher={"torchscript": "t.ts", "weights": "w.pt"}))
    assert "weights needs model" in config_error(data)


def test_val_plus_test_fraction_too_large() -> None:
    message = config_error(mutated(lambda d: d.update(data={"val_fraction": 0.5, "test_fraction": 0.4})))
    assert "data:" in message and "val_fraction + test_fraction" in message


def test_fractions_that_leave_training_data_are_fine() -> None:
    data = mutated(lambda d: d.update(data={"val_fraction": 0.3, "test_fraction": 0.3}))
    config = validate(PipelineConfig, data, "p")
    assert config.data.val_fraction == 0.3


def test_bad_pipeline_name() -> None:
    assert "name:" in config_error(mutated(lambda d: d.update(name="my run/1")))


def test_target_validation_names_the_target_file() -> None:
    with pytest.raises(ConfigError, match=r"^t\.yaml: connection: .*ssh needs connection.host"):
        validate(TargetConfig, {"name": "board", "connection": {"kind": "ssh"}}, "t.yaml")
    with pytest.raises(ConfigError, match=r"^t\.yaml: runtime: "):
        validate(TargetConfig, {"name": "board", "runtime": "tflite"}, "t.yaml")


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, EdgeKDError)


def test_configs_are_frozen() -> None:
    config = validate(PipelineConfig, MINIMAL, "p")
    with pytest.raises(Exception):
        config.name = "other"  # type: ignore[misc]


# --- apply_overrides ------------------------------------------------------------------------------


def test_override_nested_key_with_yaml_typed_values() -> None:
    data = apply_overrides(
        MINIMAL,
        [
            "stages.distill.train.epochs=3",
            "stages.distill.train.lr=0.01",
            "stages.profile.targets=[local-cpu, jetson.yaml]",
            "budgets.max_latency_p50_ms={local-cpu: 2.5}",
            "description=hello world",
            "stages.distill.baseline=true",
        ],
    )
    assert data["stages"]["distill"]["train"]["epochs"] == 3
    assert isinstance(data["stages"]["distill"]["train"]["epochs"], int)
    assert data["stages"]["distill"]["train"]["lr"] == 0.01
    assert data["stages"]["profile"]["targets"] == ["local-cpu", "jetson.yaml"]
    assert data["budgets"]["max_latency_p50_ms"] == {"local-cpu": 2.5}
    assert data["description"] == "hello world"
    assert data["stages"]["distill"]["baseline"] is True
    validate(PipelineConfig, data, "p")  # and the result is still a valid pipeline


def test_override_value_may_contain_equals_signs() -> None:
    assert apply_overrides({}, ["description=a=b"])["description"] == "a=b"


def test_override_list_index() -> None:
    data = apply_overrides(
        {"losses": [{"name": "hinton", "weight": 0.9}, {"name": "fitnet"}]},
        ["losses.0.weight=0.5", "losses.1={name: at}"],
    )
    assert data["losses"] == [{"name": "hinton", "weight": 0.5}, {"name": "at"}]


def test_override_creates_missing_mappings() -> None:
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_overrides_do_not_mutate_the_input() -> None:
    original = copy.deepcopy(MINIMAL)
    data = apply_overrides(MINIMAL, ["stages.distill.train.epochs=5", "stages.teacher.model.name=x", "new.key=1"])
    assert MINIMAL == original
    assert data["stages"]["distill"]["train"]["epochs"] == 5
    assert data["stages"]["distill"] is not MINIMAL["stages"]["distill"]


def test_overrides_apply_in_order() -> None:
    assert apply_overrides({}, ["seed=1", "seed=2"])["seed"] == 2


@pytest.mark.parametrize("item", ["foo", "=3", "  =3", ""])
def test_override_without_key_value_form(item: str) -> None:
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        apply_overrides(MINIMAL, [item])


@pytest.mark.parametrize("item", ["losses.2.weight=1", "losses.-1.weight=1", "losses.x.weight=1", "losses.5=1"])
def test_override_bad_list_index(item: str) -> None:
    with pytest.raises(ConfigError, match="not an index of a list of 2"):
        apply_overrides({"losses": [{"name": "a"}, {"name": "b"}]}, [item])


def test_override_into_a_scalar() -> None:
    with pytest.raises(ConfigError, match=r"seed is a value, not a mapping"):
        apply_overrides({"seed": 0}, ["seed.x=1"])
    with pytest.raises(ConfigError, match=r"stages.distill.train.epochs is a value"):
        apply_overrides(MINIMAL, ["stages.distill.train.epochs.max=3"])


def test_override_error_names_the_item() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 0}, ["seed.x=1"])
    assert "--set 'seed.x=1'" in str(info.value)


def test_unparsable_yaml_value_is_kept_as_a_string() -> None:
    assert apply_overrides({}, ["description=[unclosed"])["description"] == "[unclosed"


def test_misspelt_override_is_caught_by_validation() -> None:
    with pytest.raises(ConfigError, match=r"stages\.distill\.train\.epoch: unknown key \(did you mean 'epochs'"):
        load_pipeline("quickstart", ["stages.distill.train.epoch=3"])


def test_targets_argument_with_a_malformed_stages_section_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "stages": None}))
    with pytest.raises(ConfigError, match="stages"):
        load_pipeline(path, [], ["local-cpu"])
    path.write_text(yaml.safe_dump({"name": "p", "stages": ["teacher"]}))
    with pytest.raises(ConfigError, match="stages"):
        load_pipeline(path, [], ["local-cpu"])
