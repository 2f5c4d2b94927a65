"""Model families (ResNet-CIFAR, MobileNet-style, plain CNN), checkpoints and user models.

Every family is a registered ``nn.Module`` class built as ``cls(num_classes, in_channels,
**params)``; it has ``stem``, ``stages`` (an ``nn.Sequential`` with one child per resolution,
``stages.<i>``: the places to hook for feature distillation) and ``head`` (global average
pooling and the linear classifier), so any input of at least 8x8 works.
"""

from edgekd.models import mobilenet, plain, resnet  # noqa: F401  (registers the families)
from edgekd.models.build import MODELS, build_model
from edgekd.models.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from edgekd.models.stats import count_macs, count_params
from edgekd.models.user import copy_model, load_teacher

__all__ = [
    "MODELS",
    "LoadedModel",
    "build_model",
    "count_macs",
    "copy_model",
    "count_params",
    "load_checkpoint",
    "load_teacher",
    "save_checkpoint",
]
