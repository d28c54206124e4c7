"""``python -m minialex.train``: train an AlexNet on a data set and keep everything the run produces.

With no arguments it trains the ``small`` AlexNet on the built-in ``shapes`` data set (generated on
the spot, no download) on the CPU, and writes to ``runs/<date>-<time>/``:

    config.json       every setting of the run (what to pass to reproduce it)
    metrics.csv       one row per epoch: loss, training and validation accuracy, top-5, lr, images/s
    curves.png        loss and accuracy against the epoch      (drawn at the end, or when stopped)
    filters.png       the first convolution's kernels, as the paper's Figure 3
    checkpoint.npz    model, optimizer, schedule, random-generator states: --resume continues from it

How the loop keeps its promises:

* **Reproducible.** ``--seed`` fixes everything random: the initial weights and the dropout masks
  (``minialex.random``), and the order of the batches (``minialex.data.loader``: epoch e's order
  is drawn from (seed, e)). The images are the same whatever the seed.
* **Exact resume.** The checkpoint holds the weights, the optimizer's buffers, the schedule, the
  random generator's state and where the run stands (epoch, and batch within the epoch). A resumed
  run sees the same batches and draws the same dropout masks as an uninterrupted one, so on the
  numpy and numba backends it ends with bit-for-bit the same weights.
* **Nothing lost.** A checkpoint is written before the first step and after every epoch, each
  time to a temporary file renamed over ``checkpoint.npz`` (atomic): a killed process loses at
  most the epoch it was in. Ctrl-C (or SIGTERM) lets the current step finish, saves a checkpoint at
  that step, and exits with code 130; a second Ctrl-C quits at once (the last checkpoint stays).
* **Stops on a blow-up.** A loss that is not finite (nan, inf) stops the run at once, naming the
  step, with the last good checkpoint kept: usually the learning rate is too high.
* **Bad input, clear message.** A wrong option, data set, model, image size, a missing or corrupt
  checkpoint, an output folder that cannot be written: one line ``error: ...`` and exit code 2,
  before anything is written.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io as _io
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

import minialex
from minialex import backend as B
from minialex import optim
from minialex import random as mrandom
from minialex.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from minialex.data import DATASETS, DataError, open_dataset
from minialex.data.augment import AUGMENTS, Augment, EvalCrops, load_size, match_channels, pca_colour
from minialex.data.loader import DataLoader, channel_stats
from minialex.evaluate import model_logits
from minialex.nn import functional as F
from minialex.tensor import no_grad

__all__ = ["main", "build_parser", "DEFAULTS", "UsageError", "NonFiniteLoss"]

# The default run: small AlexNet, shapes data set, numba backend: 5 epochs of the 6000 training
# images, Adam (it leaves the plateau at ln 10 sooner than SGD here), cosine schedule. Measured in
# the README: under five minutes on two CPU cores, cold JIT compile included, above 95% validation
# accuracy. Every value can be changed on the command line.
DEFAULTS = {
    "model": "small",
    "dataset": "shapes",
    "epochs": 5,
    "batch_size": 32,
    "lr": 1e-3,
    "momentum": 0.9,          # SGD's (Adam uses its betas)
    "weight_decay": 5e-4,
    "optimizer": "adam",
    "schedule": "cosine",
    "image_size": None,       # the data set's size (32 for shapes)
    "seed": 0,
    "dtype": "float32",
    "limit": None,            # all the training images
    "eval_every": 1,
    "data_dir": None,         # the data set's own default folder (data/<name>)
    "augment": "none",
    "ten_crop": False,
}
# Options that define the run: a resumed run takes them from its checkpoint, and refuses a
# different value on the command line. The others (--epochs, --eval-every, --backend, --out,
# --quiet) may be changed when resuming.
RUN_DEFINING = ("model", "dataset", "batch_size", "lr", "momentum", "weight_decay", "optimizer", "schedule",
                "image_size", "seed", "dtype", "limit", "augment")
OPTIMIZERS = ("sgd", "adam", "paper-sgd")
SCHEDULES = ("constant", "step", "plateau", "cosine")
BACKENDS = ("numpy", "numba", "cupy")
DEFAULT_BACKEND = "numba"
EVAL_BATCH = 256
CUPY_HINT = ('the cupy backend needs an NVIDIA GPU and CuPy: on a machine with a GPU, pip install '
             '"minialex[cuda12]" (or "minialex[cuda13]" for CUDA 13); on a CPU use --backend numba')
CUPY_NO_GPU = ('the cupy backend needs an NVIDIA GPU: CuPy is installed but no GPU (or driver) was found; run on '
               'a machine with a GPU (where pip install "minialex[cuda12]" provides CuPy), or use --backend numba')


class UsageError(Exception):
    """Bad input: reported as one line ``error: ...`` with exit code 2."""


class NonFiniteLoss(Exception):
    """The loss became nan or inf."""


# =============================================================================================
# Command line
# =============================================================================================


def build_parser() -> argparse.ArgumentParser:
    from minialex.models import VARIANTS

    d = DEFAULTS
    parser = argparse.ArgumentParser(
        prog="python -m minialex.train",
        description="Train an AlexNet with minialex and save its metrics, plots and checkpoints.\n"
                    "With no options: the 'small' AlexNet on the built-in 'shapes' data set (generated,\n"
                    "no download), on the CPU, in a few minutes.",
        epilog="examples:\n"
               "  python -m minialex.train                          the default run\n"
               "  python -m minialex.train --limit 2000 --epochs 2  a quick classroom run\n"
               "  python -m minialex.train --optimizer sgd --lr 0.01 --schedule step\n"
               "  python -m minialex.train --resume runs/20250101-120000/checkpoint.npz --epochs 10\n"
               "outputs (in --out): config.json, metrics.csv, curves.png, filters.png, checkpoint.npz\n"
               "Ctrl-C stops after the current step and saves a checkpoint (resume it with --resume).\n"
               "exit codes: 0 done, 1 the loss became nan/inf, 2 bad input, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to train")
    what.add_argument("--model", metavar="VARIANT", help=f"AlexNet variant: {', '.join(VARIANTS)} "
                      f"(default: {d['model']}; 'small' is the one sized for 32x32 images)")
    what.add_argument("--dataset", metavar="NAME",
                      help=f"data set: {', '.join(DATASETS)} (default: {d['dataset']})")
    what.add_argument("--image-size", type=int, metavar="PIXELS",
                      help="side of the square images (default: the data set's own size, 32 for shapes)")
    what.add_argument("--limit", type=int, metavar="N",
                      help="use only N training images (and at most N validation images): for quick runs")
    what.add_argument("--data-dir", metavar="DIR",
                      help="where the data set's files are: mnist, fashion-mnist (IDX .gz files), cifar10 (the .tar.gz "
                           "or its folder); folder: DIR/train/<class>/*.png|jpg and DIR/val/<class>/... "
                           "(default: data/<dataset>, or $MINIALEX_DATA/<dataset>)")
    what.add_argument("--download", action="store_true",
                      help="fetch the data set's official files into --data-dir if they are missing, and check "
                           "their checksums (nothing is ever downloaded without it)")
    what.add_argument("--augment", choices=AUGMENTS,
                      help="none; flip-crop (random crops of images stored 256/224 larger, and horizontal flips); "
                           f"paper (flip-crop plus the paper's PCA colour jitter, sigma 0.1) (default: {d['augment']})")
    what.add_argument("--ten-crop", action="store_true", default=None,
                      help="validate on the average of 10 crops (corners, centre, and their mirrors) instead of the "
                           "centre crop, as the paper")
    how = parser.add_argument_group("how to train")
    how.add_argument("--epochs", type=int, help=f"passes over the training images (default: {d['epochs']})")
    how.add_argument("--batch-size", type=int, metavar="B", help=f"images per step (default: {d['batch_size']})")
    how.add_argument("--optimizer", choices=OPTIMIZERS,
                     help=f"sgd (PyTorch's momentum SGD), adam, or paper-sgd (the AlexNet paper's form of "
                          f"momentum; see minialex/optim.py) (default: {d['optimizer']})")
    how.add_argument("--lr", type=float, help=f"learning rate (default: {d['lr']}, for adam; try 0.01 with sgd)")
    how.add_argument("--momentum", type=float, help=f"momentum of sgd and paper-sgd (default: {d['momentum']})")
    how.add_argument("--weight-decay", type=float,
                     help=f"L2 penalty on the weights, as in the paper (default: {d['weight_decay']})")
    how.add_argument("--schedule", choices=SCHEDULES,
                     help="learning rate over the epochs: constant; step (divided by 10 after each third of "
                          "the epochs); plateau (divided by 10 when the validation error stops improving, the paper's "
                          f"rule); cosine (decays smoothly to 0) (default: {d['schedule']})")
    how.add_argument("--seed", type=int, help=f"seed of the initial weights, dropout and shuffling "
                                              f"(default: {d['seed']})")
    how.add_argument("--dtype", choices=("float32", "float64"), help=f"floating-point type (default: {d['dtype']})")
    run = parser.add_argument_group("where and how to run")
    run.add_argument("--backend", choices=BACKENDS,
                     help=f"numpy (the readable reference, slow), numba (compiled, CPU) or cupy (NVIDIA GPU) "
                          f"(default: $MINIALEX_BACKEND, else {DEFAULT_BACKEND})")
    run.add_argument("--out", metavar="DIR", help="folder for the outputs (default: runs/<date>-<time>/; "
                                                  "when resuming: the checkpoint's folder)")
    run.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint.npz "
                                                      "(its settings are reused; --epochs may be raised)")
    run.add_argument("--eval-every", type=int, metavar="E",
                     help=f"measure validation accuracy every E epochs, and after the last (default: "
                          f"{d['eval_every']})")
    run.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 done, 1 stopped by a nan/inf loss,
    2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        backend_name = _backend_name(args.backend)
        with B.backend_scope("numpy"):          # restored afterwards, even when main() is called twice
            _set_backend(backend_name)
            run = Run.prepare(args, backend_name)
            return run.train()
    except UsageError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing was saved", file=sys.stderr)
        return 130


def _backend_name(requested):
    name = requested or os.environ.get("MINIALEX_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise UsageError(f"$MINIALEX_BACKEND={name!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return name


def _set_backend(name):
    try:
        be = B.set_backend(name)
    except B.BackendUnavailable as err:
        if name == "cupy":
            raise UsageError(CUPY_NO_GPU if "cannot run here" in str(err) else CUPY_HINT) from err
        raise UsageError(f"{err}") from err
    if name == "cupy" and not getattr(be.kernels, "gpu_available", lambda: True)():
        raise UsageError(CUPY_NO_GPU)
    return be


# =============================================================================================
# Setting up a run: every check happens here, before anything is written
# =============================================================================================


def _config_from_args(args) -> dict:
    config = {key: getattr(args, key) if getattr(args, key) is not None else DEFAULTS[key] for key in DEFAULTS}
    return config


def _check_config(config):
    from minialex.models import VARIANTS

    if config["model"] not in VARIANTS:
        raise UsageError(f"unknown model {config['model']!r}; choose --model from {', '.join(VARIANTS)}")
    if config["dataset"] not in DATASETS:
        raise UsageError(f"unknown data set {config['dataset']!r}; choose --dataset from {', '.join(DATASETS)}")
    for key, low in (("epochs", 1), ("batch_size", 1), ("eval_every", 1), ("limit", 1)):
        value = config[key]
        if value is not None and value < low:
            raise UsageError(f"--{key.replace('_', '-')} must be at least {low}, got {value}")
    for key in ("lr", "momentum", "weight_decay"):
        value = config[key]
        if not math.isfinite(value) or value < 0 or (key == "lr" and value == 0):
            raise UsageError(f"--{key.replace('_', '-')} must be a finite number {'> 0' if key == 'lr' else '>= 0'}, "
                             f"got {value}")


def _build_model(config):
    """The model, initialised from the seed; raises UsageError if the image size does not fit."""
    from minialex.models import VARIANTS, alexnet

    import inspect

    spec = VARIANTS[config["model"]]
    options = {}
    if "image_size" in inspect.signature(spec.builder).parameters:
        options["image_size"] = config["image_size"]
    minialex.manual_seed(config["seed"])
    try:
        model = alexnet(config["model"], num_classes=config["num_classes"], in_channels=config["in_channels"],
                        **options)
    except ValueError as err:
        raise UsageError(f"--image-size {config['image_size']} does not fit --model {config['model']}: {err}") from err
    if config["dtype"] == "float64":
        model.double()
    # one image through the model: a size that does not fit fails here, with the layer named
    C, S = config["in_channels"], config["image_size"]
    model.eval()
    try:
        with no_grad():
            model(minialex.tensor(np.zeros((1, C, S, S), dtype=config["dtype"])))
    except ValueError as err:
        raise UsageError(f"--image-size {S} does not fit --model {config['model']}: {err}") from err
    model.train()
    return model


def _make_optimizer(config, model):
    params = model.parameters()
    if config["optimizer"] == "sgd":
        return optim.SGD(params, lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
    if config["optimizer"] == "paper-sgd":
        return optim.PaperSGD(params, lr=config["lr"], momentum=config["momentum"],
                              weight_decay=config["weight_decay"])
    return optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])


def _make_schedule(config, optimizer):
    kind, epochs = config["schedule"], config["epochs"]
    if kind == "constant":
        return optim.ConstantLR(optimizer)
    if kind == "step":
        return optim.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if kind == "plateau":
        return optim.ReduceLROnPlateau(optimizer, factor=0.1, patience=1)
    return optim.CosineAnnealingLR(optimizer, T_max=epochs)


_OUTPUTS = ("checkpoint.npz", "config.json", "metrics.csv")


def _check_out_dir(out, resuming_here):
    """Create ``out`` if needed and check that it can be written; refuse to overwrite another run."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file, not a folder; choose another --out")
    if not resuming_here and os.path.isdir(out):
        found = [name for name in _OUTPUTS if os.path.exists(os.path.join(out, name))]
        if found:
            raise UsageError(f"--out {out} already holds a run ({found[0]}); continue it with --resume "
                             f"{os.path.join(out, 'checkpoint.npz')}, or choose another --out")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise UsageError(f"cannot write to the output folder {out} ({err.strerror or err}); choose another "
                         "--out, or fix its permissions") from err


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


METRIC_COLUMNS = ("epoch", "step", "loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "images_per_s",
                  "epoch_time_s")


class Run:
    """One training run: the model, the data, the optimizer and where the run stands."""

    @classmethod
    def prepare(cls, args, backend_name):
        self = cls()
        self.backend_name = backend_name
        self.quiet = args.quiet
        self.started = time.perf_counter()
        ckpt = None
        if args.resume:
            try:
                ckpt = read_checkpoint(args.resume)
            except CheckpointError as err:
                raise UsageError(f"--resume: {err}") from err
            config = dict(ckpt.config)
            for key in ("data_dir", "augment", "ten_crop"):          # checkpoints of older versions
                config.setdefault(key, DEFAULTS[key])
            if args.data_dir is not None:                            # the files may have moved
                config["data_dir"] = os.path.abspath(args.data_dir)
            if args.ten_crop is not None:
                config["ten_crop"] = args.ten_crop
            for key in RUN_DEFINING:
                given = getattr(args, key)
                if given is not None and given != config.get(key):
                    flag = "--" + key.replace("_", "-")
                    if key == "model":
                        raise UsageError(f"the checkpoint {ckpt.path} was saved from the '{config['model']}' model, "
                                         f"not '{given}'; drop --model to resume it, or start a new run without --resume")
                    raise UsageError(f"{flag} {given} differs from the checkpoint's {config.get(key)}; a resumed run "
                                     f"keeps its settings: drop {flag}, or start a new run without --resume")
            if args.epochs is not None:
                config["epochs"] = args.epochs
            if args.eval_every is not None:
                config["eval_every"] = args.eval_every
            if ckpt.meta["epoch"] >= config["epochs"]:
                raise UsageError(f"the checkpoint {ckpt.path} has already finished all {ckpt.meta['epoch']} epochs; "
                                 f"pass --epochs N with N > {ckpt.meta['epoch']} to train longer")
            out = args.out or os.path.dirname(os.path.abspath(ckpt.path))
            resuming_here = os.path.abspath(out) == os.path.dirname(os.path.abspath(ckpt.path))
        else:
            config = _config_from_args(args)
            if config["data_dir"] is not None:
                config["data_dir"] = os.path.abspath(config["data_dir"])
            out = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
            resuming_here = False
        _check_config(config)
        try:
            dataset = open_dataset(config["dataset"], data_dir=config["data_dir"], download=args.download,
                                   log=lambda message: print(message, flush=True))
        except DataError as err:
            raise UsageError(str(err)) from err
        from minialex.models import VARIANTS

        if config["image_size"] is None:        # the data set's size; for your own images, the model's
            config["image_size"] = dataset.image_size or VARIANTS[config["model"]].input_shape[-1]
        if config["image_size"] < 1:
            raise UsageError(f"--image-size must be a positive number of pixels, got {config['image_size']}")
        config["num_classes"] = len(dataset.classes)
        config["classes"] = [str(name) for name in dataset.classes]
        # the model keeps its own channels (1 for d2l, 3 for the others): the images are converted to them
        config["in_channels"] = VARIANTS[config["model"]].input_shape[0]
        config["load_size"] = load_size(config["image_size"], config["augment"])
        config["backend"] = backend_name
        self.config, self.dataset = config, dataset
        self.model = _build_model(config)               # checks that the image size fits the model
        if not dataset.resizable and config["image_size"] != dataset.image_size:
            raise UsageError(f"--image-size {config['image_size']}: the {dataset.name} images are "
                             f"{dataset.image_size}x{dataset.image_size}; drop --image-size")
        if config["image_size"] < dataset.min_image_size:
            raise UsageError(f"--image-size {config['image_size']} is too small for the {dataset.name} data set; "
                             f"use at least {dataset.min_image_size} (default {dataset.image_size})")
        if ckpt is not None:
            try:
                ckpt.restore(self.model)
            except CheckpointError as err:
                raise UsageError(f"--resume: {err}") from err
        _check_out_dir(out, resuming_here)
        self.out = out
        self._load_data(ckpt)
        self.optimizer = _make_optimizer(config, self.model)
        self.schedule = _make_schedule(config, self.optimizer)
        self.epoch, self.step, self.batch = 0, 0, 0         # completed epochs; steps; batches of this epoch
        self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        self.metrics = []
        if ckpt is not None:
            try:
                ckpt.restore(self.model, self.optimizer, self.schedule)
            except CheckpointError as err:
                raise UsageError(f"--resume: {err}") from err
            meta = ckpt.meta
            self.epoch, self.step, self.batch = int(meta["epoch"]), int(meta["step"]), int(meta.get("batch", 0))
            self.partial = dict(meta.get("partial", self.partial))
            self.metrics = list(meta.get("metrics", []))
            mrandom.set_state(meta["rng"])
        self.resumed_from = ckpt.path if ckpt is not None else None
        return self

    def _load_data(self, ckpt):
        c = self.config
        t = time.perf_counter()
        train_n = None if c["limit"] is None else min(c["limit"], self.dataset.train_size)
        val_n = None if c["limit"] is None else min(c["limit"], self.dataset.val_size)
        try:
            train_x, train_y = self.dataset.load("train", n=train_n, image_size=c["load_size"])
            val_x, val_y = self.dataset.load("val", n=val_n, image_size=c["load_size"])
        except (OSError, ValueError) as err:            # a missing or damaged data file
            raise UsageError(f"cannot load the {self.dataset.name} data set: {err}") from err
        if train_x.shape[1] != c["in_channels"]:
            print(f"note: the {self.dataset.name} images have {train_x.shape[1]} channel(s), the {c['model']} model "
                  f"{c['in_channels']}: " + ("the grey channel is repeated" if train_x.shape[1] == 1 else
                                             "the colours are converted to grey (luma)"), flush=True)
            train_x, val_x = match_channels(train_x, c["in_channels"]), match_channels(val_x, c["in_channels"])
        if ckpt is not None and "mean" in c:
            mean, std = np.asarray(c["mean"]), np.asarray(c["std"])
        else:
            mean, std = channel_stats(train_x)
            c["mean"], c["std"] = mean.tolist(), std.tolist()
        pca = None
        if c["augment"] == "paper":
            if ckpt is None or "pca_eigval" not in c:
                eigval, eigvec = pca_colour(train_x)
                c["pca_eigval"], c["pca_eigvec"] = eigval.tolist(), eigvec.tolist()
            pca = (np.asarray(c["pca_eigval"]), np.asarray(c["pca_eigvec"]))
        c["train_size"], c["val_size"] = len(train_x), len(val_x)
        augment = None if c["load_size"] == c["image_size"] and c["augment"] == "none" else \
            Augment(c["image_size"], c["augment"], pca=pca, seed=c["seed"], dtype=c["dtype"])
        crops = None if c["load_size"] == c["image_size"] and not c["ten_crop"] else \
            EvalCrops(c["image_size"], ten_crop=c["ten_crop"], dtype=c["dtype"])
        self.train_loader = DataLoader(train_x, train_y, c["batch_size"], mean, std, dtype=c["dtype"], shuffle=True,
                                       seed=c["seed"], transform=augment)
        self.val_loader = DataLoader(val_x, val_y, EVAL_BATCH, mean, std, dtype=c["dtype"], shuffle=False,
                                     transform=crops)
        self.data_time = time.perf_counter() - t

    # -----------------------------------------------------------------------------------------
    # Saving
    # -----------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self):
        return os.path.join(self.out, "checkpoint.npz")

    def save(self):
        meta = {"config": self.config, "epoch": self.epoch, "step": self.step, "batch": self.batch,
                "partial": self.partial, "rng": mrandom.get_state(), "metrics": self.metrics,
                "minialex": minialex.__version__}
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.schedule, meta)
        self.last_saved = (self.epoch, self.batch, self.step)

    def write_metrics(self):
        buffer = _io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.metrics:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
        _atomic_write_text(os.path.join(self.out, "metrics.csv"), buffer.getvalue())

    def write_plots(self):
        try:
            from minialex import plots

            title = f"{self.config['model']} AlexNet on {self.config['dataset']}"
            plots.plot_curves(self.metrics, os.path.join(self.out, "curves.png"), title=title)
            plots.plot_filters(self.model, os.path.join(self.out, "filters.png"))
        except Exception as err:  # noqa: BLE001 - a plot must never cost the run
            print(f"warning: could not draw the plots ({type(err).__name__}: {err})", file=sys.stderr)

    # -----------------------------------------------------------------------------------------
    # Training
    # -----------------------------------------------------------------------------------------

    def train(self) -> int:
        c = self.config
        _atomic_write_text(os.path.join(self.out, "config.json"), json.dumps(c, indent=2) + "\n")
        self.save()                      # the "last good checkpoint" before any step (or where we resume)
        self._print_header()
        stop = _StopFlag()
        with stop.installed():
            try:
                code = self._loop(stop)
            except NonFiniteLoss as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            except OSError as err:                       # disk full, folder removed, ...
                print(f"error: could not write to {self.out} ({err}); the last checkpoint written is kept",
                      file=sys.stderr)
                return 1
            except KeyboardInterrupt:                    # a second Ctrl-C: quit now
                print(f"\ninterrupted; the last checkpoint is kept: {self.checkpoint_path}", file=sys.stderr)
                return 130
        return code

    def _print_header(self):
        c = self.config
        what = "resuming" if self.resumed_from else "training"
        print(f"{what} alexnet('{c['model']}') ({self.model.num_parameters():,} parameters) on {c['dataset']}: "
              f"{c['train_size']} training / {c['val_size']} validation images of {c['in_channels']}x"
              f"{c['image_size']}x{c['image_size']}; backend {self.backend_name}, {c['dtype']}, {c['optimizer']} "
              f"lr {c['lr']:g}, batch {c['batch_size']}, {c['epochs']} epochs, {c['schedule']} schedule, augment "
              f"{c['augment']}{', ten-crop validation' if c['ten_crop'] else ''}; "
              f"outputs in {self.out}", flush=True)

    def _loop(self, stop) -> int:
        c = self.config
        epochs = c["epochs"]
        while self.epoch < epochs:
            e = self.epoch                               # 0-based index of the epoch being trained
            self.model.train()
            bar = _Progress(e + 1, epochs, len(self.train_loader), quiet=self.quiet)
            lr = self.optimizer.lr
            p = self.partial
            tick = time.perf_counter()
            for x, y in self.train_loader.epoch(e, start=self.batch):
                loss, correct = self._train_step(x, y)
                now = time.perf_counter()
                p["time"] += now - tick
                tick = now
                p["loss_sum"] += loss * len(y)
                p["correct"] += correct
                p["seen"] += len(y)
                self.batch += 1
                self.step += 1
                bar.update(self.batch, p["loss_sum"] / p["seen"], p["correct"] / p["seen"],
                           p["seen"] / max(p["time"], 1e-9))
                if stop.requested and self.batch < len(self.train_loader):   # (at the last batch: finish the epoch)
                    bar.close()
                    self.save()
                    self.write_metrics()
                    self.write_plots()
                    print(f"interrupted at epoch {e + 1}, batch {self.batch}/{len(self.train_loader)} (step "
                          f"{self.step}): checkpoint saved; continue with: python -m minialex.train --resume "
                          f"{self.checkpoint_path}", flush=True)
                    return 130
            bar.close()
            bad = next((name for name, q in self.model.named_parameters() if not np.isfinite(q.numpy()).all()), None)
            if bad is not None:                           # the last step of the epoch blew the weights up
                raise NonFiniteLoss(self._nonfinite_message(f"the weights ({bad}) became nan or inf", self.step))
            row = {"epoch": e + 1, "step": self.step, "loss": p["loss_sum"] / max(p["seen"], 1),
                   "train_acc": p["correct"] / max(p["seen"], 1), "lr": lr,
                   "images_per_s": p["seen"] / max(p["time"], 1e-9), "epoch_time_s": p["time"]}
            if (e + 1) % c["eval_every"] == 0 or e + 1 == epochs:
                row.update(self.evaluate())
            # the schedule sets the learning rate of the next epoch (plateau watches the error)
            error = 1.0 - (row["val_acc"] if row.get("val_acc") is not None else row["train_acc"])
            self.schedule.step(error)
            self.metrics.append(row)
            self.epoch, self.batch = e + 1, 0
            self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
            self.save()
            self.write_metrics()
            self._print_epoch(row)
            if stop.requested:
                self.write_plots()
                print(f"interrupted after epoch {e + 1}: checkpoint saved; continue with: python -m minialex.train "
                      f"--resume {self.checkpoint_path}", flush=True)
                return 130
        self.write_plots()
        self._print_summary()
        return 0

    def _train_step(self, x, y):
        """One step of SGD on the batch (x, y); returns (mean loss, number of correct predictions)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # a blow-up is reported below
            logits = self.model(minialex.tensor(x))
            loss = compute_loss(logits, y)
            value = float(loss.item())
            if not math.isfinite(value):
                raise NonFiniteLoss(self._nonfinite_message(f"the loss became {value}"))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        predicted = B.to_numpy(logits.data).argmax(axis=1)
        return value, int((predicted == y).sum())

    def _nonfinite_message(self, what, step=None):
        saved_epoch, saved_batch, saved_step = self.last_saved
        where = ("before the first step" if saved_step == 0 else f"end of epoch {saved_epoch}" if saved_batch == 0
                 else f"epoch {saved_epoch + 1}, batch {saved_batch}")
        last = f"the last good checkpoint ({where}, step {saved_step}) is kept in {self.checkpoint_path}"
        step = self.step + 1 if step is None else step
        batch = self.batch + 1 if step > self.step else self.batch
        return (f"{what} at step {step} (epoch {self.epoch + 1}, batch {batch}); "
                f"training stopped. The learning rate ({self.optimizer.lr:g}) is probably too high: try --lr "
                f"{self.config['lr'] / 10:g} in a new run; {last}")

    def evaluate(self) -> dict:
        """Loss, accuracy and top-5 accuracy on the validation images (dropout off, no gradients)."""
        self.model.eval()
        loss_sum, correct, correct5, seen = 0.0, 0, 0, 0
        with no_grad():
            for x, y in self.val_loader.epoch(0):
                logits = model_logits(self.model, x)            # (B, classes); ten crops: log of the mean softmax
                loss_sum += float(compute_loss(logits, y).item()) * len(y)
                scores = B.to_numpy(logits.data)
                k = min(5, scores.shape[1])
                top = np.argpartition(-scores, k - 1, axis=1)[:, :k]              # (B, k), unordered
                correct += int((scores.argmax(axis=1) == y).sum())
                correct5 += int((top == y[:, None]).any(axis=1).sum())
                seen += len(y)
        self.model.train()
        return {"val_loss": loss_sum / seen, "val_acc": correct / seen, "val_top5": correct5 / seen}

    def _print_epoch(self, row):
        val = (f"  val {100 * row['val_acc']:.1f}% (top-5 {100 * row['val_top5']:.1f}%)"
               if row.get("val_acc") is not None else "")
        print(f"epoch {row['epoch']}/{self.config['epochs']}  loss {row['loss']:.4f}  train {100 * row['train_acc']:.1f}%"
              f"{val}  lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  {row['epoch_time_s']:.0f} s", flush=True)

    def _print_summary(self):
        last = next((r for r in reversed(self.metrics) if r.get("val_acc") is not None), None)
        total = time.perf_counter() - self.started
        acc = f"validation accuracy {100 * last['val_acc']:.2f}% (top-5 {100 * last['val_top5']:.2f}%)" if last else ""
        print(f"done: {self.epoch} epochs, {self.step} steps, {_duration(total)} in this process "
              f"(data {_duration(self.data_time)}); {acc}; outputs in {self.out}", flush=True)


def compute_loss(logits, labels):
    """The training objective: mean softmax cross-entropy (a separate function so tests can swap it)."""
    return F.cross_entropy(logits, labels)


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# =============================================================================================
# Ctrl-C and the progress bar
# =============================================================================================


class _StopFlag:
    """SIGINT / SIGTERM set ``requested``; the loop saves and stops after the current step (a step
    cut in half would leave half-updated weights). A second signal raises KeyboardInterrupt."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    class _Installed:
        def __init__(self, flag):
            self.flag, self.previous = flag, {}

        def __enter__(self):
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.previous[sig] = signal.signal(sig, self.flag._handler)
            return self.flag

        def __exit__(self, *exc):
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)
            return False

    def installed(self):
        return self._Installed(self)


class _Progress:
    """``epoch 3/10 [########------] 120/157  loss 0.5321  acc 81.2%  85 img/s``: redrawn in place on
    a terminal; elsewhere (CI logs, pipes) printed as a new line after the first step and then every
    ``LOG_EVERY`` seconds. ``quiet`` prints nothing."""

    LOG_EVERY = 30.0
    WIDTH = 24

    def __init__(self, epoch, epochs, total, quiet=False, stream=None):
        self.epoch, self.epochs, self.total, self.quiet = epoch, epochs, total, quiet
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = -math.inf
        self.drawn = False

    def update(self, done, loss, acc, rate):
        if self.quiet:
            return
        now = time.perf_counter()
        first = not self.drawn
        if not first and now - self.last < (0.2 if self.tty else self.LOG_EVERY) and done < self.total:
            return
        self.last, self.drawn = now, True
        filled = int(self.WIDTH * done / max(self.total, 1))
        line = (f"epoch {self.epoch}/{self.epochs} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{self.total}"
                f"  loss {loss:.4f}  acc {100 * acc:.1f}%  {rate:.0f} img/s")
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty and self.drawn and not self.quiet:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


if __name__ == "__main__":
    sys.exit(main())
