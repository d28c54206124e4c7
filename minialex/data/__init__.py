"""Data sets and batches.

``minialex.data.shapes``: the built-in generated data set (no download). ``minialex.data.loader``:
shuffling, normalisation and prefetching. ``DATASETS`` is the registry that ``python -m
minialex.train --dataset NAME`` reads: each entry says how to load a split and what it holds.
Real data, read from files (``open_dataset(name, data_dir, download)``): ``idx`` (MNIST,
Fashion-MNIST), ``cifar`` (CIFAR-10), ``folder`` (your own images, with Pillow); ``download``
fetches the official files when asked and checks their MD5; ``augment``: the paper's crops,
flips, PCA colour jitter and ten-crop evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from minialex.data import cifar as _cifar
from minialex.data import folder as _folder
from minialex.data import idx as _idx
from minialex.data import shapes as _shapes
from minialex.data.download import DataError
from minialex.data.shapes import CLASSES as SHAPES_CLASSES
from minialex.data.shapes import load_shapes, make_shapes

__all__ = ["DATASETS", "Dataset", "DataError", "register_dataset", "open_dataset", "load_dataset", "load_shapes",
           "make_shapes"]


@dataclass(frozen=True)
class Dataset:
    """One entry of the registry.

    ``load(split, n, image_size)`` returns (uint8 images (N, C, H, W), int64 labels (N,)) for split
    "train" or "val"; ``n=None`` means the whole split. ``image_size`` is None for data sets with a
    fixed size, or the side the images are drawn at.
    """

    name: str
    description: str
    classes: tuple
    in_channels: int
    image_size: int                 # default side of the images (0: the input size of the model)
    resizable: bool                 # True when any image_size can be asked for (generated, or resized on loading)
    min_image_size: int
    train_size: int                 # images in the whole "train" split
    val_size: int                   # images in the whole "val" split
    load: Callable
    # for data read from files: open(data_dir, download=False, log=print) -> the Dataset of the files in
    # data_dir (checked, fetched first with download=True); None for generated data
    open: Callable | None = None


def _load_shapes(split, n=None, image_size=32):
    # The data set is fixed (seed 0): the training seed (--seed) changes the model's initial
    # weights, the dropout masks and the order of the batches, never the images.
    return load_shapes(split, n=n, seed=0, image_size=image_size)


DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> Dataset:
    """Add a data set to the registry (``--dataset NAME`` then finds it)."""
    DATASETS[dataset.name] = dataset
    return dataset


register_dataset(Dataset(
    name="shapes",
    description="built-in, generated: 10 shapes (circle, square, ...) on textured backgrounds; "
                "6000 train / 2000 val images; no download",
    classes=SHAPES_CLASSES, in_channels=3, image_size=32, resizable=True, min_image_size=16,
    train_size=_shapes.TRAIN_SIZE, val_size=_shapes.VAL_SIZE, load=_load_shapes))


def _from_default_dir(opener, split, n=None, image_size=None):
    ds = opener()
    return ds.load(split, n=n, image_size=image_size or ds.image_size)


register_dataset(Dataset(
    name="mnist", description="handwritten digits, 28x28 grey, 60000 train / 10000 val; IDX files in --data-dir "
    "(default data/mnist), --download fetches them", classes=_idx.MNIST_CLASSES, in_channels=1, image_size=28,
    resizable=True, min_image_size=8, train_size=60000, val_size=10000,
    load=partial(_from_default_dir, partial(_idx.open_mnist, "mnist")), open=partial(_idx.open_mnist, "mnist")))
register_dataset(Dataset(
    name="fashion-mnist", description="Zalando's clothes, 28x28 grey, 60000 train / 10000 val; IDX files in "
    "--data-dir (default data/fashion-mnist), --download fetches them", classes=_idx.FASHION_CLASSES, in_channels=1,
    image_size=28, resizable=True, min_image_size=8, train_size=60000, val_size=10000,
    load=partial(_from_default_dir, partial(_idx.open_mnist, "fashion-mnist")),
    open=partial(_idx.open_mnist, "fashion-mnist")))
register_dataset(Dataset(
    name="cifar10", description="CIFAR-10, 32x32 colour, 50000 train / 10000 val; the binary (or checksummed python) "
    "version in --data-dir (default data/cifar10), --download fetches it", classes=_cifar.CLASSES, in_channels=3,
    image_size=32, resizable=True, min_image_size=8, train_size=50000, val_size=10000,
    load=partial(_from_default_dir, _cifar.open_cifar10), open=_cifar.open_cifar10))
register_dataset(Dataset(
    name="folder", description="your images: --data-dir DIR with DIR/train/<class>/*.png|jpg and DIR/val/<class>/..., "
    "resized to --image-size", classes=(), in_channels=3, image_size=0, resizable=True, min_image_size=1,
    train_size=0, val_size=0, load=partial(_from_default_dir, _folder.open_folder), open=_folder.open_folder))


def open_dataset(name: str, data_dir=None, download: bool = False, log=print) -> Dataset:
    """The data set ``name``, ready to load: for data read from files, the entry bound to the files
    in ``data_dir`` (the data set's default folder when None), fetched first when ``download``.
    Raises ``DataError`` (one line: what is wrong, what to do) when they are missing or damaged."""
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; the data sets are {', '.join(DATASETS)}")
    ds = DATASETS[name]
    if ds.open is None:
        if download:
            log(f"note: --download: the {name} data set is generated, there is nothing to download")
        return ds
    return ds.open(data_dir, download=download, log=log)


def load_dataset(name: str, split: str, n: int | None = None, image_size: int | None = None):
    """(images, labels) of ``split`` of the registered data set ``name``."""
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; the data sets are {', '.join(DATASETS)}")
    ds = DATASETS[name]
    return ds.load(split, n=n, image_size=image_size or ds.image_size)
