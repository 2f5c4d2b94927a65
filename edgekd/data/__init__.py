"""Datasets: digits (built in), image folders, CIFAR-format folders; splits and loaders."""

from edgekd.data import cifar, digits, folder  # noqa: F401  (each registers its dataset)
from edgekd.data.base import (
    DATASETS,
    DataSplits,
    data_files_stamp,
    load_data,
    make_loader,
    preprocessing,
    resolve_data_path,
)

__all__ = ["DATASETS", "DataSplits", "data_files_stamp", "load_data", "make_loader", "preprocessing",
           "resolve_data_path"]
