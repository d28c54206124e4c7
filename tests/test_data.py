"""Real data: the IDX, CIFAR-10 and image-folder readers on small files written here in the real
formats, the downloads (checksums, no network), the augmentations, and every bad input through
``python -m minialex.train`` (one line ``error: ...``, exit code 2, no traceback).

Nothing here touches the network: the "no network" case points at a port with nothing behind it
(127.0.0.1:9) and the download that works reads a ``file://`` folder written by the test.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from minialex import train
from minialex.data import DATASETS, DataError, open_dataset
from minialex.data import cifar, download, folder, idx
from minialex.data.augment import (Augment, EvalCrops, load_size, match_channels, pca_colour, sample_uniforms,
                                   ten_crop_offsets)
from minialex.data.loader import DataLoader

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


# =============================================================================================
# Writers of the real formats (small)
# =============================================================================================


def write_mnist(root, n_train=40, n_val=20, seed=0, names=idx.MNIST_FILES):
    """The four official files, gzipped IDX, with random digits; returns the arrays."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        idx.write_idx(os.path.join(root, names[split][0]), images)
        idx.write_idx(os.path.join(root, names[split][1]), labels)
        arrays[split] = (images, labels)
    return arrays


def cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes(), labels, pixels


def write_cifar_bin(root, per_batch=6, as_tgz=False):
    """data_batch_1..5.bin and test_batch.bin (records of 1 + 3072 bytes), in
    cifar-10-batches-bin/ or in cifar-10-binary.tar.gz."""
    os.makedirs(root, exist_ok=True)
    files, expected = {}, {"train": [], "val": []}
    for i, batch in enumerate(cifar.BATCHES["train"] + cifar.BATCHES["val"]):
        data, labels, pixels = cifar_records(per_batch, seed=i)
        files[f"cifar-10-batches-bin/{batch}.bin"] = data
        expected["val" if batch == "test_batch" else "train"].append((labels, pixels))
    files["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(cifar.CLASSES) + "\n").encode()
    if as_tgz:
        with tarfile.open(os.path.join(root, cifar.BINARY_TGZ), "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
    return {k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for k, v in expected.items()}


def write_cifar_python_tgz(root, per_batch=4, payload=None):
    """cifar-10-python.tar.gz with pickled batches (protocol 2, as the official files); with
    ``payload`` the first batch is that pickle instead."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, cifar.PYTHON_TGZ)
    with tarfile.open(path, "w:gz") as tar:
        for i, batch in enumerate(cifar.BATCHES["train"] + cifar.BATCHES["val"]):
            _, labels, pixels = cifar_records(per_batch, seed=i)
            data = pickle.dumps({b"batch_label": batch.encode(), b"labels": labels.tolist(), b"data": pixels},
                                protocol=2)
            if payload is not None and i == 0:
                data = payload
            info = tarfile.TarInfo(f"cifar-10-batches-py/{batch}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


COLOURS = {"blue_triangle": (40, 70, 220), "green_square": (40, 200, 60), "red_circle": (220, 40, 40)}


def draw(name, size, rng):
    """A coloured shape on a dark random background, of side ``size``."""
    from PIL import ImageDraw

    bg = tuple(int(v) for v in rng.integers(0, 90, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.25, 0.4) * size
    cx, cy = rng.uniform(r, size - r, 2)
    colour = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in COLOURS[name])
    if name == "red_circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif name == "green_square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def make_folder(root, n_train=4, n_val=2, classes=tuple(COLOURS), seed=0):
    """root/train/<class>/ and root/val/<class>/: PNG and JPEG files alternately, of varied sizes
    (some not square)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for k, name in enumerate(classes):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(n):
                img = draw(name if name in COLOURS else list(COLOURS)[k % 3], int(rng.integers(28, 48)), rng)
                if i % 3 == 2:
                    img = img.resize((img.width + 10, img.height))               # not square
                img.save(os.path.join(root, split, name, f"{i:03d}.{'png' if i % 2 else 'jpg'}"))
    return root


# =============================================================================================
# IDX (MNIST, Fashion-MNIST)
# =============================================================================================


def test_idx_header_is_big_endian_and_round_trips(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = idx.write_idx(tmp_path / "x-idx3-ubyte.gz", images)
    raw = gzip.decompress(open(path, "rb").read())
    assert raw[:4] == bytes([0, 0, 0x08, 3])                                      # uint8, 3 dimensions
    assert struct.unpack(">3i", raw[4:16]) == (2, 3, 4)                            # big-endian sizes
    assert raw[16:] == images.tobytes()
    np.testing.assert_array_equal(idx.read_idx(path), images)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)                 # other types, no gzip
    np.testing.assert_array_equal(idx.read_idx(idx.write_idx(tmp_path / "f-idx2", floats)), floats)
    assert open(tmp_path / "f-idx2", "rb").read(4) == bytes([0, 0, 0x0D, 2])


def test_mnist_loads_through_the_registry(tmp_path):
    arrays = write_mnist(tmp_path / "mnist")
    for name in ("mnist", "fashion-mnist"):
        ds = open_dataset(name, data_dir=tmp_path / "mnist")
        assert (ds.train_size, ds.val_size, ds.in_channels, len(ds.classes)) == (40, 20, 1, 10)
        x, y = ds.load("train")
        assert x.shape == (40, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0], arrays["train"][0])
        np.testing.assert_array_equal(y, arrays["train"][1])
        x, y = ds.load("val", n=5, image_size=32)                                   # --limit, resized
        assert x.shape == (5, 1, 32, 32) and len(y) == 5
    assert DATASETS["fashion-mnist"].classes[9] == "Ankle boot"


def test_mnist_uncompressed_files_are_accepted(tmp_path):
    root = tmp_path / "raw"
    write_mnist(root, names={k: tuple(n[:-3] for n in v) for k, v in idx.MNIST_FILES.items()})
    x, _ = open_dataset("mnist", data_dir=root).load("val")
    assert x.shape == (20, 1, 28, 28)


@pytest.mark.parametrize("damage,needle", [
    (lambda b: b[: len(b) // 2], "truncated"),                                      # cut gzip stream
    (lambda b: gzip.compress(gzip.decompress(b)[:-7]), "truncated"),                 # fewer pixels than the header says
    (lambda b: gzip.compress(b"\x01\x02\x08\x03" + gzip.decompress(b)[4:]), "not an IDX file"),
    (lambda b: b[:20] + bytes(40) + b[60:], "corrupt"),                              # garbled gzip
])
def test_idx_damage_is_named(tmp_path, damage, needle):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=needle):
        idx.load_mnist(str(tmp_path), "train")


# =============================================================================================
# CIFAR-10
# =============================================================================================


@pytest.mark.parametrize("as_tgz", [False, True], ids=["folder", "tar.gz"])
def test_cifar_binary_records(tmp_path, as_tgz):
    expected = write_cifar_bin(tmp_path, per_batch=6, as_tgz=as_tgz)
    ds = open_dataset("cifar10", data_dir=tmp_path)
    x, y = ds.load("train")
    labels, pixels = expected["train"]
    assert x.shape == (30, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, labels)
    # a record's pixels are 1024 red, 1024 green, 1024 blue, rows top to bottom: C, H, W
    assert x[7, 1, 2, 3] == pixels[7, 1024 + 2 * 32 + 3]
    np.testing.assert_array_equal(x.reshape(30, -1), pixels)
    x, y = ds.load("val", n=4)
    np.testing.assert_array_equal(y, expected["val"][0][:4])


def test_cifar_python_version_needs_its_checksum(tmp_path, monkeypatch):
    path = write_cifar_python_tgz(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch"):                      # not the official file: refused
        cifar.load_cifar10(str(tmp_path), "train")
    monkeypatch.setitem(cifar.PYTHON_MD5, cifar.PYTHON_TGZ, download.md5_file(path))
    x, y = cifar.load_cifar10(str(tmp_path), "train")                                 # "official" now: read
    assert x.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(x.reshape(20, -1)[:4], cifar_records(4, 0)[2])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_pickle_is_never_run(tmp_path, monkeypatch):
    """A pickle that would run a command: refused by its checksum, and even with a matching
    checksum by the unpickler that accepts NumPy's array names only."""
    monkeypatch.chdir(tmp_path)
    path = write_cifar_python_tgz(tmp_path, payload=pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(DataError, match="checksum mismatch"):
        cifar.load_cifar10(str(tmp_path), "train")
    monkeypatch.setitem(cifar.PYTHON_MD5, cifar.PYTHON_TGZ, download.md5_file(path))
    with pytest.raises(DataError, match="refusing to load"):
        cifar.load_cifar10(str(tmp_path), "train")
    assert not (tmp_path / "pwned").exists()


def test_cifar_damage_is_named(tmp_path):
    write_cifar_bin(tmp_path / "cut")
    batch = tmp_path / "cut" / "cifar-10-batches-bin" / "data_batch_2.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        cifar.load_cifar10(str(tmp_path / "cut"), "train")
    write_cifar_bin(tmp_path / "tgz", as_tgz=True)
    archive = tmp_path / "tgz" / cifar.BINARY_TGZ
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="truncated or corrupt"):
        cifar.load_cifar10(str(tmp_path / "tgz"), "train")


# =============================================================================================
# Image folders
# =============================================================================================


def test_folder_of_png_and_jpeg(tmp_path):
    make_folder(tmp_path, n_train=4, n_val=2)
    Image.new("L", (20, 30), 200).save(tmp_path / "train" / "red_circle" / "grey.png")   # grey: becomes RGB
    (tmp_path / "train" / "red_circle" / "notes.txt").write_text("not an image")        # ignored
    ds = open_dataset("folder", data_dir=tmp_path)
    assert ds.classes == ("blue_triangle", "green_square", "red_circle")
    assert (ds.train_size, ds.val_size) == (13, 6)
    x, y = ds.load("train", image_size=24)
    assert x.shape == (13, 3, 24, 24) and x.dtype == np.uint8
    assert sorted(np.bincount(y).tolist()) == [4, 4, 5]
    grey = x[y == 2][-1]                                                              # grey.png sorts last
    assert (grey == 200).all()
    # the colours survive: each class's mean colour is its own
    means = np.array([x[y == k].mean(axis=(0, 2, 3)) for k in range(3)])              # (class, RGB)
    assert means[0].argmax() == 2 and means[1].argmax() == 1 and means[2].argmax() == 0
    x, y = ds.load("val", n=3, image_size=16)                                            # --limit: a fixed subset
    assert x.shape == (3, 3, 16, 16)
    np.testing.assert_array_equal(ds.load("val", n=3, image_size=16)[0], x)


def test_read_image_keeps_the_centre_square(tmp_path):
    img = np.zeros((10, 30, 3), dtype=np.uint8)                                      # wide: 10 rows, 30 columns
    img[:, 10:20] = 255                                                               # white middle third
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = folder.read_image(tmp_path / "wide.png", 10)
    assert x.shape == (3, 10, 10) and (x == 255).all()


# =============================================================================================
# Downloads
# =============================================================================================


def test_no_network_says_what_to_fetch_and_where(tmp_path):
    with pytest.raises(DataError) as info:
        download.download("mnist", tmp_path / "m", url="http://127.0.0.1:9/", timeout=2, log=lambda m: None)
    message = str(info.value)
    assert message.startswith("no network")
    assert "train-images-idx3-ubyte.gz" in message and "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "m") in message
    assert not any(p.name.endswith(".part") for p in (tmp_path / "m").iterdir())


def test_download_checks_md5(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_mnist(mirror)
    files = {name: download.md5_file(mirror / name) for name in download.SOURCES["mnist"].files}
    monkeypatch.setitem(download.SOURCES, "mnist", download.Source(mirror.as_uri() + "/", files, ""))
    got = download.download("mnist", tmp_path / "data", log=lambda m: None)            # fetched, checked
    assert [os.path.basename(p) for p in got] == list(files)
    assert open_dataset("mnist", data_dir=tmp_path / "data").train_size == 40
    assert download.download("mnist", tmp_path / "data", log=lambda m: None) == got    # present: checked only
    # a local file that is not the official one
    (tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    with pytest.raises(DataError, match="checksum mismatch.*t10k-labels"):
        download.download("mnist", tmp_path / "data", log=lambda m: None)
    # a download whose checksum does not match is not kept
    wrong = dict(files, **{"train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(download.SOURCES, "mnist", download.Source(mirror.as_uri() + "/", wrong, ""))
    with pytest.raises(DataError, match="checksum mismatch.*not kept"):
        download.download("mnist", tmp_path / "other", log=lambda m: None)
    assert not os.listdir(tmp_path / "other")


def test_official_checksums_are_the_published_ones():
    assert download.SOURCES["mnist"].files["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert download.SOURCES["fashion-mnist"].files["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert download.SOURCES["cifar10"].files == {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"}
    assert cifar.PYTHON_MD5[cifar.PYTHON_TGZ] == "c58f30108f718f92721af3b95e74349a"


# =============================================================================================
# Augmentation
# =============================================================================================


@pytest.fixture
def stored():
    """8 random RGB images of 37x37 (the stored size for 32x32 crops)."""
    return np.random.default_rng(5).integers(0, 256, (8, 3, 37, 37), dtype=np.uint8)


def test_load_size_follows_the_paper():
    assert load_size(224, "paper") == 256 and load_size(32, "flip-crop") == 37 and load_size(32, "none") == 32


@pytest.mark.parametrize("mode", ["none", "flip-crop"])
def test_crops_are_crops_of_the_image(stored, mode):
    out = Augment(32, mode, seed=1)(stored, np.arange(8), epoch=0)
    assert out.shape == (8, 3, 32, 32) and out.dtype == np.float32
    flips = 0
    for n in range(8):
        windows = [(t, l, f) for t in range(6) for l in range(6) for f in (False, True)
                   if np.array_equal(out[n], (stored[n, :, t:t + 32, l:l + 32][..., ::-1] if f else
                                              stored[n, :, t:t + 32, l:l + 32]))]
        assert len(windows) == 1, windows
        flips += windows[0][2]
        if mode == "none":
            assert windows[0] == (2, 2, False)                                          # the centre, unflipped
    if mode == "flip-crop":
        assert 0 < flips < 8


def test_augmentation_depends_on_seed_epoch_and_sample_only(stored):
    aug = Augment(32, "flip-crop", seed=3)
    whole = aug(stored, np.arange(8), epoch=2)
    again = aug(stored, np.array([6, 1, 3]), epoch=2)                 # other batches, other order: same samples
    np.testing.assert_array_equal(again, whole[[6, 1, 3]])
    assert not np.array_equal(aug(stored, np.arange(8), epoch=3), whole)
    assert not np.array_equal(Augment(32, "flip-crop", seed=4)(stored, np.arange(8), epoch=2), whole)
    u = sample_uniforms(3, 2, np.arange(100000), 3)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01 and abs(np.corrcoef(u.T)[0, 1]) < 0.02


def test_loader_with_augmentation_resumes_exactly(stored):
    labels = np.arange(8)
    loader = DataLoader(stored, labels, 3, mean=[0.5] * 3, std=[0.25] * 3, shuffle=True, seed=7,
                        transform=Augment(32, "flip-crop", seed=7))
    full = list(loader.epoch(4))
    tail = list(loader.epoch(4, start=1))                               # resumed at batch 1, in the thread
    assert len(tail) == len(full) - 1
    for (x, y), (x2, y2) in zip(full[1:], tail):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    x, y = full[0]
    ref = (Augment(32, "flip-crop", seed=7)(stored, y, 4) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-5)


def test_pca_colour_finds_the_colour_covariance():
    rng = np.random.default_rng(0)
    V = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    lam = np.array([0.02, 0.005, 0.001])                                 # variances in the [0, 1] scale
    pixels = 0.5 + (rng.standard_normal((200 * 16 * 16, 3)) * np.sqrt(lam)) @ V.T
    images = np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8).reshape(200, 16, 16, 3).transpose(0, 3, 1, 2)
    eigval, eigvec = pca_colour(images)
    np.testing.assert_allclose(eigval, lam, rtol=0.05, atol=2e-5)
    assert abs(abs(eigvec[:, 0] @ V[:, 0]) - 1) < 1e-3                   # the main direction


def test_pca_jitter_statistics(stored):
    """shift = eigvec @ (alpha * eigval), alpha ~ N(0, sigma^2): covariance sum sigma^2 lambda_i^2 p_i p_i^T,
    the same shift on every pixel of an image, and different images get different shifts."""
    eigval, eigvec = np.array([0.2, 0.02, 0.004]), np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    aug = Augment(32, "paper", pca=(eigval, eigvec), sigma=0.1, seed=0)
    _, _, _, alpha = aug.params(np.arange(40000), epoch=0, L=37)
    shift = aug.colour_shift(alpha)                                                     # (N, 3), [0, 1] scale
    expected = eigvec @ np.diag(0.1 ** 2 * eigval ** 2) @ eigvec.T
    np.testing.assert_allclose(shift.mean(axis=0), 0, atol=4 * 0.1 * 0.2 / np.sqrt(40000))
    np.testing.assert_allclose(np.cov(shift.T), expected, rtol=0.05, atol=1e-7)
    np.testing.assert_allclose(np.cov(alpha.T), 0.01 * np.eye(3), atol=4e-4)             # alpha_i: independent
    # on the images: crop + flip of flip-crop, plus one colour per image
    with_jitter = aug(stored, np.arange(8), epoch=0)
    without = Augment(32, "flip-crop", seed=0)(stored, np.arange(8), epoch=0)
    delta = with_jitter - without                                                        # (8, 3, 32, 32)
    np.testing.assert_allclose(delta, delta[:, :, :1, :1] + np.zeros_like(delta), atol=1e-3)
    np.testing.assert_allclose(delta[:, :, 0, 0], 255 * aug.colour_shift(aug.params(np.arange(8), 0, 37)[3]),
                               rtol=1e-4, atol=1e-3)


def test_ten_crops(stored):
    crops = EvalCrops(32, ten_crop=True)(stored, np.array([3, 5]))
    assert crops.shape == (2, 10, 3, 32, 32)
    for k, (t, l) in enumerate(ten_crop_offsets(37, 32)):
        np.testing.assert_array_equal(crops[:, k], stored[[3, 5], :, t:t + 32, l:l + 32])
        np.testing.assert_array_equal(crops[:, k + 5], stored[[3, 5], :, t:t + 32, l:l + 32][..., ::-1])
    assert ten_crop_offsets(37, 32) == [(2, 2), (0, 0), (0, 5), (5, 0), (5, 5)]
    centre = EvalCrops(32)(stored, np.arange(8))
    np.testing.assert_array_equal(centre, stored[:, :, 2:34, 2:34])


def test_channels_are_repeated_or_converted(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (2, 1, 5, 5), dtype=np.uint8)
    rgb = match_channels(grey, 3)
    assert rgb.shape == (2, 3, 5, 5) and all(np.array_equal(rgb[:, c], grey[:, 0]) for c in range(3))
    colour = np.random.default_rng(1).integers(0, 256, (1, 3, 6, 6), dtype=np.uint8)
    luma = match_channels(colour, 1)
    pillow = np.asarray(Image.fromarray(colour[0].transpose(1, 2, 0)).convert("L"))
    assert luma.shape == (1, 1, 6, 6) and np.abs(luma[0, 0].astype(int) - pillow).max() <= 1


# =============================================================================================
# Bad input through the training CLI: one line, exit code 2
# =============================================================================================


def _bad_case(case, tmp_path, monkeypatch):
    """(argv, needle) for ``case``, after writing its files."""
    fold = tmp_path / "fold"
    if case == "missing data folder":
        return ["--dataset", "folder", "--data-dir", tmp_path / "nowhere"], "does not exist"
    if case == "no --data-dir for a folder":
        return ["--dataset", "folder"], "--data-dir"
    if case == "empty data folder":
        fold.mkdir()
        return ["--dataset", "folder", "--data-dir", fold], "is empty"
    if case == "mnist files missing":
        (tmp_path / "m").mkdir()
        return ["--dataset", "mnist", "--data-dir", tmp_path / "m"], "--download"
    if case == "truncated IDX file":
        write_mnist(tmp_path / "m")
        f = tmp_path / "m" / "train-images-idx3-ubyte.gz"
        f.write_bytes(f.read_bytes()[:-200])
        return ["--dataset", "mnist", "--data-dir", tmp_path / "m"], "truncated"
    if case == "corrupt CIFAR file":
        write_cifar_bin(tmp_path / "c")
        f = tmp_path / "c" / "cifar-10-batches-bin" / "test_batch.bin"
        f.write_bytes(f.read_bytes()[:5000])
        return ["--dataset", "cifar10", "--data-dir", tmp_path / "c"], "test_batch.bin"
    if case == "checksum mismatch":
        write_cifar_python_tgz(tmp_path / "p")
        return ["--dataset", "cifar10", "--data-dir", tmp_path / "p"], "checksum mismatch"
    if case == "checksum mismatch on --download":
        write_mnist(tmp_path / "m")
        return ["--dataset", "mnist", "--data-dir", tmp_path / "m", "--download"], "checksum mismatch"
    if case == "no network":
        source = download.SOURCES["mnist"]
        monkeypatch.setitem(download.SOURCES, "mnist", download.Source("http://127.0.0.1:9/", source.files, ""))
        return ["--dataset", "mnist", "--data-dir", tmp_path / "m", "--download"], "no network"
    if case == "one class":
        make_folder(fold, classes=("red_circle",))
        return ["--dataset", "folder", "--data-dir", fold], "one class"
    if case == "unreadable image":
        make_folder(fold)
        (fold / "val" / "green_square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        return ["--dataset", "folder", "--data-dir", fold], "broken.png"
    if case == "truncated image":
        make_folder(fold)
        good = fold / "train" / "red_circle" / "001.png"
        good.write_bytes(good.read_bytes()[:-60])
        return ["--dataset", "folder", "--data-dir", fold], "001.png"
    if case == "classes differ":
        make_folder(fold)
        os.rename(fold / "val" / "red_circle", fold / "val" / "red_disc")
        return ["--dataset", "folder", "--data-dir", fold], "red_disc"
    if case == "class without images":
        make_folder(fold)
        for f in (fold / "val" / "red_circle").iterdir():
            f.unlink()
        return ["--dataset", "folder", "--data-dir", fold], "holds no images"
    if case == "nothing to download for a folder":
        make_folder(fold)
        return ["--dataset", "folder", "--data-dir", fold, "--download"], "nothing to download"
    raise KeyError(case)


BAD = ["missing data folder", "no --data-dir for a folder", "empty data folder", "mnist files missing",
       "truncated IDX file", "corrupt CIFAR file", "checksum mismatch", "checksum mismatch on --download",
       "no network", "one class", "unreadable image", "truncated image", "classes differ", "class without images",
       "nothing to download for a folder"]


@pytest.mark.parametrize("case", BAD)
def test_bad_data_one_line_exit_2(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "TIMEOUT", 2.0)
    argv, needle = _bad_case(case, tmp_path, monkeypatch)
    out = tmp_path / "run"
    code = train.main([str(a) for a in argv] + ["--backend", "numpy", "--quiet", "--epochs", "1", "--out", str(out)])
    stdout, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err + stdout
    assert not (out / "checkpoint.npz").exists()
