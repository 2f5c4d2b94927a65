"""Dataset registry, train/val/test splitting, normalization and loaders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from edgekd.config import DataConfig
from edgekd.errors import DataError
from edgekd.registry import Registry, UnknownNameError


@dataclass(frozen=True)
class RawData:
    """What a registered dataset loader returns, before splitting and normalization.

    ``x`` is ``[N, C, H, W]``, either uint8 in 0..255 or float in [0, 1]; ``y`` holds
    int64 labels indexing ``class_names``; ``test`` is the dataset's own test split, if any.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    test: tuple[np.ndarray, np.ndarray] | None = None
    pixel_scale: str = "8-bit pixels / 255"
    """How the dataset's own pixel values became [0, 1], for users preparing new images."""


Loader = Callable[[DataConfig, Path | None], RawData]
"""A dataset loader: ``(config, data.path resolved against the pipeline folder) -> RawData``."""

DATASETS: Registry[Loader] = Registry("dataset")


@dataclass(frozen=True)
class DataSplits:
    """Normalized train/val/test splits and what a model needs to know about them."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: list[float]
    std: list[float]
    pixel_scale: str = "8-bit pixels / 255"
    """How raw pixel values became [0, 1] (:attr:`RawData.pixel_scale`)."""


def require_path(path: Path | None, kind: str, hint: str) -> Path:
    """Checks that a dataset path was given and exists.

    Args:
        path: The resolved ``data.path``.
        kind: The dataset kind, named in the error.
        hint: What the path should point at, e.g. "a folder with one sub-folder per class".

    Returns:
        The path.

    Raises:
        DataError: The path is missing or does not exist.
    """
    if path is None:
        raise DataError(f"data.kind {kind!r} needs data.path; set it to {hint}")
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist; point it at {hint}")
    return path


def to_unit_float(x: np.ndarray) -> torch.Tensor:
    """Converts uint8 images (0..255) or float images (0..1) to a float32 tensor in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resizes ``[N, C, H, W]`` float images to ``size`` × ``size`` (bilinear, antialiased)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def resolve_data_path(cfg: DataConfig, base_dir: Path | None) -> Path | None:
    """``cfg.path``, a relative one resolved against the pipeline file's folder ``base_dir``."""
    path = cfg.path
    if path is not None and base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def data_files_stamp(cfg: DataConfig, base_dir: Path | None) -> str | None:
    """A hash of the name, size and modification time of every file under ``data.path`` (None
    without a path, ``"missing"`` when it does not exist). Stages put it in their fingerprint, so
    a re-run after the data was edited in place trains again; the files' contents are not read."""
    path = resolve_data_path(cfg, base_dir)
    if path is None:
        return None
    if not path.exists():
        return "missing"
    root = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_data(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> DataSplits:
    """Loads the configured dataset, splits it by ``seed`` and normalizes it.

    Without a predefined test split, the images are split into test, val and train by
    ``cfg.test_fraction`` and ``cfg.val_fraction`` of all images; with one (CIFAR, or an
    image folder with ``train/`` and ``test/``), val is ``cfg.val_fraction`` of the train
    images. Splits are stratified by class. Images are scaled to [0, 1], resized to
    ``cfg.image_size`` if set, and normalized per channel by the train split's mean and std.

    Args:
        cfg: The pipeline's ``data`` section.
        seed: Fixes the split.
        base_dir: The pipeline file's folder; a relative ``cfg.path`` is resolved against it.

    Returns:
        The splits, as float32 ``[N, C, H, W]`` images and int64 labels.

    Raises:
        DataError: The kind is unknown, or the data is missing, unreadable or too small.
    """
    try:
        loader = DATASETS.get(cfg.kind)
    except UnknownNameError as e:
        raise DataError(f"data.kind: {e}") from None
    raw = loader(cfg, resolve_data_path(cfg, base_dir))
    if len(raw.class_names) < 2:
        raise DataError(f"data: {len(raw.class_names)} class found ({', '.join(raw.class_names) or 'none'}); a"
                        " classifier needs at least 2: give data.path one sub-folder per class")
    rng = np.random.default_rng(seed)
    if raw.test is None:
        train, val, test = _split(raw.y, cfg.val_fraction, cfg.test_fraction, rng)
        parts = [(raw.x[i], raw.y[i]) for i in (train, val, test)]
    else:
        train, val, _ = _split(raw.y, cfg.val_fraction, 0.0, rng)
        parts = [(raw.x[train], raw.y[train]), (raw.x[val], raw.y[val]), raw.test]
    xs = [to_unit_float(x) for x, _ in parts]
    if cfg.image_size is not None:
        xs = [resize(x, cfg.image_size) for x in xs]
    if xs[2].shape[1:] != xs[0].shape[1:]:
        raise DataError(
            f"test images have shape {tuple(xs[2].shape[1:])} but train images"
            f" {tuple(xs[0].shape[1:])}; set data.image_size to resize both to one size"
        )
    mean = xs[0].mean(dim=(0, 2, 3))
    std = xs[0].std(dim=(0, 2, 3), unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    for x in xs:
        x.sub_(mean[:, None, None]).div_(std[:, None, None])
    sets = [TensorDataset(x, torch.as_tensor(y, dtype=torch.int64)) for x, (_, y) in zip(xs, parts)]
    return DataSplits(
        train=sets[0],
        val=sets[1],
        test=sets[2],
        num_classes=len(raw.class_names),
        input_shape=tuple(xs[0].shape[1:]),
        class_names=list(raw.class_names),
        mean=mean.tolist(),
        std=std.tolist(),
        pixel_scale=raw.pixel_scale,
    )


def preprocessing(data: DataSplits, cfg: DataConfig) -> dict[str, Any]:
    """How an image must be prepared for the models trained on ``data``: what the ONNX files
    carry in their metadata and the report states, so a deployed model can be fed new images."""
    channels, height, width = data.input_shape
    return {
        "input": "input",
        "layout": "NCHW",
        "dtype": "float32",
        "shape": [channels, height, width],
        "channel_order": "RGB" if channels == 3 else "gray" if channels == 1 else f"{channels} channels",
        "scale": f"to [0, 1]: {data.pixel_scale}",
        "resize": None if cfg.image_size is None else f"{height}×{width}, bilinear, antialiased",
        "mean": [round(m, 6) for m in data.mean],
        "std": [round(s, 6) for s in data.std],
        "normalize": "(x - mean) / std, per channel",
        "output": "logits: one per class, in class_names order (softmax for probabilities)",
        "class_names": list(data.class_names),
    }


def _split(
    y: np.ndarray, val_fraction: float, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified random (train, val, test) indices with exact overall split sizes.

    Each class's shuffled samples get evenly spaced positions in [0, 1); sorting by position
    interleaves the classes, so every prefix holds each class in proportion.
    """
    n = len(y)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n - n_test - n_val < 1 or (test_fraction > 0 and n_test == 0):
        raise DataError(
            f"only {n} images: too few to split into train/val/test;"
            " add images or change data.val_fraction / data.test_fraction"
        )
    perm = rng.permutation(n)
    labels = y[perm]
    position = np.empty(n)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    order = perm[np.argsort(position, kind="stable")]
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def make_loader(ds: TensorDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A single-process DataLoader whose order is fixed by ``seed``.

    Args:
        ds: The dataset.
        batch_size: Samples per batch; the last batch may be smaller.
        shuffle: Reshuffle every epoch (each epoch differs; the sequence is fixed by seed).
        seed: Seeds the loader's own ``torch.Generator``.

    Returns:
        The loader.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=generator
    )
