"""Data sets and batches.

``minialex.data.shapes``: the built-in generated data set (no download). ``minialex.data.loader``:
shuffling, normalisation and prefetching. ``DATASETS`` is the registry that ``python -m
minialex.train --dataset NAME`` reads: each entry says how to load a split and what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from minialex.data import shapes as _shapes
from minialex.data.shapes import CLASSES as SHAPES_CLASSES
from minialex.data.shapes import load_shapes, make_shapes

__all__ = ["DATASETS", "Dataset", "register_dataset", "load_dataset", "load_shapes", "make_shapes"]


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
    image_size: int                 # default side of the images
    resizable: bool                 # True when any image_size can be asked for (generated data)
    min_image_size: int
    train_size: int                 # images in the whole "train" split
    val_size: int                   # images in the whole "val" split
    load: Callable


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
                "20000 train / 2000 val images; no download",
    classes=SHAPES_CLASSES, in_channels=3, image_size=32, resizable=True, min_image_size=16,
    train_size=_shapes.TRAIN_SIZE, val_size=_shapes.VAL_SIZE, load=_load_shapes))


def load_dataset(name: str, split: str, n: int | None = None, image_size: int | None = None):
    """(images, labels) of ``split`` of the registered data set ``name``."""
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; the data sets are {', '.join(DATASETS)}")
    ds = DATASETS[name]
    return ds.load(split, n=n, image_size=image_size or ds.image_size)
