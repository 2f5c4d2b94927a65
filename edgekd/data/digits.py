"""The ``digits`` dataset: scikit-learn's 1797 8×8 handwritten digits, shipped with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.config import DataConfig
from edgekd.data.base import DATASETS, RawData


@DATASETS.register("digits")
def load_digits(cfg: DataConfig, path: Path | None) -> RawData:
    """Loads sklearn's digits as 1-channel 8×8 images in [0, 1] (``data.path`` is unused)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images[:, None] / 16.0).astype(np.float32)
    return RawData(x=x, y=bunch.target.astype(np.int64), class_names=[str(i) for i in range(10)],
                   pixel_scale="sklearn's digits pixel values (0-16) / 16")
