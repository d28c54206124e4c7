"""CIFAR-10: 60000 colour images of 32x32 in 10 classes, from the official files.

Two official versions, both accepted as the ``.tar.gz`` or as its extracted folder:

* **binary** (``cifar-10-binary.tar.gz`` -> ``cifar-10-batches-bin/``): ``data_batch_1.bin`` ...
  ``data_batch_5.bin`` (train) and ``test_batch.bin`` (val), each 10000 records of
  1 label byte + 3072 pixel bytes (1024 red, then 1024 green, then 1024 blue, rows top to bottom):
  exactly the (C, H, W) layout of minialex, so a file is one ``np.frombuffer`` and a reshape.
  Preferred: reading it runs no code from the file.
* **python** (``cifar-10-python.tar.gz`` -> ``cifar-10-batches-py/``): the same data as pickled
  dicts. Unpickling can run any code the file names, so these files are read only after their MD5
  is the published one, and then with an unpickler that accepts nothing but the few NumPy names a
  CIFAR batch needs.

The split is the official one: "train" = the five data batches (50000), "val" = the test batch.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from minialex.data.download import DataError, check_md5

__all__ = ["CLASSES", "RECORD", "load_cifar10", "read_records", "find_cifar10"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD = 1 + 3 * 32 * 32                       # bytes per record of the binary version: label + C*H*W
BINARY_TGZ = "cifar-10-binary.tar.gz"
PYTHON_TGZ = "cifar-10-python.tar.gz"
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "val": ["test_batch"]}
# MD5s of the python version, as published with it (and listed by torchvision)
PYTHON_MD5 = {
    PYTHON_TGZ: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_REDO = "delete it and download it again (--download)"


def read_records(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Records of the binary version -> images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    if len(data) == 0 or len(data) % RECORD:
        raise DataError(f"{where} is truncated or corrupt: {len(data)} bytes is not a whole number of "
                        f"{RECORD}-byte records; {_REDO}")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)     # (N, 1 + 3072)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{where} is corrupt: a record has label {int(labels.max())} (expected 0-9); {_REDO}")
    images = records[:, 1:].reshape(-1, 3, 32, 32)                         # (N, C, H, W)
    return images, labels


def find_cifar10(root: str):
    """(kind, path) of the first CIFAR-10 version found in ``root``: kind is "bin-dir", "bin-tgz",
    "py-dir" or "py-tgz"; None when there is none."""
    for kind, path in (("bin-dir", os.path.join(root, "cifar-10-batches-bin")), ("bin-dir", root),
                       ("bin-tgz", os.path.join(root, BINARY_TGZ)),
                       ("py-dir", os.path.join(root, "cifar-10-batches-py")), ("py-dir", root),
                       ("py-tgz", os.path.join(root, PYTHON_TGZ))):
        if kind.endswith("dir"):
            suffix = ".bin" if kind == "bin-dir" else ""
            if os.path.isfile(os.path.join(path, "data_batch_1" + suffix)) or \
                    os.path.isfile(os.path.join(path, "test_batch" + suffix)):
                return kind, path
        elif os.path.isfile(path):
            return kind, path
    return None


def load_cifar10(root: str, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of ``split`` ("train" or "val") from the
    CIFAR-10 files in ``root``; the first ``n`` only when ``n`` is given."""
    found = find_cifar10(root)
    if found is None:
        raise DataError(f"{root} holds no CIFAR-10 files (looked for {BINARY_TGZ}, cifar-10-batches-bin/, "
                        f"{PYTHON_TGZ}, cifar-10-batches-py/); put one there, or pass --download")
    kind, path = found
    reader = {"bin-dir": _binary_dir, "bin-tgz": _binary_tgz, "py-dir": _python_dir, "py-tgz": _python_tgz}[kind]
    images, labels = [], []
    count = 0
    for x, y in reader(path, BATCHES[split]):
        images.append(x)
        labels.append(y)
        count += len(y)
        if n is not None and count >= n:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    if n is not None:
        images, labels = images[:n], labels[:n]
    return np.ascontiguousarray(images), labels


# ---------------------------------------------------------------------------------------------
# The binary version
# ---------------------------------------------------------------------------------------------


def _binary_dir(folder, batches):
    for batch in batches:
        path = os.path.join(folder, batch + ".bin")
        if not os.path.isfile(path):
            raise DataError(f"{folder} lacks {batch}.bin (an incomplete CIFAR-10 folder); extract "
                            f"{BINARY_TGZ} again, or pass --download")
        with open(path, "rb") as f:
            yield read_records(f.read(), path)


def _tar_members(path, wanted):
    """Yield (name, bytes) of the members of the .tar.gz ``path`` whose base names are in
    ``wanted``, in the order of ``wanted``. Nothing is extracted to disk."""
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:          # one pass over the stream: gzip cannot seek back cheaply
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted:
                    found[name] = tar.extractfile(member).read()
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{path} is truncated or corrupt ({' '.join(str(err).split()) or type(err).__name__}); "
                        f"{_REDO}") from err
    for name in wanted:
        if name not in found:
            raise DataError(f"{path} lacks {name}: it is not the official archive, or is damaged; {_REDO}")
        yield name, found[name]


def _binary_tgz(path, batches):
    for name, data in _tar_members(path, [b + ".bin" for b in batches]):
        yield read_records(data, f"{path}:{name}")


# ---------------------------------------------------------------------------------------------
# The python version: checksum first, then a restricted unpickler
# ---------------------------------------------------------------------------------------------


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch (a dict of bytes, lists and one NumPy array) and refuses every
    other global: a pickle that names ``os.system`` is stopped here, not run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}          # how Python 3 writes bytes at pickle protocol 2: harmless

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle_batch(data: bytes, where: str):
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)     # (N, C, H, W)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:  # noqa: BLE001 - any failure means a damaged batch
        raise DataError(f"{where} is not a readable CIFAR-10 batch ({' '.join(str(err).split())}); {_REDO}") from err
    if len(images) != len(labels) or len(labels) == 0 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{where} is corrupt ({len(images)} images, {len(labels)} labels); {_REDO}")
    return images, labels


def _python_dir(folder, batches):
    for batch in batches:
        path = os.path.join(folder, batch)
        if not os.path.isfile(path):
            raise DataError(f"{folder} lacks {batch} (an incomplete CIFAR-10 folder); extract {PYTHON_TGZ} again, "
                            "or use the binary version (--download)")
        check_md5(path, PYTHON_MD5[batch], " (a pickle is only read when its checksum matches)")
        with open(path, "rb") as f:
            yield _unpickle_batch(f.read(), path)


def _python_tgz(path, batches):
    check_md5(path, PYTHON_MD5[PYTHON_TGZ], " (a pickle is only read when its checksum matches)")
    for name, data in _tar_members(path, batches):
        yield _unpickle_batch(data, f"{path}:{name}")



def open_cifar10(data_dir=None, download: bool = False, log=print):
    """The registry entry reading the CIFAR-10 files in ``data_dir`` (default ``data/cifar10``),
    after fetching the binary version when ``download`` is set."""
    from minialex.data import Dataset
    from minialex.data import download as dl
    from minialex.data.folder import resize_images

    root = os.fspath(data_dir) if data_dir is not None else dl.default_data_dir("cifar10")
    if download:
        dl.download("cifar10", root, log=log)
    url = dl.SOURCES["cifar10"].url + BINARY_TGZ
    if not os.path.isdir(root):
        raise DataError(f"the data folder {root} does not exist; pass --download to fetch {url}, or pass "
                        f"--data-dir DIR with {BINARY_TGZ} (or its extracted folder)")
    if find_cifar10(root) is None:
        raise DataError(f"{root} holds no CIFAR-10 files (looked for {BINARY_TGZ}, cifar-10-batches-bin/, "
                        f"{PYTHON_TGZ}, cifar-10-batches-py/); pass --download to fetch {url}, or put it there")

    def load(split, n=None, image_size=32):
        images, labels = load_cifar10(root, split, n)
        return resize_images(images, image_size), labels

    return Dataset(name="cifar10", description=f"CIFAR-10, 32x32 colour, 10 classes, from {root}", classes=CLASSES,
                   in_channels=3, image_size=32, resizable=True, min_image_size=8, train_size=50000, val_size=10000,
                   load=load)
