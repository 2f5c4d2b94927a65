"""Feature taps: module paths resolved on a model, read with forward hooks.

A tap is a module path as ``model.named_modules()`` lists it (``stages.1``, ``stages.2.0.relu``);
it reads the module's output, or with ``:input`` its first input (``stages.2.0.relu:input`` is
the pre-activation a ReLU receives). Without taps in YAML a loss reads default layers of
edgekd's families, found by name: ``stem``, ``stages.<i>`` and ``last`` (MobileNet's final
conv), in forward order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from edgekd.distill.base import DefaultTaps, DistillLoss
from edgekd.errors import ConfigError, close_matches

INPUT_SUFFIX = ":input"
_LISTED = 60


def split_tap(tap: str) -> tuple[str, bool]:
    """``"a.b:input"`` → ``("a.b", True)``; ``"a.b"`` → ``("a.b", False)``."""
    if tap.endswith(INPUT_SUFFIX):
        return tap[: -len(INPUT_SUFFIX)], True
    return tap, False


def module_paths(model: nn.Module) -> list[str]:
    """Every tappable module path of ``model``, in registration order."""
    return [name for name, _ in model.named_modules() if name]


def feature_points(model: nn.Module) -> list[str]:
    """The family's feature layers in forward order: ``stem``, ``stages.<i>``, ``last``."""
    modules = dict(model.named_modules())
    points = ["stem"] if "stem" in modules else []
    stages = modules.get("stages")
    if stages is not None:
        points += [f"stages.{name}" for name, _ in stages.named_children()]
    if "last" in modules:
        points.append("last")
    return points


def _preactivation(model: nn.Module, path: str) -> str:
    """The input of the ReLU that closes ``path``, when the module's last leaf is a ReLU."""
    leaves = [(name, m) for name, m in model.get_submodule(path).named_modules() if not list(m.children())]
    name, last = leaves[-1]
    if isinstance(last, nn.ReLU):
        return f"{path}.{name}{INPUT_SUFFIX}" if name else f"{path}{INPUT_SUFFIX}"
    return path


def default_taps(model: nn.Module, kind: DefaultTaps, preactivation: bool = False) -> list[str]:
    """The layers a loss reads on ``model`` when YAML names none.

    Args:
        model: The student or the teacher.
        kind: ``stages`` (each stage's output, or every feature point when there are no stages),
            ``points`` (stem, stages and last), ``last`` (the deepest point), ``middle`` (the
            point halfway down, FitNets' hint layer).
        preactivation: Read the input of each layer's closing ReLU instead of its output.

    Returns:
        The paths, possibly empty for a model that is not one of edgekd's families.
    """
    points = feature_points(model)
    if not points:
        return []
    stages = [p for p in points if p.startswith("stages.")]
    chosen = {
        "stages": stages or points,
        "points": points,
        "last": points[-1:],
        "middle": [points[len(points) // 2]],
    }[kind]
    return [_preactivation(model, p) for p in chosen] if preactivation else chosen


def resolve_taps(loss: DistillLoss, student: nn.Module, teacher: nn.Module) -> tuple[list[str], list[str]]:
    """The (student, teacher) tap paths of ``loss``: its YAML taps, else its default layers.

    Default lists of different lengths are paired from the deepest layer up (the shorter list's
    length is kept), so the last student stage meets the last teacher stage.

    Raises:
        ConfigError: A model is TorchScript (its layers take no hooks), a path does not exist
            (the message lists the valid ones), or a model has no default layers (the message
            asks for ``taps``).
    """
    for role, model in (("student", student), ("teacher", teacher)):
        if isinstance(model, torch.jit.ScriptModule):
            raise ConfigError(
                f"{loss.label}: this method reads layer features, but the {role} is a TorchScript module,"
                " whose layers take no forward hooks; give it as weights of a registered model or as a"
                " factory, or use a logit loss (hinton, tf_kd, noisy_teacher)"
            )
    if loss.taps is not None:
        student_taps, teacher_taps = (list(t) for t in loss.taps)
    else:
        assert loss.default_taps is not None  # only feature losses are resolved
        student_taps = default_taps(student, loss.default_taps, loss.preactivation)
        teacher_taps = default_taps(teacher, loss.default_taps, loss.preactivation)
        for role, taps, model in (("student", student_taps, student), ("teacher", teacher_taps, teacher)):
            if not taps:
                raise ConfigError(
                    f"{loss.label}: the {role} ({type(model).__name__}) has no stem/stages/last layers to"
                    f" tap by default; name them with taps: {{student: [...], teacher: [...]}}"
                    f" ({_valid(model)})"
                )
        keep = min(len(student_taps), len(teacher_taps))
        student_taps, teacher_taps = student_taps[-keep:], teacher_taps[-keep:]
    check_taps(loss.label, "student", student, student_taps)
    check_taps(loss.label, "teacher", teacher, teacher_taps)
    return student_taps, teacher_taps


def check_taps(label: str, role: str, model: nn.Module, taps: Iterable[str]) -> None:
    """Raise ConfigError naming the loss and the layer when a tap path is not in ``model``."""
    paths = set(module_paths(model))
    for tap in taps:
        path, _ = split_tap(tap)
        if path not in paths:
            raise ConfigError(
                f"{label}: the {role} has no layer {path!r}{close_matches(path, paths)}; {_valid(model)}"
            )


def _valid(model: nn.Module) -> str:
    paths = module_paths(model)
    shown = ", ".join(paths[:_LISTED]) or "none"
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return f"valid layers: {shown}{more} (append {INPUT_SUFFIX} to read a layer's input)"


class FeatureTaps:
    """Forward hooks that record the tapped features of one model on each forward.

    Args:
        model: The model to tap.
        taps: Tap path (already checked with :func:`check_taps`) → the loss that reads it, for
            messages.
        role: ``student`` or ``teacher``, for messages.
    """

    def __init__(self, model: nn.Module, taps: dict[str, str], role: str) -> None:
        self.role = role
        self.owners = dict(taps)
        self.values: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for tap in self.owners:
            path, read_input = split_tap(tap)
            module = model.get_submodule(path)
            if read_input:
                self._handles.append(module.register_forward_pre_hook(self._input_hook(tap, module)))
            else:
                self._handles.append(module.register_forward_hook(self._output_hook(tap)))

    def _output_hook(self, tap: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.values[tap] = self._tensor(tap, output)
        return hook

    def _input_hook(self, tap: str, module: nn.Module):
        copy = bool(getattr(module, "inplace", False))  # an in-place module would overwrite it

        def hook(_module: nn.Module, inputs: Any) -> None:
            value = self._tensor(tap, inputs[0] if inputs else None)
            self.values[tap] = value.clone() if copy else value
        return hook

    def _tensor(self, tap: str, value: Any) -> Tensor:
        if isinstance(value, tuple | list) and value and isinstance(value[0], Tensor):
            value = value[0]
        if not isinstance(value, Tensor):
            raise ConfigError(f"{self.owners[tap]}: {self.role} layer {tap!r} gives {type(value).__name__},"
                              " not a tensor; tap a layer that outputs a feature tensor")
        return value

    def take(self) -> dict[str, Tensor]:
        """The features recorded since the last call; every tap must be there.

        Raises:
            ConfigError: A layer did not run as a submodule (e.g. a ``torch.export`` graph).
        """
        values, self.values = self.values, {}
        missing = [tap for tap in self.owners if tap not in values]
        if missing:
            raise ConfigError(
                f"{self.owners[missing[0]]}: {self.role} layer {missing[0]!r} produced no output during the"
                " forward pass: its module"
                " is not called as a submodule (a torch.export graph inlines its layers); give the model"
                " as weights of a registered model or a factory, or use a logit loss"
            )
        return values

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
