"""Training on real files, then ``python -m minialex.evaluate`` and ``python -m minialex.predict``.

One small run trains the ``small`` AlexNet on a folder of PNG and JPEG images written here (three
classes of coloured shapes): it must reach a sensible accuracy, and its checkpoint is then
evaluated (top-1, top-5, confusion PNG; centre crop and ten crops) and used to predict.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minialex
from minialex import backend as B
from minialex import evaluate, predict, train
from minialex.checkpoint import read_checkpoint
from minialex.evaluate import model_logits, softmax
from minialex.models import alexnet

from test_data import draw, make_folder, write_cifar_bin, write_mnist

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _backend():
    try:
        B.get("numba")
        return "numba"
    except Exception:  # noqa: BLE001
        return "numpy"


BACKEND = _backend()


@pytest.fixture(scope="module")
def one_thread():
    """The runs here are tiny: one thread avoids oversubscribing busy CI cores (parallel Numba
    kernels and BLAS fighting over two cores are several times slower than one thread)."""
    limits = None
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except ImportError:
        pass
    numba_threads = None
    if BACKEND == "numba":
        import numba

        numba_threads = numba.get_num_threads()
        numba.set_num_threads(1)
    yield
    if numba_threads is not None:
        numba.set_num_threads(numba_threads)
    if limits is not None:
        limits.restore_original_limits()


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    monkeypatch.setattr(train.Run, "write_plots", lambda self: None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """The small AlexNet trained on 120 images (3 classes, PNG and JPEG, 28-48 pixels, resized to
    37 and cropped to 32), with random crops and flips; validated on 45 others."""
    root = tmp_path_factory.mktemp("real")
    make_folder(root / "shapes", n_train=40, n_val=15)
    out = root / "run"
    code = train.main(["--dataset", "folder", "--data-dir", str(root / "shapes"), "--augment", "flip-crop",
                       "--optimizer", "adam", "--lr", "0.001", "--schedule", "constant", "--batch-size", "16",
                       "--epochs", "3", "--backend", BACKEND, "--quiet", "--out", str(out)])
    assert code == 0
    return root, out


def run(main, args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_small_folder_trains_to_a_sensible_accuracy(trained):
    _, out = trained
    ckpt = read_checkpoint(out / "checkpoint.npz")
    last = ckpt.meta["metrics"][-1]
    print(f"validation accuracy on the small image folder: {100 * last['val_acc']:.1f}%")
    assert last["val_acc"] >= 0.8, ckpt.meta["metrics"]
    config = ckpt.config
    assert config["classes"] == ["blue_triangle", "green_square", "red_circle"]
    assert (config["image_size"], config["load_size"], config["in_channels"]) == (32, 37, 3)
    assert config["data_dir"] == os.path.abspath(trained[0] / "shapes")


def test_evaluate_prints_top1_top5_and_writes_the_confusion_matrix(trained, capsys, one_thread):
    _, out = trained
    code, stdout, err = run(evaluate.main, [out / "checkpoint.npz", "--backend", BACKEND], capsys)
    assert code == 0, err
    last = read_checkpoint(out / "checkpoint.npz").meta["metrics"][-1]
    # the same images, crops and normalisation as the training run's validation
    assert f"top-1 {100 * last['val_acc']:.2f}%" in stdout
    assert f"top-5 {100 * last['val_top5']:.2f}%" in stdout and "45 images" in stdout
    png = out / "confusion-folder-val.png"
    assert f"confusion matrix: {png}" in stdout
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 100
    code, stdout, err = run(evaluate.main, [out, "--ten-crop", "--split", "train", "--limit", "12",
                                            "--confusion", out / "c.png", "--backend", BACKEND], capsys)
    assert code == 0, err
    assert "folder train: 12 images, ten crops: top-1" in stdout and (out / "c.png").exists()
    top1 = float(stdout.split("top-1 ")[1].split("%")[0])
    assert top1 >= 70


def test_ten_crop_scores_average_the_softmax():
    minialex.manual_seed(0)
    model = alexnet("small", num_classes=4)
    model.eval()
    x = np.random.default_rng(0).standard_normal((3, 10, 3, 32, 32)).astype(np.float32)
    with minialex.no_grad():
        got = model_logits(model, x, chunk=15).numpy()                       # 10 crops per forward pass
        single = np.stack([model(minialex.tensor(x[:, k])).numpy() for k in range(10)], axis=1)   # (3, 10, 4)
    expected = np.log(softmax(single).mean(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(softmax(got), softmax(single).mean(axis=1), rtol=1e-5)


def test_predict_prints_the_top_classes(trained, capsys, one_thread):
    root, out = trained
    rng = np.random.default_rng(42)
    paths = []
    for name in ("red_circle", "green_square"):
        path = root / f"new_{name}.png"
        draw(name, 40, rng).save(path)
        paths.append(path)
    code, stdout, err = run(predict.main, [out / "checkpoint.npz", *paths, "--backend", BACKEND], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert len(lines) == 2 * 4                                                # 3 classes each (fewer than 5)
    assert lines[0] == str(paths[0]) and lines[4] == str(paths[1])
    assert lines[1].split()[:2] == ["1.", "red_circle"] and lines[5].split()[:2] == ["1.", "green_square"]
    probs = [float(line.split()[-1].rstrip("%")) for line in lines[1:4]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 100) < 0.05
    code, stdout, _ = run(predict.main, [out, paths[0], "--top", "1", "--ten-crop", "--backend", BACKEND], capsys)
    assert code == 0 and len(stdout.splitlines()) == 2 and "red_circle" in stdout


def test_checkpoint_without_class_names_shows_numbers(trained, tmp_path, capsys, one_thread):
    _, out = trained
    with np.load(out / "checkpoint.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["config"]["classes"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    image = tmp_path / "x.png"
    draw("blue_triangle", 32, np.random.default_rng(1)).save(image)
    code, stdout, err = run(predict.main, [tmp_path / "old.npz", image, "--backend", BACKEND], capsys)
    assert code == 0 and "no class names" in err
    assert {line.split()[1] for line in stdout.splitlines()[1:]} == {"0", "1", "2"}


@pytest.mark.parametrize("case", ["missing checkpoint", "missing image", "unreadable image", "other classes",
                                  "corrupt checkpoint"])
def test_bad_input_one_line_exit_2(case, trained, tmp_path, capsys):
    root, out = trained
    ckpt = out / "checkpoint.npz"
    if case == "missing checkpoint":
        main, args, needle = evaluate.main, [tmp_path / "nowhere.npz"], "nowhere.npz"
    elif case == "corrupt checkpoint":
        (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
        main, args, needle = predict.main, [tmp_path / "bad.npz", tmp_path / "x.png"], "corrupt"
    elif case == "missing image":
        main, args, needle = predict.main, [ckpt, tmp_path / "nope.jpg"], "nope.jpg"
    elif case == "unreadable image":
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
        main, args, needle = predict.main, [ckpt, tmp_path / "broken.jpg"], "broken.jpg"
    else:
        make_folder(tmp_path / "other", n_train=1, n_val=1, classes=("cats", "dogs", "mice"))
        main, args, needle = evaluate.main, [ckpt, "--data-dir", tmp_path / "other"], "cats, dogs, mice"
    code, stdout, err = run(main, [*args, "--backend", "numpy"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0] and "Traceback" not in err + stdout


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_train_on_idx_and_cifar_files(name, tmp_path, capsys, one_thread):
    if name == "mnist":
        write_mnist(tmp_path / "d", n_train=16, n_val=8)
    else:
        write_cifar_bin(tmp_path / "d", per_batch=4, as_tgz=True)
    code, stdout, err = run(train.main, ["--dataset", name, "--data-dir", tmp_path / "d", "--limit", "16",
                                         "--batch-size", "8", "--epochs", "1", "--image-size", "16", "--backend",
                                         BACKEND, "--quiet", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert ("grey channel is repeated" in stdout) == (name == "mnist")
    config = read_checkpoint(tmp_path / "run" / "checkpoint.npz").config
    assert config["in_channels"] == 3 and len(config["classes"]) == 10
    assert config["val_size"] == (8 if name == "mnist" else 4)
    code, stdout, err = run(evaluate.main, [tmp_path / "run", "--backend", BACKEND], capsys)
    assert code == 0 and "top-5" in stdout, err


def test_resume_with_paper_augmentation_is_exact(tmp_path, capsys, one_thread):
    """Crops, flips and the colour jitter are seeded per sample: 1 epoch + 1 resumed epoch gives the
    weights of 2 epochs in one go, bit for bit."""
    make_folder(tmp_path / "f", n_train=6, n_val=2)
    common = ["--dataset", "folder", "--data-dir", tmp_path / "f", "--augment", "paper", "--ten-crop",
              "--image-size", "16", "--batch-size", "8", "--schedule", "plateau", "--backend", BACKEND, "--quiet"]
    assert run(train.main, common + ["--epochs", "2", "--out", tmp_path / "a"], capsys)[0] == 0
    assert run(train.main, common + ["--epochs", "1", "--out", tmp_path / "b"], capsys)[0] == 0
    code, _, err = run(train.main, ["--resume", tmp_path / "b" / "checkpoint.npz", "--epochs", "2", "--backend",
                                    BACKEND, "--quiet"], capsys)
    assert code == 0, err
    a, b = read_checkpoint(tmp_path / "a" / "checkpoint.npz"), read_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert a.config["load_size"] == 18 and len(a.config["pca_eigval"]) == 3 and a.config["ten_crop"]
    for key in a.model:
        np.testing.assert_array_equal(a.model[key], b.model[key], err_msg=key)
    assert a.meta["metrics"][-1]["val_loss"] == b.meta["metrics"][-1]["val_loss"]
