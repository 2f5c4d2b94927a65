"""Teachers the user brings: weights for a registered model, TorchScript, a ``torch.export``
archive, or a ``package.module:function`` factory named explicitly in the pipeline."""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.config.pipeline import ModelSpec, TeacherConfig
from edgekd.errors import ModelError, close_matches
from edgekd.models.build import build_model
from edgekd.models.checkpoint import (
    describe_spec,
    first_line,
    is_checkpoint,
    load_state_dict_checked,
    parse_checkpoint,
    read_torch_file,
)

_FACTORY = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")


class ExportedModule(nn.Module):
    """The module of a ``torch.export`` archive. Its graph was fixed at export time, and the
    unwrapped module raises on ``eval()``: here ``train()``/``eval()`` only set the flag."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, *args: Any) -> Any:
        return self.graph(*args)

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self


def copy_model(module: nn.Module) -> nn.Module:
    """An independent copy whose parameters are leaves that can be trained.

    ``copy.deepcopy`` of a TorchScript module returns parameters that are not leaf tensors, which
    no optimizer accepts; a TorchScript module is copied by saving and loading it instead.
    """
    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        copied = torch.jit.load(buffer)
        return copied.train(module.training)
    return copy.deepcopy(module)


def load_teacher(
    cfg: TeacherConfig,
    num_classes: int,
    input_shape: Sequence[int],
    base_dir: Path | None,
) -> nn.Module | None:
    """Load the teacher that ``cfg`` names, checked against the data, in eval mode.

    Args:
        cfg: The teacher stage's config (exactly one source is set).
        num_classes: Number of classes in the data: the teacher must output as many logits.
        input_shape: ``(channels, height, width)`` of one input.
        base_dir: Folder that relative paths resolve against (the pipeline file's folder);
            ``None`` resolves them against the working directory.

    Returns:
        The teacher, or ``None`` when ``cfg.model`` has no ``weights`` and must be trained.

    Raises:
        ModelError: A file is missing or unreadable, the weights do not fit ``cfg.model``,
            the factory cannot be imported or called, or the model does not map one input
            of ``input_shape`` to ``num_classes`` logits.
    """
    hint = ""
    if cfg.model is not None:
        if cfg.weights is None:
            return None
        module = _load_weights(cfg.model, _resolve(cfg.weights, base_dir), num_classes, input_shape[0])
    elif cfg.torchscript is not None:
        module = _load_file(_resolve(cfg.torchscript, base_dir), "TorchScript model", _jit_load)
    elif cfg.export_archive is not None:
        module = ExportedModule(
            _load_file(_resolve(cfg.export_archive, base_dir), "torch.export archive", _export_load)
        )
        hint = " (export it with a dynamic batch dimension)"
    else:
        assert cfg.factory is not None  # TeacherConfig requires exactly one source
        module = _call_factory(cfg.factory, cfg.factory_args)
    _check_logits(module, num_classes, tuple(input_shape), hint)
    return module


def _resolve(path: Path, base_dir: Path | None) -> Path:
    path = Path(path).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _load_weights(spec: ModelSpec, path: Path, num_classes: int, in_channels: int) -> nn.Module:
    """A registered model with weights from a bare state dict or an edgekd checkpoint."""
    payload = read_torch_file(path, "teacher weights")
    state_dict = parse_checkpoint(payload, path)[3] if is_checkpoint(payload) else payload
    module = build_model(spec, num_classes, in_channels)
    load_state_dict_checked(module, state_dict, f"teacher weights file {path}", describe_spec(spec))
    return module


def _jit_load(path: Path) -> nn.Module:
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.load.*deprecated", category=DeprecationWarning
        )
        return torch.jit.load(str(path), map_location="cpu")


def _export_load(path: Path) -> nn.Module:
    with open(path, "rb") as handle:  # a handle, so any file name works, not only *.pt2
        return torch.export.load(handle).module()


def _load_file(path: Path, what: str, loader: Callable[[Path], nn.Module]) -> nn.Module:
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}")
    try:
        return loader(path)
    except Exception as exc:  # the loaders raise many types on a damaged or foreign file
        raise ModelError(f"{what} {path} cannot be loaded: {first_line(exc)}") from exc


def _call_factory(factory: str, args: dict[str, Any]) -> nn.Module:
    match = _FACTORY.match(factory)
    if match is None:
        raise ModelError(f"teacher factory {factory!r} must have the form 'package.module:function'")
    module_name, attr = match.groups()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"teacher factory {factory!r}: cannot import {module_name!r} ({first_line(exc)});"
            " install it or add its folder to PYTHONPATH"
        ) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        public = [name for name in vars(module) if not name.startswith("_")]
        raise ModelError(
            f"teacher factory {factory!r}: {module_name!r} has no function {attr!r}"
            + close_matches(attr, public)
        )
    try:
        inspect.signature(function).bind(**args)
    except TypeError as exc:
        raise ModelError(f"teacher factory {factory!r}: factory_args do not fit it ({exc})") from exc
    except ValueError:  # no signature to check (some builtins): let the call decide
        pass
    model = function(**args)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"teacher factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _check_logits(module: nn.Module, num_classes: int, input_shape: tuple[int, ...], hint: str) -> None:
    """Run one zeros input through the model (left in eval mode) and check its logits."""
    module.eval()
    x = torch.zeros(1, *input_shape)
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:  # user code: any failure means it cannot take the data's input
        raise ModelError(
            f"teacher cannot run on an input of shape {tuple(x.shape)}{hint}: {first_line(exc)}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"teacher must return logits of shape (batch, classes), got {got}")
    if out.shape[1] != num_classes:
        raise ModelError(f"teacher outputs {out.shape[1]} classes but the data has {num_classes}; give a teacher"
                         " trained on this dataset's classes, or point data at the dataset it was trained on")
