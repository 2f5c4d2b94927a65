"""edgekd.data: digits, image folders, CIFAR folders, splits, normalization, errors."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.config import DataConfig
from edgekd.data import DATASETS, load_data, make_loader, preprocessing
from edgekd.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(), seed=0)


def raw_pixels(splits, ds) -> torch.Tensor:
    """Undoes the normalization: images back in [0, 1]."""
    mean = torch.tensor(splits.mean)[:, None, None]
    std = torch.tensor(splits.std)[:, None, None]
    return ds.tensors[0] * std + mean


def test_registry_lists_the_datasets():
    assert {"digits", "image_folder", "cifar"} <= set(DATASETS.names())


def test_digits_shapes_and_split_sizes(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1258, 180, 359)
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    x, y = digits.train.tensors
    assert x.dtype == torch.float32 and x.shape == (1258, 1, 8, 8) and y.dtype == torch.int64
    assert set(digits.test.tensors[1].tolist()) == set(range(10))  # stratified: every class


def test_split_is_fixed_by_seed(digits):
    same = load_data(DataConfig(), seed=0)
    other = load_data(DataConfig(), seed=1)
    assert torch.equal(same.test.tensors[0], digits.test.tensors[0])
    assert torch.equal(same.train.tensors[1], digits.train.tensors[1])
    assert not torch.equal(other.test.tensors[0], digits.test.tensors[0])


def test_normalization_uses_train_statistics(digits):
    x = digits.train.tensors[0]
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert x.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert raw_pixels(digits, digits.test).min().item() == pytest.approx(0.0, abs=1e-5)


def test_image_size_resizes_and_val_can_be_empty():
    splits = load_data(DataConfig(image_size=12, val_fraction=0.0), seed=0)
    assert splits.input_shape == (1, 12, 12)
    assert splits.train.tensors[0].shape[1:] == (1, 12, 12)
    assert len(splits.val) == 0 and splits.val.tensors[0].shape == (0, 1, 12, 12)


def test_unknown_kind_suggests_close_match():
    with pytest.raises(DataError, match="did you mean 'digits'"):
        load_data(DataConfig(kind="digit"), seed=0)


def test_make_loader_order_is_fixed_by_seed(digits):
    def first_labels(seed):
        return next(iter(make_loader(digits.train, 16, shuffle=True, seed=seed)))[1]

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))
    ordered = next(iter(make_loader(digits.train, 16, shuffle=False, seed=3)))[1]
    assert torch.equal(ordered, digits.train.tensors[1][:16])


# --- image folders -------------------------------------------------------------------------

def write_images(root: Path, per_class: int = 4, value: int = 100, size=(6, 6), mode="RGB") -> None:
    """Three classes of flat images whose red value is ``value + 10 * label``; PNG and JPEG."""
    for label, name in enumerate(["cat", "dog", "eel"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            color = value + 10 * label if mode == "L" else (value + 10 * label, 0, 255)
            suffix = ".jpg" if i % 2 else ".png"
            Image.new(mode, size, color).save(root / name / f"{i}{suffix}")


def folder_cfg(path, **kw) -> DataConfig:
    return DataConfig(kind="image_folder", path=path, val_fraction=0.0, test_fraction=0.25, **kw)


def test_image_folder_rgb(tmp_path):
    write_images(tmp_path)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    splits = load_data(folder_cfg(tmp_path), seed=0)
    assert splits.class_names == ["cat", "dog", "eel"] and splits.input_shape == (3, 6, 6)
    assert (len(splits.train), len(splits.test)) == (9, 3)
    red = raw_pixels(splits, splits.train)[:, 0].mean(dim=(1, 2)) * 255
    expected = 100 + 10 * splits.train.tensors[1].float()
    assert torch.allclose(red, expected, atol=3)  # JPEG is lossy


def test_image_folder_with_one_class_is_refused(tmp_path):
    write_images(tmp_path)
    for name in ("dog", "eel"):
        shutil.rmtree(tmp_path / name)
    with pytest.raises(DataError, match="1 class found \\(cat\\); a classifier needs at least 2"):
        load_data(folder_cfg(tmp_path), seed=0)


def test_the_preprocessing_spec_turns_image_files_into_the_models_inputs(tmp_path):
    write_images(tmp_path, per_class=5)
    cfg = folder_cfg(tmp_path)
    splits = load_data(cfg, seed=0)
    spec = preprocessing(splits, cfg)
    assert spec["class_names"] == ["cat", "dog", "eel"] and spec["shape"] == [3, 6, 6]
    assert spec["channel_order"] == "RGB" and spec["resize"] is None and spec["scale"].endswith("pixels / 255")
    mean, std = np.array(spec["mean"])[:, None, None], np.array(spec["std"])[:, None, None]
    inputs = torch.cat([splits.train.tensors[0], splits.test.tensors[0]]).flatten(1).numpy()
    for file in sorted(tmp_path.rglob("*.*")):  # as a user would prepare a new image by the spec alone
        pixels = np.asarray(Image.open(file).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
        prepared = ((pixels - mean) / std).reshape(1, -1)
        assert np.abs(inputs - prepared).max(axis=1).min() < 1e-4, file


def test_the_digits_spec_states_its_own_pixel_scale():
    from sklearn.datasets import load_digits

    cfg = DataConfig(kind="digits")
    splits = load_data(cfg, seed=0)
    spec = preprocessing(splits, cfg)
    assert spec["scale"].endswith("(0-16) / 16")  # not / 255: following a wrong scale gives chance accuracy
    prepared = (load_digits().images[:, None] / 16 - spec["mean"][0]) / spec["std"][0]
    prepared = prepared.reshape(len(prepared), -1)
    for x in splits.test.tensors[0][:20].flatten(1).numpy():
        assert np.abs(prepared - x).max(axis=1).min() < 1e-4


def test_image_folder_grayscale_keeps_one_channel(tmp_path):
    write_images(tmp_path, mode="L")
    assert load_data(folder_cfg(tmp_path), seed=0).input_shape == (1, 6, 6)


def test_image_folder_relative_path_and_mixed_sizes(tmp_path):
    write_images(tmp_path / "imgs")
    Image.new("RGB", (9, 7)).save(tmp_path / "imgs" / "dog" / "big.png")
    with pytest.raises(DataError, match="data.image_size"):
        load_data(folder_cfg(Path("imgs")), seed=0, base_dir=tmp_path)
    splits = load_data(folder_cfg(Path("imgs"), image_size=5), seed=0, base_dir=tmp_path)
    assert splits.input_shape == (3, 5, 5) and len(splits.train) + len(splits.test) == 13


def test_image_folder_train_test_and_train_only_statistics(tmp_path):
    write_images(tmp_path / "train", value=40)
    write_images(tmp_path / "test", per_class=2, value=200)
    splits = load_data(folder_cfg(tmp_path), seed=0)
    assert (len(splits.train), len(splits.test)) == (12, 6)
    assert splits.test.tensors[1].tolist().count(2) == 2
    # the mean comes from the dark train images only, not from the bright test images
    assert splits.mean[0] * 255 == pytest.approx(50, abs=2)
    assert raw_pixels(splits, splits.test)[:, 0].mean().item() * 255 == pytest.approx(210, abs=3)


def test_image_folder_test_class_missing_from_train(tmp_path):
    write_images(tmp_path / "train")
    write_images(tmp_path / "test")
    (tmp_path / "test" / "fox").mkdir()
    Image.new("RGB", (6, 6)).save(tmp_path / "test" / "fox" / "a.png")
    with pytest.raises(DataError, match="fox"):
        load_data(folder_cfg(tmp_path), seed=0)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: None, "no class sub-folders"),
        (lambda p: (p / "cat").mkdir(), "class folder .*cat has no PNG or JPEG"),
        (lambda p: (write_images(p), (p / "dog" / "bad.png").write_bytes(b"junk")), "bad.png"),
    ],
    ids=["empty", "empty-class", "unreadable"],
)
def test_image_folder_errors(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(DataError, match=match):
        load_data(folder_cfg(tmp_path), seed=0)


@pytest.mark.parametrize("kind", ["image_folder", "cifar"])
def test_path_needed_and_must_exist(tmp_path, kind):
    with pytest.raises(DataError, match="needs data.path"):
        load_data(DataConfig(kind=kind), seed=0)
    with pytest.raises(DataError, match="does not exist; point it at"):
        load_data(DataConfig(kind=kind, path=tmp_path / "nope"), seed=0)


# --- CIFAR ---------------------------------------------------------------------------------

def cifar_images(labels) -> np.ndarray:
    """Flat uint8 rows of 3072 pixels, each image filled with 2 × its label."""
    return np.repeat(np.asarray(labels, dtype=np.uint8)[:, None] * 2, 3072, axis=1)


def dump(path: Path, obj, real_numpy_name: bool = False) -> None:
    data = pickle.dumps(obj, protocol=2)
    if real_numpy_name:  # the name numpy 1 (and the real CIFAR files) use
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


def assert_labels_match_pixels(splits) -> None:
    for ds in (splits.train, splits.val, splits.test):
        pixels = (raw_pixels(splits, ds)[:, 0, 0, 0] * 255).round()
        assert torch.equal(pixels, ds.tensors[1].float() * 2)


def cifar_cfg(path) -> DataConfig:
    return DataConfig(kind="cifar", path=path, val_fraction=0.1)


def test_cifar10_python(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in (1, 2):
        labels = [(i + j) % 10 for j in range(10)]
        dump(folder / f"data_batch_{i}", {"data": cifar_images(labels), "labels": labels}, True)
    dump(folder / "test_batch", {"data": cifar_images([3, 4, 5]), "labels": [3, 4, 5]})
    dump(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    splits = load_data(cifar_cfg(tmp_path), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 3)
    assert splits.input_shape == (3, 32, 32) and splits.class_names[3] == "c3"
    assert sorted(splits.test.tensors[1].tolist()) == [3, 4, 5]
    assert_labels_match_pixels(splits)


def test_cifar100_python_uses_fine_labels(tmp_path):
    fine, coarse = [11, 42, 99, 0, 57] * 2, [1] * 10
    train = {"data": cifar_images(fine), "fine_labels": fine, "coarse_labels": coarse}
    dump(tmp_path / "train", train)
    dump(tmp_path / "test", {"data": cifar_images([99]), "fine_labels": [99], "coarse_labels": [1]})
    names = {"fine_label_names": [f"f{i}".encode() for i in range(100)], "coarse_label_names": []}
    dump(tmp_path / "meta", names)
    splits = load_data(cifar_cfg(tmp_path), seed=0)
    assert splits.num_classes == 100 and splits.class_names[99] == "f99"
    assert splits.test.tensors[1].tolist() == [99]
    assert_labels_match_pixels(splits)


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    labels = np.arange(20) % 10
    records = np.concatenate([labels[:, None].astype(np.uint8), cifar_images(labels)], axis=1)
    records.tofile(folder / "data_batch_1.bin")
    records[:4].tofile(folder / "test_batch.bin")
    (folder / "batches.meta.txt").write_text("\n".join(f"n{i}" for i in range(10)) + "\n\n")
    splits = load_data(cifar_cfg(tmp_path), seed=0)
    assert (len(splits.train), len(splits.test)) == (18, 4) and splits.class_names[9] == "n9"
    assert_labels_match_pixels(splits)


def test_cifar100_binary_uses_fine_byte(tmp_path):
    fine = np.array([5, 70, 99, 5] * 3)
    coarse = np.full((12, 1), 7, np.uint8)
    rows = np.concatenate([coarse, fine[:, None].astype(np.uint8), cifar_images(fine)], axis=1)
    rows.tofile(tmp_path / "train.bin")
    rows[:2].tofile(tmp_path / "test.bin")
    splits = load_data(cifar_cfg(tmp_path), seed=0)
    assert splits.num_classes == 100 and splits.test.tensors[1].tolist() == [5, 70]
    assert_labels_match_pixels(splits)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    dump(tmp_path / "test_batch", {"data": cifar_images([1]), "labels": [1]})
    dump(tmp_path / "data_batch_1", {"data": cifar_images([1] * 10), "labels": [1] * 10})
    dump(tmp_path / "batches.meta", {"label_names": _Exploit(marker)})
    with pytest.raises(DataError, match=r"batches.meta: global (posix|nt)\.system is not allowed"):
        load_data(cifar_cfg(tmp_path), seed=0)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"README": b"hi"}, "holds no CIFAR files; expected .*cifar-10-batches-py"),
        ({"data_batch_1.bin": b"\x01" * 100, "test_batch.bin": b""}, "whole number of 3073-byte"),
        ({"train": b"junk", "test": b"junk", "meta": b"junk"}, "cannot read CIFAR file"),
    ],
    ids=["unrecognised", "truncated-binary", "corrupt-pickle"],
)
def test_cifar_errors(tmp_path, files, match):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_data(cifar_cfg(tmp_path), seed=0)
