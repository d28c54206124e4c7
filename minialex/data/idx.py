"""MNIST and Fashion-MNIST: the IDX file format, read and written with NumPy.

An IDX file is a tiny header followed by one big array, all big-endian:

    bytes 0-1   0x00 0x00
    byte  2     the element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     D, the number of dimensions
    then        D sizes, each a big-endian int32
    then        prod(sizes) elements, big-endian, row-major (C order)

MNIST's images are ``0x00000803`` + (N, 28, 28) uint8, its labels ``0x00000801`` + (N,) uint8,
and the official files are gzipped (``train-images-idx3-ubyte.gz``); ``read_idx`` reads both the
.gz and an uncompressed file. Every size is checked against the bytes actually present, so a
truncated or corrupt file is reported as such (a ``DataError``), never as a strange array.

The train/val split is the official one: "train" = the 60000 ``train-*`` images, "val" = the 10000
``t10k-*`` (test) images. Fashion-MNIST uses the same names and format with 10 kinds of clothing.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from minialex.data.download import DataError

__all__ = ["DataError", "read_idx", "write_idx", "load_mnist", "find_mnist_files", "MNIST_FILES",
           "MNIST_CLASSES", "FASHION_CLASSES"]


# the four official files of each split: (images, labels)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}


def _read_bytes(path: str) -> bytes:
    """The file's content, gunzipped when it is a .gz (recognised by gzip's magic bytes 1f 8b)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:     # cut short, or garbled
        raise DataError(f"{path} is a truncated or corrupt gzip file ({' '.join(str(err).split())}); delete it "
                        "and download it again (--download)") from err


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array of its own shape, in native byte order."""
    path = os.fspath(path)
    data = _read_bytes(path)
    redo = "delete it and download it again (--download)"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise DataError(f"{path} is not an IDX file (its first bytes are {data[:4].hex() or 'missing'}, expected "
                        f"00 00 <type> <dims>); {redo}")
    D = data[3]
    header = 4 + 4 * D
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header names {D} dimensions but the file ends first; {redo}")
    sizes = struct.unpack(f">{D}i", data[4:header])               # big-endian int32 sizes
    if any(s < 0 for s in sizes):
        raise DataError(f"{path} is corrupt: negative size in its header {sizes}; {redo}")
    dtype = np.dtype(_TYPES[data[2]])
    expected = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        what = "truncated" if len(data) - header < expected else "corrupt (longer than its header says)"
        raise DataError(f"{path} is {what}: the header {'x'.join(map(str, sizes))} needs {expected} bytes of data, "
                        f"the file holds {len(data) - header}; {redo}")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(sizes)
    return array.astype(dtype.newbyteorder("="))                   # a writable copy in native order


def write_idx(path, array, compress: bool | None = None) -> str:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz, or when ``compress``)."""
    path = os.fspath(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: IDX cannot hold dtype {array.dtype}; use uint8, int8, int16, int32, "
                         "float32 or float64")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    if path.endswith(".gz") if compress is None else compress:
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
    return path


def find_mnist_files(root: str, split: str) -> tuple[str, str] | None:
    """The (images, labels) files of ``split`` in ``root``: the official .gz names, or the same
    names without .gz (already uncompressed); None when either is missing."""
    found = []
    for name in MNIST_FILES[split]:
        candidates = [os.path.join(root, name), os.path.join(root, name[:-3])]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def load_mnist(root: str, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 1, 28, 28) and labels int64 (N,) of ``split`` ("train" or "val") from the
    IDX files in ``root``; the first ``n`` only when ``n`` is given."""
    files = find_mnist_files(root, split)
    if files is None:
        names = ", ".join(MNIST_FILES[split])
        raise DataError(f"{root} lacks the {split} files ({names}); put them there, or pass --download")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{files[0]} holds {images.dtype} {images.shape}, not uint8 images (N, H, W); is it an "
                        "images file? put the official file there")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{files[1]} holds {labels.dtype} {labels.shape}, not uint8 labels (N,); is it a "
                        "labels file? put the official file there")
    if len(images) != len(labels):
        raise DataError(f"{files[0]} holds {len(images)} images but {files[1]} {len(labels)} labels; one of them "
                        "is from another set or damaged: download both again (--download)")
    if labels.size and labels.max() > 9:
        raise DataError(f"{files[1]} holds a label {int(labels.max())} (expected 0-9): it is corrupt; download it "
                        "again (--download)")
    if len(images) == 0:
        raise DataError(f"{files[0]} holds no images; download it again (--download)")
    if n is not None:
        images, labels = images[:n], labels[:n]
    return np.ascontiguousarray(images[:, None]), labels.astype(np.int64)   # (N, 1, H, W)


def idx_length(path) -> int:
    """The first size in an IDX file's header (the number of images or labels), read without
    reading the data."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(8)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is a truncated or corrupt gzip file ({' '.join(str(err).split())}); delete it "
                        "and download it again (--download)") from err
    if len(head) < 8 or head[:2] != b"\x00\x00" or head[2] not in _TYPES or head[3] < 1:
        raise DataError(f"{path} is not an IDX file (its first bytes are {head[:4].hex() or 'missing'}, expected "
                        "00 00 <type> <dims>); delete it and download it again (--download)")
    return struct.unpack(">i", head[4:8])[0]


def open_mnist(name: str = "mnist", data_dir=None, download: bool = False, log=print):
    """The registry entry of ``name`` ("mnist" or "fashion-mnist") reading the files in
    ``data_dir`` (default ``data/<name>``), after fetching them when ``download`` is set."""
    from minialex.data import Dataset
    from minialex.data import download as dl
    from minialex.data.folder import resize_images

    root = os.fspath(data_dir) if data_dir is not None else dl.default_data_dir(name)
    if download:
        dl.download(name, root, log=log)
    source = dl.SOURCES[name]
    if not os.path.isdir(root):
        raise DataError(f"the data folder {root} does not exist; pass --download to fetch the {name} files from "
                        f"{source.url}, or pass --data-dir DIR with {', '.join(source.files)}")
    sizes = {}
    for split in ("train", "val"):
        files = find_mnist_files(root, split)
        if files is None:
            missing = [f for f in MNIST_FILES[split] if not any(os.path.isfile(os.path.join(root, g))
                                                                 for g in (f, f[:-3]))]
            raise DataError(f"{root} lacks {', '.join(missing)}; pass --download to fetch the {name} files from "
                            f"{source.url}, or put them in {root}")
        sizes[split] = idx_length(files[1])

    def load(split, n=None, image_size=28):
        images, labels = load_mnist(root, split, n)
        return resize_images(images, image_size), labels

    classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    what = "handwritten digits" if name == "mnist" else "Zalando's clothes"
    return Dataset(name=name, description=f"{what}, 28x28 grey, from the IDX files in {root}", classes=classes,
                   in_channels=1, image_size=28, resizable=True, min_image_size=8, train_size=sizes["train"],
                   val_size=sizes["val"], load=load)
