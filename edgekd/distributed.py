"""Data-parallel training with torch's own engine (DistributedDataParallel).

``torchrun --nproc_per_node N -m edgekd compress …`` (or ``edgekd compress --nproc N``) starts N
processes; each reads its rank from the environment torchrun sets. Training stages run on every
rank (gloo on CPU, NCCL on GPUs); rank 0 alone writes the run folder, and the others wait for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

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


def barrier() -> None:
    if world().distributed:
        dist.barrier()


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


def sharded_loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    """Each rank's shard of ``dataset``, reshuffled each epoch (call ``loader.sampler.set_epoch``);
    the per-rank batch keeps the global batch at ``batch_size``."""
    w = world()
    sampler = DistributedSampler(dataset, num_replicas=w.size, rank=w.rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=max(1, batch_size // w.size), sampler=sampler, num_workers=0)


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
    return DistributedDataParallel(TrainedTogether(student, losses), device_ids=device_ids,
                                   find_unused_parameters=True)
