"""Two gloo ranks compute what one process computes: the same batches, the same batch-norm
statistics, the same averaged gradients."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.data import make_loader
from edgekd.distributed import GlobalBatchNorm, RankSlices, World, global_batchnorm

SEED = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(10, 3, 5, 5, generator=generator) * 3 + 1, torch.randn(10, 6, generator=generator)


def _loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((model(x) - target) ** 2).mean()


def _rank(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        model = _model().train()
        x, target = (t.tensor_split(size)[rank] for t in _batch())
        with global_batchnorm(model):
            assert isinstance(model[1], GlobalBatchNorm)
            out_local = model(x)
            _loss(model, x, target).backward()
        assert isinstance(model[1], nn.BatchNorm2d)  # the original layers are back
        for param in model.parameters():  # what DistributedDataParallel does with the gradients
            dist.all_reduce(param.grad)
            param.grad /= size
        if rank == 0:
            torch.save({"out": out_local, "grads": [p.grad for p in model.parameters()],
                        "buffers": [b.clone() for b in model.buffers()]}, out)
    finally:
        dist.destroy_process_group()


def test_two_ranks_match_one_process_batch_norm_and_gradients(tmp_path: Path) -> None:
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    two = torch.load(out)

    model = _model().train()
    x, target = _batch()
    expected_out = model(x)[:5]
    _loss(model, x, target).backward()

    torch.testing.assert_close(two["out"], expected_out, rtol=1e-4, atol=1e-5)
    for got, expected in zip(two["grads"], [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    for got, expected in zip(two["buffers"], list(model.buffers()), strict=True):
        torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-4, atol=1e-5)


def test_global_batchnorm_is_a_no_op_in_one_process() -> None:
    model = _model()
    with global_batchnorm(model):
        assert isinstance(model[1], nn.BatchNorm2d)


def test_rank_slices_cover_the_one_process_batches_in_order() -> None:
    data = TensorDataset(torch.arange(23).float(), torch.arange(23))
    one = [y for _, y in make_loader(data, 8, shuffle=True, seed=SEED)]
    ranks = [[y for _, y in RankSlices(make_loader(data, 8, shuffle=True, seed=SEED), World(rank, 2))]
             for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(one)
    for whole, first, second in zip(one, *ranks, strict=True):
        assert torch.equal(torch.cat([first, second]), whole)
        assert abs(len(first) - len(second)) <= 1


def test_rank_slices_skip_a_batch_smaller_than_the_world() -> None:
    data = TensorDataset(torch.arange(9).float(), torch.arange(9))
    slices = list(RankSlices(make_loader(data, 8, shuffle=False, seed=0), World(2, 3)))
    assert [len(y) for _, y in slices] == [2]  # the last batch (1 sample) cannot feed 3 ranks
