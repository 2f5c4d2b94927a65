"""Self-describing checkpoints: the spec, the data shape and the weights in one file."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.config.pipeline import ModelSpec
from edgekd.errors import ModelError
from edgekd.fsutil import atomic_write_with
from edgekd.models.build import build_model

CHECKPOINT_FORMAT = "edgekd-checkpoint/1"


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with what it was trained on."""

    module: nn.Module
    spec: ModelSpec | None
    num_classes: int
    input_shape: tuple[int, int, int]


def save_checkpoint(
    path: Path,
    model: nn.Module,
    spec: ModelSpec,
    num_classes: int,
    input_shape: tuple[int, int, int],
) -> None:
    """Write ``model`` with its spec and data shape to ``path``, atomically.

    The file is ``torch.save`` of ``{"format": "edgekd-checkpoint/1", "spec": {"name", "params"},
    "num_classes", "input_shape": [c, h, w], "state_dict"}`` (tensors moved to the CPU): it
    loads with ``torch.load(weights_only=True)`` and :func:`load_checkpoint` rebuilds the model.

    Args:
        path: Where to write; the folder is created if needed.
        model: A model built from ``spec``.
        spec: The registered family and parameters of ``model``.
        num_classes: Number of output logits.
        input_shape: ``(channels, height, width)`` of one input.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": {"name": spec.name, "params": dict(spec.params)},
        "num_classes": int(num_classes),
        "input_shape": [int(d) for d in input_shape],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write_with(Path(path), lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> LoadedModel:
    """Rebuild the model saved by :func:`save_checkpoint`, in eval mode.

    Args:
        path: The checkpoint file.

    Returns:
        The module with its weights, spec, number of classes and input shape.

    Raises:
        ModelError: The file is missing, unreadable, not an edgekd checkpoint, or its
            weights do not fit the model its spec builds.
    """
    path = Path(path)
    payload = read_torch_file(path, "checkpoint")
    spec, num_classes, input_shape, state_dict = parse_checkpoint(payload, path)
    module = build_model(spec, num_classes, input_shape[0])
    load_state_dict_checked(module, state_dict, f"checkpoint {path}", describe_spec(spec))
    module.eval()
    return LoadedModel(module=module, spec=spec, num_classes=num_classes, input_shape=input_shape)


def is_checkpoint(payload: Any) -> bool:
    """Whether a loaded object claims to be an edgekd checkpoint (a dict with a ``format``)."""
    return isinstance(payload, Mapping) and "format" in payload


def parse_checkpoint(
    payload: Any, path: Path
) -> tuple[ModelSpec, int, tuple[int, int, int], Mapping[str, torch.Tensor]]:
    """Split a loaded checkpoint into spec, number of classes, input shape and state dict.

    Raises:
        ModelError: ``payload`` is not an edgekd checkpoint of the format this edgekd reads.
    """
    if not is_checkpoint(payload):
        raise ModelError(
            f"{path} is not an edgekd checkpoint (no 'format': {CHECKPOINT_FORMAT!r} entry);"
            " give a file that edgekd wrote"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise ModelError(
            f"checkpoint {path} has format {payload['format']!r};"
            f" this edgekd reads {CHECKPOINT_FORMAT!r}"
        )
    try:
        spec = ModelSpec(**payload["spec"])
        num_classes = int(payload["num_classes"])
        c, h, w = (int(d) for d in payload["input_shape"])
        state_dict = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"checkpoint {path} is malformed ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    return spec, num_classes, (c, h, w), state_dict


def read_torch_file(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, with one-line ``ModelError`` s.

    Args:
        path: The file to read.
        what: What the file is, for messages (e.g. ``"checkpoint"``).
    """
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise ModelError(
                f"{what} {path} holds objects other than tensors and plain containers, which"
                " torch.load(weights_only=True) refuses to run; save a state dict instead"
            ) from exc
        error: Exception = exc
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, KeyError... on bad bytes
        error = exc
    raise ModelError(
        f"{what} {path} is truncated or not a torch.save file ({first_line(error)})"
    ) from error


def load_state_dict_checked(module: nn.Module, state_dict: Any, source: str, target: str) -> None:
    """Load ``state_dict`` into ``module`` after checking that keys and shapes match exactly.

    Args:
        module: The model to load into.
        state_dict: The loaded weights.
        source: Where the weights come from, for messages (e.g. ``"checkpoint run/x.pt"``).
        target: What the model is, for messages (e.g. ``"resnet_cifar(depth=20)"``).

    Raises:
        ModelError: Not a mapping of names to tensors, or keys/shapes differ (the first
            few differences are named).
    """
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise ModelError(f"{source} is not a state dict (a mapping of parameter names to tensors)")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} (model: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    differences = (("missing keys", missing), ("unexpected keys", unexpected), ("shapes differ", shapes))
    problems = [f"{label} {_first_few(items)}" for label, items in differences if items]
    if problems:
        raise ModelError(f"{source} does not fit {target}: {'; '.join(problems)}")
    module.load_state_dict(state_dict)


def describe_spec(spec: ModelSpec) -> str:
    """A spec as ``name(key=value, ...)``."""
    return f"{spec.name}({', '.join(f'{k}={v!r}' for k, v in spec.params.items())})"


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, or its type when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__


def _first_few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
