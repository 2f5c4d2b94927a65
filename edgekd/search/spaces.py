"""Search spaces: the choices a search picks a student from, one registered space per model family.

A space is a small typed spec of choices (``{depth: [8, 14, 20], width: [8, 16, 32]}``); a
candidate is a :class:`~edgekd.config.ModelSpec` of the family, so whatever the search picks
flows into the distill stage unchanged. A space also decomposes a candidate into its blocks
(stem, each stage's blocks, head) for latency lookup tables.
"""

from __future__ import annotations

import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from itertools import product
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, PositiveFloat, PositiveInt

from edgekd.config import ModelSpec, validate
from edgekd.config.base import StrictModel
from edgekd.errors import ConfigError, ModelError
from edgekd.models import MODELS, build_model
from edgekd.models.mobilenet import round_channels
from edgekd.registry import Registry, UnknownNameError
from edgekd.search.blocks import Block, BlockChain

if TYPE_CHECKING:
    import optuna

_CHECK_CLASSES = 10
_CHECK_CHANNELS = 3


def _unique(values: list[Any]) -> list[Any]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"choices must be distinct, {', '.join(map(str, duplicates))} repeats")
    return values


IntChoices = Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_unique)]
FloatChoices = Annotated[list[PositiveFloat], Field(min_length=1), AfterValidator(_unique)]
PerStageChoices = Annotated[list[IntChoices], Field(min_length=1)]
"""One list of choices per stage (or layer), e.g. ``[[1], [1, 2], [1, 2]]``."""


class SearchSpace(ABC):
    """The choices of one model family and the candidates they make.

    Subclasses set ``family`` (a registered model family) and ``choices_model`` (the typed
    spec), map a flat pick of options to the family's parameters in :meth:`assemble`, and
    decompose a network into blocks in :meth:`blocks`.

    Args:
        choices: A validated instance of ``choices_model``.
        where: The config path of the space, named in error messages.

    Raises:
        ConfigError: A choice the family rejects, or choices that contradict each other;
            the message names the key.
    """

    family: ClassVar[str]
    choices_model: ClassVar[type[StrictModel]]

    def __init__(self, choices: StrictModel, where: str = "search.space") -> None:
        self.choices = choices
        self._check(where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "search.space") -> SearchSpace:
        """A space from plain data (YAML), e.g. ``{"depth": [8, 14], "width": [8, 16]}``.

        Raises:
            ConfigError: An unknown key, an empty or repeated choice list, a choice the family
                rejects; the message names the key.
        """
        return cls(validate(cls.choices_model, dict(data), where), where)

    @abstractmethod
    def options(self) -> dict[str, list[Any]]:
        """The flat options, name → choices, in a fixed order (the Optuna parameter names)."""

    @abstractmethod
    def assemble(self, picked: Mapping[str, Any]) -> dict[str, Any]:
        """The family's parameters for one pick of every option."""

    @classmethod
    @abstractmethod
    def blocks(cls, params: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> list[Block]:
        """The blocks of the network that ``params`` builds, front to back, with their input shapes."""

    def spec(self, picked: Mapping[str, Any]) -> ModelSpec:
        """The candidate for one pick of every option."""
        return ModelSpec(name=self.family, params=self.assemble(picked))

    def sample(self, trial: optuna.Trial) -> ModelSpec:
        """Let an Optuna trial pick every option (categorical distributions)."""
        return self.spec({name: trial.suggest_categorical(name, values) for name, values in self.options().items()})

    def picks(self) -> Iterator[dict[str, Any]]:
        """Every combination of options (``{option: value}``), the last option varying fastest."""
        options = self.options()
        for values in product(*options.values()):
            yield dict(zip(options, values, strict=True))

    def candidates(self) -> Iterator[ModelSpec]:
        """Every candidate, in the order of :meth:`picks`."""
        for picked in self.picks():
            yield self.spec(picked)

    def __len__(self) -> int:
        return math.prod(len(values) for values in self.options().values())

    def to_dict(self) -> dict[str, Any]:
        """``{"name": family, "choices": {...}}``: what :func:`build_space` rebuilds the space from."""
        return {"name": self.family, "choices": self.choices.model_dump(mode="json")}

    def _check(self, where: str) -> None:
        """Build the candidate of every single choice (the others at their first choice)."""
        options = self.options()
        first = {name: values[0] for name, values in options.items()}
        for name, values in options.items():
            for value in values:
                spec = self.spec({**first, name: value})
                try:
                    build_model(spec, _CHECK_CLASSES, _CHECK_CHANNELS)
                except ModelError as exc:
                    raise ConfigError(f"{where}.{name}: choice {value!r} does not build: {exc}") from None


SEARCH_SPACES: Registry[type[SearchSpace]] = Registry("search space")
"""Search spaces by name; each space is named after the model family its candidates belong to."""


def build_space(name: str, choices: Mapping[str, Any], where: str = "search.space") -> SearchSpace:
    """The registered space ``name`` with ``choices``.

    Args:
        name: A registered space (``resnet_cifar``, ``mobilenet``, ``plain_cnn``).
        choices: The space's typed spec as plain data.
        where: The config path, named in error messages.

    Raises:
        ConfigError: Unknown space (close matches listed), or bad choices (the key is named).
    """
    try:
        cls = SEARCH_SPACES.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    return cls.from_dict(choices, where)


def family_params(spec: ModelSpec) -> dict[str, Any]:
    """``spec.params`` completed with the family's defaults."""
    factory = MODELS.get(spec.name)
    defaults = {
        name: p.default
        for name, p in list(inspect.signature(factory).parameters.items())[2:]
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **spec.params}


def same_architecture(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs build the same network (a parameter left out equals its default)."""
    def canonical(spec: ModelSpec) -> str:  # a factory's tuple default equals a YAML list
        return json.dumps(family_params(spec), sort_keys=True)

    return a.name == b.name and canonical(a) == canonical(b)


def candidate_blocks(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[Block]:
    """The blocks of any network of a family that has a search space.

    Raises:
        ConfigError: No search space knows the family's structure.
    """
    if spec.name not in SEARCH_SPACES:
        raise ConfigError(
            f"model family {spec.name!r} has no search space, so its blocks are unknown;"
            f" latency tables cover {', '.join(SEARCH_SPACES.names())}"
        )
    return SEARCH_SPACES.get(spec.name).blocks(family_params(spec), input_shape, num_classes)


class ResNetChoices(StrictModel):
    """Choices of the CIFAR ResNet: ``depth`` (6n+2) and ``width`` (channels of the first stage)."""

    depth: IntChoices = [8, 14, 20]
    width: IntChoices = [8, 16, 32]


@SEARCH_SPACES.register("resnet_cifar")
class ResNetSpace(SearchSpace):
    """ResNet-CIFAR candidates: every ``depth`` × ``width``."""

    family = "resnet_cifar"
    choices_model = ResNetChoices
    choices: ResNetChoices

    def options(self) -> dict[str, list[Any]]:
        return {"depth": list(self.choices.depth), "width": list(self.choices.width)}

    def assemble(self, picked: Mapping[str, Any]) -> dict[str, Any]:
        return {"depth": picked["depth"], "width": picked["width"]}

    @classmethod
    def blocks(cls, params: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> list[Block]:
        width, per_stage = params["width"], (params["depth"] - 2) // 6
        chain = BlockChain(input_shape)
        chain.add("conv_bn", width, 3)
        for index, channels in enumerate((width, 2 * width, 4 * width)):
            for block in range(per_stage):
                chain.add("basic", channels, 3, stride=2 if index > 0 and block == 0 else 1)
        chain.add("head", num_classes, 1)
        return chain.blocks


class MobileNetChoices(StrictModel):
    """Choices of the MobileNetV2-style family. ``blocks`` and ``channels`` hold one list of
    choices per stage (as many stages in both); the others are one list each."""

    width_mult: FloatChoices = [0.5, 1.0]
    expansion: IntChoices = [2, 4, 6]
    kernel_size: IntChoices = [3, 5]
    blocks: PerStageChoices = [[1], [1, 2], [1, 2]]
    channels: PerStageChoices = [[16], [24], [32]]
    last_channels: IntChoices = [128]


@SEARCH_SPACES.register("mobilenet")
class MobileNetSpace(SearchSpace):
    """MobileNet candidates: width multiplier, expansion, kernel, blocks and channels per stage."""

    family = "mobilenet"
    choices_model = MobileNetChoices
    choices: MobileNetChoices

    def _check(self, where: str) -> None:
        stages, channel_stages = len(self.choices.blocks), len(self.choices.channels)
        if stages != channel_stages:
            raise ConfigError(
                f"{where}.channels: {channel_stages} stages of choices, but blocks has {stages};"
                " give one list of choices per stage in both"
            )
        super()._check(where)

    def options(self) -> dict[str, list[Any]]:
        c = self.choices
        return {
            "width_mult": list(c.width_mult),
            "expansion": list(c.expansion),
            "kernel_size": list(c.kernel_size),
            **{f"blocks.{i}": list(values) for i, values in enumerate(c.blocks)},
            **{f"channels.{i}": list(values) for i, values in enumerate(c.channels)},
            "last_channels": list(c.last_channels),
        }

    def assemble(self, picked: Mapping[str, Any]) -> dict[str, Any]:
        stages = range(len(self.choices.blocks))
        return {
            "width_mult": picked["width_mult"],
            "expansion": picked["expansion"],
            "kernel_size": picked["kernel_size"],
            "blocks": [picked[f"blocks.{i}"] for i in stages],
            "channels": [picked[f"channels.{i}"] for i in stages],
            "last_channels": picked["last_channels"],
        }

    @classmethod
    def blocks(cls, params: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> list[Block]:
        widths = [round_channels(c * params["width_mult"]) for c in params["channels"]]
        chain = BlockChain(input_shape)
        chain.add("conv_bn", widths[0], 3)
        for index, (count, width) in enumerate(zip(params["blocks"], widths, strict=True)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                chain.add("inverted_residual", width, params["kernel_size"], stride, params["expansion"])
        chain.add("conv_bn", params["last_channels"], 1)
        chain.add("head", num_classes, 1)
        return chain.blocks


class PlainChoices(StrictModel):
    """Choices of the plain CNN: ``channels`` holds one list of choices per conv layer."""

    channels: PerStageChoices = [[8, 16], [16, 32]]
    kernel_size: IntChoices = [3]


@SEARCH_SPACES.register("plain_cnn")
class PlainSpace(SearchSpace):
    """Plain-CNN candidates: channels per layer and one kernel size."""

    family = "plain_cnn"
    choices_model = PlainChoices
    choices: PlainChoices

    def options(self) -> dict[str, list[Any]]:
        return {
            **{f"channels.{i}": list(values) for i, values in enumerate(self.choices.channels)},
            "kernel_size": list(self.choices.kernel_size),
        }

    def assemble(self, picked: Mapping[str, Any]) -> dict[str, Any]:
        layers = range(len(self.choices.channels))
        return {"channels": [picked[f"channels.{i}"] for i in layers], "kernel_size": picked["kernel_size"]}

    @classmethod
    def blocks(cls, params: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int) -> list[Block]:
        channels, kernel = params["channels"], params["kernel_size"]
        chain = BlockChain(input_shape)
        chain.add("conv_bn", channels[0], kernel)
        for out in channels[1:]:
            chain.add("conv_bn", out, kernel, stride=2)
        chain.add("head", num_classes, 1)
        return chain.blocks
