"""The ``image_folder`` dataset: one sub-folder of PNG/JPEG images per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgekd.config import DataConfig
from edgekd.data.base import DATASETS, RawData, require_path, resize, to_unit_float
from edgekd.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_HINT = (
    "a folder with one sub-folder of PNG/JPEG images per class"
    " (optionally inside train/ and test/)"
)


@DATASETS.register("image_folder")
def load_image_folder(cfg: DataConfig, path: Path | None) -> RawData:
    """Loads ``path/<class>/*.png|jpg``, or ``path/train/<class>/…`` and ``path/test/…``.

    Class names are the sorted sub-folder names (of ``train/`` when split). Images are
    converted to RGB, or kept 1-channel when every image is grayscale (mode ``L``).

    Raises:
        DataError: The folder is missing or empty, a class has no images, an image cannot be
            read, test has a class train lacks, or sizes differ and ``data.image_size`` is unset.
    """
    root = require_path(path, "image_folder", _HINT)
    split = (root / "train").is_dir() and (root / "test").is_dir()
    trees = [_scan(root / "train"), _scan(root / "test")] if split else [_scan(root)]
    class_names = sorted(trees[0])
    unknown = sorted(set(trees[-1]) - set(class_names))
    if unknown:
        raise DataError(
            f"{root / 'test'} has classes {unknown} that {root / 'train'} lacks;"
            " give train/ a folder for each test class"
        )
    rgb, gray = [], True
    for tree in trees:
        images, labels = [], []
        for label, name in enumerate(class_names):
            for file in tree.get(name, []):
                array, is_gray = _read(file)
                images.append(array)
                labels.append(label)
                gray = gray and is_gray
        rgb.append((_stack(images, cfg.image_size, root), np.asarray(labels, dtype=np.int64)))
    parts = [(x[:, :1] if gray else x, y) for x, y in rgb]
    test = parts[1] if split else None
    return RawData(x=parts[0][0], y=parts[0][1], class_names=class_names, test=test)


def _scan(folder: Path) -> dict[str, list[Path]]:
    """Class name → sorted image files, for each non-hidden sub-folder."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.path: {folder} has no class sub-folders; point it at {_HINT}")
    tree = {}
    for c in classes:
        files = sorted(p for p in c.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(
                f"class folder {c} has no PNG or JPEG images; add some or remove the folder"
            )
        tree[c.name] = files
    return tree


def _read(file: Path) -> tuple[np.ndarray, bool]:
    """The image as uint8 RGB ``[3, H, W]``, and whether it was grayscale."""
    try:
        with Image.open(file) as im:
            return np.asarray(im.convert("RGB")).transpose(2, 0, 1), im.mode == "L"
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {file}: {e}; replace or remove the file") from None


def _stack(images: list[np.ndarray], image_size: int | None, root: Path) -> np.ndarray:
    """Stacks same-size images as uint8, or resizes each to ``image_size`` (float in [0, 1])."""
    sizes = sorted({im.shape[1:] for im in images})
    if len(sizes) == 1:
        return np.stack(images)
    if image_size is None:
        raise DataError(
            f"images in {root} have different sizes (e.g. {sizes[0]} and {sizes[-1]} as H×W);"
            " set data.image_size to resize them to one square size"
        )
    return np.concatenate([resize(to_unit_float(im[None]), image_size).numpy() for im in images])
