"""The generic registry: decorator registration, duplicates, and helpful unknown-name errors."""

from __future__ import annotations

import pytest

from edgekd.errors import EdgeKDError
from edgekd.registry import Registry, UnknownNameError


@pytest.fixture
def models() -> Registry:
    registry: Registry = Registry("model")

    @registry.register("resnet_cifar")
    class ResNet:
        pass

    @registry.register("mobilenet")
    def mobilenet():
        return "mobilenet"

    registry.add("plain_cnn", object)
    return registry


def test_register_returns_the_object_and_get_finds_it(models: Registry) -> None:
    @models.register("tiny")
    def tiny():
        return 42

    assert tiny() == 42  # the decorator hands the function back unchanged
    assert models.get("tiny") is tiny
    assert models.get("plain_cnn") is object
    assert models.get("resnet_cifar").__name__ == "ResNet"


def test_names_items_contains_len(models: Registry) -> None:
    assert models.names() == ["mobilenet", "plain_cnn", "resnet_cifar"]
    assert [name for name, _ in models.items()] == ["mobilenet", "plain_cnn", "resnet_cifar"]
    assert "mobilenet" in models and "resnet" not in models
    assert len(models) == 3


def test_registering_a_name_twice_raises_and_keeps_the_first(models: Registry) -> None:
    first = models.get("mobilenet")
    with pytest.raises(ValueError, match="model 'mobilenet' is registered twice"):

        @models.register("mobilenet")
        def other():
            return "other"

    with pytest.raises(ValueError, match="registered twice"):
        models.add("plain_cnn", int)
    assert models.get("mobilenet") is first
    assert models.get("plain_cnn") is object


def test_unknown_name_lists_close_matches_and_known_names(models: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        models.get("resnet_cifr")
    message = str(info.value)
    assert "unknown model 'resnet_cifr'" in message
    assert "did you mean 'resnet_cifar'" in message
    assert "known: mobilenet, plain_cnn, resnet_cifar" in message
    assert isinstance(info.value, EdgeKDError)  # the CLI turns it into exit code 2
    assert isinstance(info.value, KeyError) is False


def test_unknown_name_without_close_match_still_lists_known_names(models: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        models.get("zzzz")
    message = str(info.value)
    assert "did you mean" not in message
    assert message.endswith("known: mobilenet, plain_cnn, resnet_cifar")


def test_empty_registry_says_none_are_known() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown loss 'hinton'; known: none"):
        Registry("loss").get("hinton")


def test_registries_are_independent() -> None:
    a: Registry = Registry("a")
    b: Registry = Registry("b")
    a.add("x", 1)
    b.add("x", 2)  # the same name in another registry is no duplicate
    assert (a.get("x"), b.get("x")) == (1, 2)


def test_builtin_registries_hold_the_documented_entries() -> None:
    from edgekd.data import DATASETS
    from edgekd.distill import LOSSES
    from edgekd.models import MODELS

    assert {"resnet_cifar", "mobilenet", "plain_cnn", "test_tiny"} <= set(MODELS.names())
    assert {"digits", "image_folder", "cifar"} <= set(DATASETS.names())
    assert "hinton" in LOSSES
