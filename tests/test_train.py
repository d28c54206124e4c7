"""``python -m minialex.train``: outputs, exact resume, Ctrl-C and kill safety, the nan stop, bad input.

Every run here is tiny (16 images of 16x16, batches of 8) so the file takes seconds of compute:
``main()`` is called in the test process where it can be, and as a subprocess where the exit code,
a signal or a kill is what is tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minialex import backend as B
from minialex import optim
from minialex import train
from minialex.checkpoint import read_checkpoint

# tiny runs, independent of the default run's settings (the Ctrl-C tests hook SGD.step)
TINY = ["--limit", "16", "--image-size", "16", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.02", "--quiet"]
# the resume tests: "plateau" keeps state (best error, bad epochs) and does not depend on --epochs,
# so 1 epoch + 1 resumed epoch follows the same learning rates as 2 epochs in one go
REF = TINY + ["--schedule", "plateau"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _available(name):
    try:
        B.get(name)
        return True
    except Exception:  # noqa: BLE001
        return False


CPU_BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(not _available(name), reason=f"{name} not available"))
                for name in ("numpy", "numba")]


@pytest.fixture(autouse=True)
def no_plots(monkeypatch, request):
    """Drawing the PNGs costs seconds; only the test that checks them draws them."""
    if "plots" not in request.node.name:
        monkeypatch.setattr(train.Run, "write_plots", lambda self: None)


def run_main(args, capsys):
    code = train.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def weights(path):
    ckpt = read_checkpoint(path)
    return ckpt, {**{"model." + k: v for k, v in ckpt.model.items()}, **{"optim." + k: v for k, v in ckpt.optim.items()}}


def assert_same_state(path_a, path_b):
    (ca, a), (cb, b) = weights(path_a), weights(path_b)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{key} differs"
    assert ca.meta["rng"] == cb.meta["rng"]
    assert (ca.meta["epoch"], ca.meta["step"]) == (cb.meta["epoch"], cb.meta["step"])
    # the metrics (losses, accuracies) are the same numbers too, apart from the timings
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "epoch_time_s")} for r in rows]  # noqa: E731
    assert strip(ca.meta["metrics"]) == strip(cb.meta["metrics"])


def snapshot(folder):
    """name -> sha256 of every file in ``folder``: to check that nothing was overwritten."""
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One 2-epoch run per backend, computed once: the reference for the resume tests."""
    cache = {}

    def get(backend_name):
        if backend_name not in cache:
            out = tmp_path_factory.mktemp(f"full-{backend_name}")
            assert train.main(REF + ["--backend", backend_name, "--epochs", "2", "--out", str(out / "run")]) == 0
            cache[backend_name] = out / "run"
        return cache[backend_name]

    return get


# ---------------------------------------------------------------------------------------------
# Options and outputs
# ---------------------------------------------------------------------------------------------


def test_help_names_every_option():
    text = train.build_parser().format_help()
    for option in ("--backend", "--model", "--dataset", "--epochs", "--batch-size", "--lr", "--momentum",
                   "--weight-decay", "--optimizer", "--schedule", "--image-size", "--seed", "--out", "--resume",
                   "--eval-every", "--dtype", "--limit", "--quiet"):
        assert option in text
    for choice in ("numpy", "numba", "cupy", "sgd", "adam", "constant", "step", "plateau", "cosine"):
        assert choice in text


def test_short_run_writes_outputs_and_plots(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_main(TINY + ["--backend", "numpy", "--epochs", "1", "--out", out], capsys)
    assert code == 0, err
    assert {"config.json", "metrics.csv", "curves.png", "filters.png", "checkpoint.npz"} <= set(os.listdir(out))
    assert not [name for name in os.listdir(out) if "tmp" in name]
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "small" and config["image_size"] == 16 and config["limit"] == 16
    assert len(config["mean"]) == 3 and len(config["std"]) == 3
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:9] == ["epoch", "step", "loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr",
                                      "images_per_s"]
    assert len(lines) == 2 and lines[1].startswith("1,2,")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stdout.strip().splitlines()[-1].startswith("done: 1 epochs")
    ckpt = read_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["epoch"] == 1 and ckpt.meta["batch"] == 0 and ckpt.config["model"] == "small"


def test_the_default_run_in_short(tmp_path, capsys):
    """The README's main command (every default: small model, shapes at 32x32, numba unless
    $MINIALEX_BACKEND says otherwise), cut to 64 images and one epoch, so CI catches any break."""
    code, stdout, err = run_main(["--limit", "64", "--epochs", "1", "--quiet", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {k: config[k] for k in ("model", "dataset", "image_size")} == {"model": "small", "dataset": "shapes",
                                                                           "image_size": 32}
    assert "validation accuracy" in stdout


@pytest.mark.parametrize("optimizer,schedule", [("adam", "step"), ("paper-sgd", "plateau")])
def test_other_optimizers_and_schedules_run(tmp_path, capsys, optimizer, schedule):
    code, _, err = run_main(["--limit", "8", "--image-size", "16", "--batch-size", "8", "--quiet", "--backend",
                             "numpy", "--epochs", "1", "--optimizer", optimizer, "--schedule", schedule, "--lr",
                             "0.001", "--dtype", "float64", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert ckpt.model["features.0.weight"].dtype == np.float64


# ---------------------------------------------------------------------------------------------
# Exact resume
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_resume_at_epoch_boundary_equals_uninterrupted(tmp_path, capsys, backend_name, uninterrupted):
    # 1 epoch, then --resume with --epochs 2, against 2 epochs in one go
    out = tmp_path / "run"
    code, _, err = run_main(REF + ["--backend", backend_name, "--epochs", "1", "--out", out], capsys)
    assert code == 0, err
    ckpt = read_checkpoint(out / "checkpoint.npz")
    assert (ckpt.meta["epoch"], ckpt.meta["batch"], ckpt.meta["step"]) == (1, 0, 2)
    code, _, err = run_main(["--resume", out / "checkpoint.npz", "--epochs", "2", "--backend", backend_name,
                             "--quiet"], capsys)
    assert code == 0, err
    assert_same_state(out / "checkpoint.npz", uninterrupted(backend_name) / "checkpoint.npz")


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_ctrl_c_mid_epoch_then_resume_equals_uninterrupted(tmp_path, capsys, backend_name, uninterrupted):
    out = tmp_path / "run"
    calls = {"n": 0}
    original = optim.SGD.step

    def step(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 3:                                   # first batch of epoch 2
            signal.raise_signal(signal.SIGINT)

    optim.SGD.step = step
    try:
        code, stdout, err = run_main(REF + ["--backend", backend_name, "--epochs", "2", "--out", out], capsys)
    finally:
        optim.SGD.step = original
    assert code == 130
    assert "Traceback" not in err and "--resume" in stdout
    ckpt = read_checkpoint(out / "checkpoint.npz")
    assert (ckpt.meta["epoch"], ckpt.meta["batch"], ckpt.meta["step"]) == (1, 1, 3)
    code, _, err = run_main(["--resume", out / "checkpoint.npz", "--quiet", "--backend", backend_name], capsys)
    assert code == 0, err
    assert_same_state(out / "checkpoint.npz", uninterrupted(backend_name) / "checkpoint.npz")


def test_resume_can_train_longer_and_elsewhere(tmp_path, capsys, uninterrupted):
    first = uninterrupted("numpy")
    before = snapshot(first)
    code, stdout, err = run_main(["--resume", first / "checkpoint.npz", "--epochs", "3", "--backend", "numpy",
                                  "--out", tmp_path / "more"], capsys)
    assert code == 0, err
    assert snapshot(first) == before                          # the original run is left alone
    assert read_checkpoint(tmp_path / "more" / "checkpoint.npz").meta["epoch"] == 3
    assert len((tmp_path / "more" / "metrics.csv").read_text().splitlines()) == 4
    # a finished run says how to go on
    code, _, err = run_main(["--resume", first / "checkpoint.npz", "--backend", "numpy"], capsys)
    assert code == 2 and "--epochs" in err


# ---------------------------------------------------------------------------------------------
# Ctrl-C and kill -9 on a real process
# ---------------------------------------------------------------------------------------------


def _start(args, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MINIALEX_BACKEND": "numpy"}
    return subprocess.Popen([sys.executable, "-m", "minialex.train", *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc, predicate, timeout=60):
    """Read stdout until a line satisfies ``predicate``; returns the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if predicate(line):
            return lines
    proc.kill()
    raise AssertionError(f"the training process never printed the expected line; got {lines!r}, "
                         f"stderr {proc.stderr.read()!r}")


def test_ctrl_c_on_a_real_process_saves_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--limit", "16", "--image-size", "16", "--batch-size", "8", "--epochs", "1000", "--out", out]
    proc = _start(args, tmp_path)
    _wait_for_line(proc, lambda line: line.startswith("epoch 1/1000 ["))     # the first progress line
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "checkpoint saved" in stdout and "--resume" in stdout
    ckpt = read_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["step"] >= 1
    done = ckpt.meta["epoch"]
    code, _, err = run_main(["--resume", out / "checkpoint.npz", "--epochs", done + 1, "--quiet", "--backend",
                             "numpy"], capsys)
    assert code == 0, err
    assert read_checkpoint(out / "checkpoint.npz").meta["epoch"] == done + 1


def test_kill_9_keeps_the_last_epoch_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = ["--quiet", "--limit", "16", "--image-size", "16", "--batch-size", "8", "--epochs", "1000", "--out", out]
    proc = _start(args, tmp_path)
    _wait_for_line(proc, lambda line: line.startswith("epoch 2/1000"))      # two epochs saved
    time.sleep(0.3)                                                          # somewhere in epoch 3, maybe in a save
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    ckpt = read_checkpoint(out / "checkpoint.npz")                         # intact and loadable
    assert ckpt.meta["epoch"] >= 2 and ckpt.meta["batch"] == 0
    assert len(ckpt.meta["metrics"]) == ckpt.meta["epoch"]
    # a temporary file may be left behind by the kill, but never under the checkpoint's name
    assert all(name == "checkpoint.npz" or not name.endswith("checkpoint.npz") for name in os.listdir(out))


# ---------------------------------------------------------------------------------------------
# A loss that blows up
# ---------------------------------------------------------------------------------------------


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from minialex.tensor import is_grad_enabled

    calls = {"n": 0}
    real = train.compute_loss

    def loss(logits, labels):
        value = real(logits, labels)
        if is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 3:                               # step 3: the first batch of epoch 2
                value = value * float("nan")
        return value

    monkeypatch.setattr(train, "compute_loss", loss)
    out = tmp_path / "run"
    code, _, err = run_main(TINY + ["--backend", "numpy", "--epochs", "3", "--out", out], capsys)
    assert code == 1
    line = err.strip()
    assert "\n" not in line and line.startswith("error: ") and "Traceback" not in err
    assert "step 3" in line and "--lr" in line and "nan" in line
    ckpt = read_checkpoint(out / "checkpoint.npz")
    assert (ckpt.meta["epoch"], ckpt.meta["batch"], ckpt.meta["step"]) == (1, 0, 2)
    assert all(np.isfinite(v).all() for v in ckpt.model.values())


def test_huge_learning_rate_is_caught(tmp_path, capsys):
    code, _, err = run_main(TINY + ["--backend", "numpy", "--epochs", "5", "--lr", "1e12", "--out",
                                    tmp_path / "run"], capsys)
    assert code == 1 and "learning rate" in err and "step" in err
    assert all(np.isfinite(v).all() for v in read_checkpoint(tmp_path / "run" / "checkpoint.npz").model.values())


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, nothing overwritten
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "garbage.npz").write_bytes(b"this is not a zip file" * 10)
    (folder / "weights.npz").write_bytes(b"")
    np.savez(folder / "weights_only.npz", **{"features.0.weight": np.zeros((48, 3, 5, 5), np.float32)})
    (folder / "a_file").write_text("not a folder")
    return folder


def _bad_inputs(run_dir, bad):
    ckpt = run_dir / "checkpoint.npz"
    truncated = bad / "truncated.npz"
    if not truncated.exists():
        truncated.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    return {
        "unknown variant": (["--model", "alexnet9000"], "alexnet9000"),
        "unknown dataset": (["--dataset", "imagenet-on-a-floppy"], "imagenet-on-a-floppy"),
        "image too small for the model": (["--image-size", "12"], "12"),
        "image too small for another variant": (["--model", "half", "--image-size", "32"], "32"),
        "missing checkpoint": (["--resume", bad / "nowhere.npz"], "nowhere.npz"),
        "corrupt checkpoint": (["--resume", bad / "garbage.npz"], "corrupt"),
        "empty checkpoint": (["--resume", bad / "weights.npz"], "corrupt"),
        "truncated checkpoint": (["--resume", truncated], "truncated.npz"),
        "weights, not a checkpoint": (["--resume", bad / "weights_only.npz"], "weights_only.npz"),
        "checkpoint of another variant": (["--resume", ckpt, "--model", "paper"], "small"),
        "changed setting on resume": (["--resume", ckpt, "--lr", "0.5", "--epochs", "5"], "--lr"),
        "unwritable output folder": (["--out", bad / "a_file" / "run"], "a_file"),
        "existing run as output": (["--out", run_dir], "--resume"),
        "negative limit": (["--limit", "-3"], "--limit"),
    }


CASES = ["unknown variant", "unknown dataset", "image too small for the model", "image too small for another variant",
         "missing checkpoint", "corrupt checkpoint", "empty checkpoint", "truncated checkpoint",
         "weights, not a checkpoint", "checkpoint of another variant", "changed setting on resume",
         "unwritable output folder", "existing run as output", "negative limit"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_exit_2_nothing_overwritten(case, capsys, uninterrupted, corrupt_files):
    run_dir = uninterrupted("numpy")
    args, needle = _bad_inputs(run_dir, corrupt_files)[case]
    before = snapshot(run_dir)
    code, stdout, err = run_main(args + ["--backend", "numpy", "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err + stdout
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("args,needle", [
    (["--model", "nope"], "nope"),
    (["--backend", "cupy"], "pip install"),
    (["--optimizer", "rmsprop"], "invalid choice"),
])
def test_exit_code_2_from_the_command_line(tmp_path, args, needle):
    if args == ["--backend", "cupy"] and _available("cupy"):
        try:
            if B.get("cupy").kernels.gpu_available():
                pytest.skip("a GPU is present: --backend cupy is valid here")
        except Exception:  # noqa: BLE001
            pass
    result = subprocess.run([sys.executable, "-m", "minialex.train", *args, "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    if args[0] != "--optimizer":                               # argparse prints its usage first
        assert len(result.stderr.strip().splitlines()) == 1
    if args[0] == "--backend":
        assert "GPU" in result.stderr
    assert not (tmp_path / "run").exists()
