"""Data-parallel training with torch's own engine (DistributedDataParallel).

``torchrun --nproc_per_node N -m edgekd compress …`` (or ``edgekd compress --nproc N``) starts N
processes; each reads its rank from the environment torchrun sets. Training stages run on every
rank (gloo on CPU, NCCL on GPUs); rank 0 alone writes the run folder, and the others wait for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as collectives
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_from_env() -> World:
    """Join the process group torchrun described in the environment (no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return world()


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank."""
    if not world().distributed:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class RankSlices:
    """The one-process loader's batches, in the same order on every rank, each rank keeping its
    contiguous slice: N ranks together take exactly the optimizer steps one process takes.

    (``DistributedSampler`` would give each rank a differently shuffled shard, so N processes
    would train on other batches than one process does.) A batch with fewer samples than ranks is
    skipped by every rank alike.
    """

    def __init__(self, loader: DataLoader, w: World) -> None:
        self.loader, self.world = loader, w

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.loader:
            if len(batch[0]) >= self.world.size:
                yield tuple(t.tensor_split(self.world.size)[self.world.rank] for t in batch)

    def __len__(self) -> int:
        return len(self.loader)


class GlobalBatchNorm(nn.Module):
    """Wraps a batch-norm layer so that, in training, its batch statistics are taken over every
    rank's samples (sums all-reduced by torch's differentiable functional collective), as one
    process computes them on the whole batch. torch's ``SyncBatchNorm`` refuses CPU tensors, so
    gloo training needs this one."""

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if not (self.training and bn.training):
            return bn(x)
        dims = [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / x.size(1)])
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        totals = collectives.wait_tensor(collectives.all_reduce(local, "sum", dist.group.WORLD))
        channels, n = x.size(1), totals[-1]
        mean = totals[:channels] / n
        var = totals[channels : 2 * channels] / n - mean * mean
        if bn.track_running_stats and bn.running_mean is not None:
            self._update_running(mean.detach(), var.detach() * n.detach() / (n.detach() - 1).clamp(min=1))
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + bn.eps)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        bn = self.bn
        bn.num_batches_tracked += 1
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        bn.running_mean.lerp_(mean, factor)
        bn.running_var.lerp_(unbiased_var, factor)


@contextmanager
def global_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with every batch-norm layer wrapped in :class:`GlobalBatchNorm` while the block
    runs (a no-op for one process); the original layers, trained in place, are put back after."""
    if not world().distributed:
        yield model
        return
    swapped: list[tuple[nn.Module, str, _BatchNorm]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, name, GlobalBatchNorm(child))
                swapped.append((parent, name, child))
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


class TrainedTogether(nn.Module):
    """The student and the losses' own parameters (adapters, memory-bank heads) as one module, so
    that DistributedDataParallel averages every trained gradient across ranks."""

    def __init__(self, student: nn.Module, losses: nn.Module) -> None:
        super().__init__()
        self.student, self.losses = student, losses

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def data_parallel(student: nn.Module, losses: nn.Module) -> nn.Module:
    """A forward callable for the student whose backward all-reduces student and loss gradients."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    # Only the losses' own parameters can sit out a step (a loss of weight 0, an adapter unused).
    has_loss_params = any(True for _ in losses.parameters())
    return DistributedDataParallel(TrainedTogether(student, losses), device_ids=device_ids,
                                   find_unused_parameters=has_loss_params)
