"""The ``cifar`` dataset: CIFAR-10 / CIFAR-100 folders in their python or binary formats.

The python format is pickled; it is read with an unpickler that only rebuilds numpy
arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.config import DataConfig
from edgekd.data.base import DATASETS, RawData, require_path
from edgekd.errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

_PIXELS = 3 * 32 * 32
_EXPECTED = (
    "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta),"
    " cifar-100-python/ (train, test, meta),"
    " cifar-10-batches-bin/ (data_batch_*.bin, test_batch.bin)"
    " or cifar-100-binary/ (train.bin, test.bin)"
)
_SUBFOLDERS = (
    "cifar-10-batches-py",
    "cifar-100-python",
    "cifar-10-batches-bin",
    "cifar-100-binary",
)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, strings and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


@DATASETS.register("cifar")
def load_cifar(cfg: DataConfig, path: Path | None) -> RawData:
    """Loads a CIFAR-10 or CIFAR-100 (fine labels) folder, or the folder holding it.

    Raises:
        DataError: The folder is missing, holds no CIFAR files, or a file is malformed.
    """
    root = require_path(path, "cifar", f"a CIFAR folder: {_EXPECTED}")
    for folder in (root, *(root / name for name in _SUBFOLDERS)):
        for marker, reader in _READERS:
            if all((folder / f).is_file() for f in marker):
                return reader(folder)
    raise DataError(
        f"data.path: {root} holds no CIFAR files; expected it or a sub-folder to be {_EXPECTED}"
    )


def _read_py10(folder: Path) -> RawData:
    batches = sorted(
        (p for p in folder.iterdir() if re.fullmatch(r"data_batch_\d+", p.name)),
        key=lambda p: int(p.name.rsplit("_", 1)[1]),
    )
    if not batches:
        raise DataError(f"{folder} has no data_batch_1..5; copy all of cifar-10-batches-py")
    x, y = _concat([_py_batch(p, "labels") for p in batches])
    names = _names(_unpickle(folder / "batches.meta"), "label_names", folder / "batches.meta")
    return _raw(x, y, names, _py_batch(folder / "test_batch", "labels"), folder)


def _read_py100(folder: Path) -> RawData:
    x, y = _py_batch(folder / "train", "fine_labels")
    names = _names(_unpickle(folder / "meta"), "fine_label_names", folder / "meta")
    return _raw(x, y, names, _py_batch(folder / "test", "fine_labels"), folder)


def _read_bin10(folder: Path) -> RawData:
    batches = sorted(folder.glob("data_batch_*.bin"))
    if not batches:
        raise DataError(f"{folder} has no data_batch_*.bin; copy all of cifar-10-batches-bin")
    x, y = _concat([_bin_batch(p, label_bytes=1) for p in batches])
    names = _text_names(folder / "batches.meta.txt", 10)
    return _raw(x, y, names, _bin_batch(folder / "test_batch.bin", label_bytes=1), folder)


def _read_bin100(folder: Path) -> RawData:
    x, y = _bin_batch(folder / "train.bin", label_bytes=2)
    names = _text_names(folder / "fine_label_names.txt", 100)
    return _raw(x, y, names, _bin_batch(folder / "test.bin", label_bytes=2), folder)


_READERS = (
    (("test_batch", "batches.meta"), _read_py10),
    (("train", "test", "meta"), _read_py100),
    (("test_batch.bin",), _read_bin10),
    (("train.bin", "test.bin"), _read_bin100),
)


def _unpickle(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as e:  # any failure to parse an untrusted file is a data error
        raise DataError(f"cannot read CIFAR file {file}: {e}; download the dataset again") from None
    if not isinstance(obj, dict):
        raise DataError(
            f"CIFAR file {file} holds a {type(obj).__name__}, not a dict; download it again"
        )
    return obj


def _py_batch(file: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels from one pickled batch."""
    batch = _unpickle(file)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or labels is None or data.size != len(labels) * _PIXELS:
        raise DataError(
            f"CIFAR file {file} lacks 'data' and '{label_key}' of matching size; download it again"
        )
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _bin_batch(file: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and (fine) labels from records of ``label_bytes`` label bytes + 3072 pixels."""
    raw = np.fromfile(file, dtype=np.uint8)
    record = label_bytes + _PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataError(
            f"CIFAR file {file} is not a whole number of {record}-byte records; download it again"
        )
    raw = raw.reshape(-1, record)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, label_bytes - 1].astype(np.int64)


def _concat(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _names(meta: dict[str, Any], key: str, file: Path) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or not names:
        raise DataError(f"CIFAR file {file} lacks '{key}'; download it again")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _text_names(file: Path, count: int) -> list[str]:
    """Class names, one a line, or "0".."count-1" when the file is absent."""
    if not file.is_file():
        return [str(i) for i in range(count)]
    return [line.strip() for line in file.read_text().splitlines() if line.strip()]


def _raw(
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    test: tuple[np.ndarray, np.ndarray],
    folder: Path,
) -> RawData:
    """Checks that every label names a class."""
    labels = np.concatenate([y, test[1]])
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(
            f"CIFAR files in {folder} have labels outside the {len(names)} class names;"
            " download them again"
        )
    return RawData(x=x, y=y, class_names=names, test=test)
