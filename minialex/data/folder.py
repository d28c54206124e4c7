"""Your own images: a folder tree with one subfolder per class, read with Pillow.

    DIR/train/cat/0001.jpg      DIR/val/cat/0101.jpg
    DIR/train/cat/0002.png      DIR/val/dog/0102.png
    DIR/train/dog/...           ...

The classes are the subfolders of ``DIR/train`` in alphabetical order (class 0 = the first), and
``DIR/val`` must hold the same ones. Every image is converted to RGB (a grey image gets its value
in all three channels), its shorter side resized to the requested size (bilinear, with Pillow's
antialiasing when shrinking) and the centre square kept, as the paper did with ImageNet:
"we down-sampled the images to a fixed resolution of 256 x 256 ... rescaled the image such that
the shorter side was of length 256, and then cropped out the central 256 x 256 patch".

Everything that can be wrong with such a tree is reported as one ``DataError`` line naming the
folder or file and what to do: a missing or empty folder, one class only, classes that differ
between train/ and val/, a class without images, an image Pillow cannot read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from minialex.data.download import DataError

__all__ = ["IMAGE_EXTENSIONS", "FolderIndex", "scan_folder", "load_folder", "read_image", "resize_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_LAYOUT = "DIR/train/<class>/*.png|jpg and DIR/val/<class>/*.png|jpg"


@dataclass(frozen=True)
class FolderIndex:
    root: str
    classes: tuple              # class names, sorted
    files: dict                 # split -> list of (path, label)


def _images_in(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, f)))


def _class_dirs(folder):
    return sorted(d for d in os.listdir(folder) if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def scan_folder(root) -> FolderIndex:
    """List the images of ``root/train`` and ``root/val`` and check the tree (no image is read)."""
    if root is None:
        raise DataError(f"--dataset folder needs --data-dir DIR, a folder laid out as {_LAYOUT}")
    root = os.fspath(root)
    if not os.path.exists(root):
        raise DataError(f"the data folder {root} does not exist; pass --data-dir DIR with {_LAYOUT}")
    if not os.path.isdir(root):
        raise DataError(f"--data-dir {root} is a file, not a folder; pass a folder with {_LAYOUT}")
    if not os.listdir(root):
        raise DataError(f"the data folder {root} is empty; put the images in {_LAYOUT}")
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise DataError(f"{root} has no {split}/ folder; lay the images out as {_LAYOUT}")
    train_classes = _class_dirs(os.path.join(root, "train"))
    val_classes = _class_dirs(os.path.join(root, "val"))
    if not train_classes:
        raise DataError(f"{os.path.join(root, 'train')} holds no class folders; put each class's images in "
                        f"its own subfolder: {_LAYOUT}")
    if len(train_classes) < 2:
        raise DataError(f"{os.path.join(root, 'train')} holds one class only ({train_classes[0]}); a classifier "
                        "needs at least two: add a subfolder per class")
    if set(train_classes) != set(val_classes):
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        parts = ([f"only in train/: {', '.join(only_train)}"] if only_train else []) + \
                ([f"only in val/: {', '.join(only_val)}"] if only_val else [])
        raise DataError(f"the classes differ between {root}/train and {root}/val ({'; '.join(parts)}); give both "
                        "the same class subfolders")
    files = {}
    for split in ("train", "val"):
        files[split] = []
        for label, name in enumerate(train_classes):
            folder = os.path.join(root, split, name)
            images = _images_in(folder)
            if not images:
                raise DataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some, or remove the "
                                f"class from both train/ and val/")
            files[split] += [(path, label) for path in images]
    return FolderIndex(root, tuple(train_classes), files)


def read_image(path, size: int, channels: int = 3) -> np.ndarray:
    """One image file -> uint8 (channels, size, size): converted to RGB (or grey, ``channels=1``),
    shorter side resized to ``size``, centre square cropped."""
    from PIL import Image

    path = os.fspath(path)
    try:
        with Image.open(path) as img:
            img.draft("RGB" if channels == 3 else "L", (size, size))   # JPEG: decode at a reduced scale, faster
            img = img.convert("RGB" if channels == 3 else "L")          # reads the whole file: fails if damaged
    except FileNotFoundError as err:
        raise DataError(f"no such image: {path}") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"cannot read the image {path} ({reason}); replace it with a PNG or JPEG file, or remove "
                        "it") from err
    return _square(img, size, channels)


def _square(img, size, channels):
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    array = np.asarray(img, dtype=np.uint8)                                     # (H, W, C) or (H, W)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)         # (C, H, W)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, C, H, W) square images -> (N, C, size, size), bilinear (Pillow), one by one."""
    from PIL import Image

    N, C = images.shape[:2]
    if images.shape[2:] == (size, size):
        return images
    out = np.empty((N, C, size, size), dtype=np.uint8)
    for n in range(N):
        for c in range(C):
            img = Image.fromarray(images[n, c])
            out[n, c] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out


def load_folder(index: FolderIndex, split: str, n: int | None = None, size: int = 32,
                channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, C, size, size) and labels int64 (N,) of ``split``. With ``n``: a fixed
    random subset of n images (seed 0, the same every time), so every class is represented."""
    files = index.files[split]
    if n is not None and n < len(files):
        pick = np.random.default_rng(0).permutation(len(files))[:n]
        files = [files[i] for i in pick]
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        images[i] = read_image(path, size, channels)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return images, labels


def open_folder(data_dir=None, download: bool = False, log=print):
    """The registry entry reading the image tree ``data_dir`` (checked now; images read by load)."""
    from minialex.data import Dataset

    if download:
        raise DataError("--download: there is nothing to download for --dataset folder; the images are your own "
                        f"(pass --data-dir DIR with {_LAYOUT})")
    index = scan_folder(data_dir)

    def load(split, n=None, image_size=32):
        return load_folder(index, split, n=n, size=image_size)

    return Dataset(name="folder", description=f"the images in {index.root} ({len(index.classes)} classes)",
                   classes=index.classes, in_channels=3, image_size=0, resizable=True, min_image_size=1,
                   train_size=len(index.files["train"]), val_size=len(index.files["val"]), load=load)
