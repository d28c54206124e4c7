# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Training
#
# Everything so far computed gradients; now we follow them. This tutorial trains the `small`
# AlexNet (AlexNet's structure at 32x32 pixels, 1.2 million parameters) on minialex's built-in
# data set, with the same code as `python -m minialex.train`, and then looks at what came out:
#
# 1. the data;
# 2. a training run: the command line, called from Python;
# 3. the learning curves;
# 4. the first layer's filters, before and after training;
# 5. the confusion matrix: which classes are mistaken for which;
# 6. how to train on other data.
#
# In fast mode (`MINIALEX_TUTORIAL_FAST=1`, used by the test suite) the run is tiny (128
# images, one epoch) and the network has no time to learn anything: the pictures then show an
# untrained network. Without it, this is the default run of `python -m minialex.train`, a few
# minutes on two idle CPU cores.

# %%
import csv
import datetime
import json
import shutil
import sys
from pathlib import Path

import matplotlib.image
import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, IN_NOTEBOOK, IMAGES, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import plots
from minialex.checkpoint import read_checkpoint
from minialex.data import DATASETS
from minialex.data.loader import DataLoader
from minialex.models import alexnet
from minialex.train import build_parser, main

np.set_printoptions(precision=3, suppress=True, linewidth=110)


# %% [markdown]
# ## 1. The data: `shapes`
#
# A real data set needs a download; this one is drawn on the spot. Every 32x32 image holds one
# bright filled shape (ten classes) at a random position, size, rotation and colour, on a random
# darker textured background. The class is in the *shape of the edges* only, never in the colour
# or the position, so a model must detect local patterns anywhere in the image: what convolutions
# do. A linear model on the pixels gets about a fifth of the held-out images right
# (`tests/test_shapes.py`).

# %%
shapes = DATASETS["shapes"]
print(shapes.description)
print("classes:", ", ".join(shapes.classes))
images, labels = shapes.load("train", n=30, image_size=32)       # uint8 (N, C, H, W), int64 (N,)
print("images:", images.shape, images.dtype, "| labels:", labels[:10])

rows, cols, gap = 3, 10, 4                                        # one mosaic: 3 x 10 tiles of 32x32
mosaic = np.full((rows * (32 + gap + 10), cols * (32 + gap), 3), 255, dtype=np.uint8)
fig, ax = plt.subplots(figsize=(12, 4.6))
for k, (image, label) in enumerate(zip(images, labels)):
    top, left = (k // cols) * (32 + gap + 10) + 10, (k % cols) * (32 + gap)
    mosaic[top:top + 32, left:left + 32] = image.transpose(1, 2, 0)   # CHW -> HWC for matplotlib
    ax.text(left + 16, top - 2, shapes.classes[label], ha="center", va="bottom", fontsize=8)
ax.imshow(mosaic)
ax.set_axis_off()
save(fig, "09_shapes_samples.png")

# %% [markdown]
# ![Thirty 32x32 training images in three rows, each titled with its class: circles, squares,
# triangles, crosses, rings, stars, bars, arrows, hexagons and crescents in varied bright colours,
# sizes and angles, on darker mottled backgrounds](images/09_shapes_samples.png)

# %% [markdown]
# ## 2. A training run
#
# `python -m minialex.train` is the training program; its `main(argv)` takes the same arguments
# as the command line and returns the exit code. Every option:

# %%
print(build_parser().format_help())

# %% [markdown]
# We run the **default** training, exactly what `python -m minialex.train` does with no options
# (the settings are printed in its first line): only `--out` (where everything the run produces
# goes: a new folder under `runs/` in the current directory, as the command line does), `--seed`
# and `--quiet` (one line per epoch) are given. In
# fast mode, `--limit` takes the first 128 training images (and at most 128 validation images),
# `--epochs 1` makes one pass and `--batch-size 32` cuts it into 4 steps.

# %%
out = Path("runs") / datetime.datetime.now().strftime("09_training-%Y%m%d-%H%M%S")
argv = ["--seed", "0", "--out", str(out), "--quiet"]
if FAST:
    argv += ["--limit", "128", "--epochs", "1", "--batch-size", "32"]
print("python -m minialex.train", " ".join(argv))
code = main(argv)
print("exit code:", code)
assert code == 0, "the training run failed"

# %% [markdown]
# The run folder holds everything needed to study it or continue it:

# %%
for path in sorted(out.iterdir()):
    print(f"{path.name:<16} {path.stat().st_size:>10,} bytes")
config = json.loads((out / "config.json").read_text())
print("\nconfig.json (excerpt):", {k: config[k] for k in ("model", "dataset", "epochs", "batch_size", "lr", "seed")})

# %% [markdown]
# `checkpoint.npz` holds the weights, the optimizer's momentum, the schedule and the random
# generator's state; `python -m minialex.train --resume <run>/checkpoint.npz --epochs 20`
# continues the run exactly where it stopped, batch for batch (and Ctrl-C during a run saves one).

# %% [markdown]
# ## 3. The learning curves
#
# `metrics.csv` has one row per epoch. The run also drew `curves.png` from it:

# %%
with open(out / "metrics.csv") as f:
    metrics = list(csv.DictReader(f))
print(f"{'epoch':>5} {'loss':>8} {'train acc':>10} {'val loss':>9} {'val acc':>8} {'top-5':>6} {'lr':>8} {'img/s':>6}")
for row in metrics:
    print(f"{row['epoch']:>5} {float(row['loss']):8.4f} {100 * float(row['train_acc']):9.1f}% "
          f"{float(row['val_loss']):9.4f} {100 * float(row['val_acc']):7.1f}% {100 * float(row['val_top5']):5.1f}% "
          f"{float(row['lr']):8.4f} {float(row['images_per_s']):6.0f}")
shutil.copy(out / "curves.png", IMAGES / "09_curves.png")
if IN_NOTEBOOK:
    from IPython.display import Image, display
    display(Image(filename=str(IMAGES / "09_curves.png")))

# %% [markdown]
# ![Two panels against the epoch, one point per epoch: left, the training loss falling from about
# 1.9 after the first epoch to below 0.1 after the fifth, the validation loss below it; right, the
# training accuracy rising from about 20% to 99% and the validation accuracy from about 40% to
# 99%, the validation top-5 accuracy near 100% throughout](images/09_curves.png)
#
# How to read them:
#
# * the loss starts at `ln 10 = 2.30`: ten classes, no idea yet (tutorial 03); the first point
#   is the mean over the first epoch, by when it has already fallen;
# * **training** accuracy is measured with dropout on, so it can lag validation accuracy;
# * validation accuracy that stalls while training accuracy keeps climbing means overfitting: the
#   network memorises its training images instead of learning the shapes. Watch for the gap.

# %% [markdown]
# ## 4. The first layer's filters, before and after
#
# We rebuild the model from the checkpoint, and an untrained twin with the same seed (the run
# called `minialex.manual_seed(seed)` before building its model, so the same call gives the same
# initial weights). `minialex.plots.filter_grid` tiles the 48 kernels of conv1 (3x5x5 each, scaled
# one by one to the full colour range, as in the paper's Figure 3):

# %%
checkpoint = read_checkpoint(out / "checkpoint.npz")
c = checkpoint.config
minialex.manual_seed(c["seed"])
untrained = alexnet(c["model"], num_classes=c["num_classes"], in_channels=c["in_channels"], image_size=c["image_size"])
minialex.manual_seed(c["seed"])
model = alexnet(c["model"], num_classes=c["num_classes"], in_channels=c["in_channels"], image_size=c["image_size"])
checkpoint.restore(model)
print("restored", model.name(), "after", checkpoint.meta["epoch"], "epoch(s),", checkpoint.meta["step"], "steps")

before = untrained.features[0].weight.numpy()                     # (48, 3, 5, 5)
after = model.features[0].weight.numpy()
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
for ax, kernels, title in ((axes[0], before, "before training (random)"),
                           (axes[1], after, f"after {checkpoint.meta['step']} steps"),
                           (axes[2], after - before, "what training added (after - before)")):
    ax.imshow(plots.filter_grid(kernels, zoom=6))
    ax.set_title(f"conv1: {title}", fontsize=10)
    ax.set_axis_off()
save(fig, "09_filters.png")
print(f"mean change of a conv1 weight: {np.abs(after - before).mean():.4f} (initial mean size "
      f"{np.abs(before).mean():.4f})")

# %% [markdown]
# ![Three grids of the 48 colour kernels of conv1: before training, random coloured noise; after
# training, almost the same noise; and their difference, in which smooth patterns appear: colour
# blobs and light-to-dark gradients at various angles](images/09_filters.png)
#
# Before and after look alike: this run is short (940 steps) and the He initialisation starts the
# kernels large (std sqrt(2 / 75) = 0.16), so training moved each weight by about a sixth of its
# size. The third grid shows that move alone, and it is not noise: smooth colour blobs and
# gradients, the beginnings of the detectors of the paper's Figure 3, which formed over 90 epochs
# of ImageNet.

# %% [markdown]
# ## 5. The confusion matrix
#
# Accuracy is one number; the confusion matrix says *which* mistakes. Row `i`, column `j` counts
# the validation images of class `i` that the model called `j`; a perfect model is diagonal. We
# normalise the images with the training set's statistics stored in the run's config, run the
# model in evaluation mode (dropout off) without recording a graph, and count with NumPy:

# %%
minialex.set_backend("numba")
val_x, val_y = shapes.load("val", n=200 if FAST else 2000, image_size=c["image_size"])
loader = DataLoader(val_x, val_y, batch_size=256, mean=c["mean"], std=c["std"], shuffle=False, prefetch=0)
model.eval()
predicted = []
with minialex.no_grad():
    for xb, _ in loader.epoch(0):
        predicted.append(model(minialex.tensor(xb)).numpy().argmax(axis=1))
predicted = np.concatenate(predicted)

K = len(shapes.classes)
confusion = np.zeros((K, K), dtype=np.int64)
np.add.at(confusion, (val_y, predicted), 1)                       # confusion[true, predicted] += 1
print(f"validation accuracy on {len(val_y)} images: {100 * np.trace(confusion) / confusion.sum():.1f}%")
print(confusion)

# %%
fig, ax = plt.subplots(figsize=(6.5, 5.5))
shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
for (i, j), n in np.ndenumerate(confusion):
    if n:
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if shares[i, j] > 0.5 else "black")
ax.set_xticks(range(K), shapes.classes, rotation=60, fontsize=8)
ax.set_yticks(range(K), shapes.classes, fontsize=8)
ax.set(xlabel="predicted class", ylabel="true class",
       title=f"validation confusion matrix ({100 * np.trace(confusion) / confusion.sum():.0f}% correct)")
fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
save(fig, "09_confusion.png")

per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
off = confusion - np.diag(np.diag(confusion))
i, j = np.unravel_index(off.argmax(), off.shape)
print("per-class accuracy:", ", ".join(f"{name} {100 * a:.0f}%" for name, a in zip(shapes.classes, per_class)))
print(f"most frequent mistake: {shapes.classes[i]} taken for {shapes.classes[j]} ({off[i, j]} times)")

# %% [markdown]
# ![A 10 by 10 confusion matrix of the ten shape classes, true class down, predicted class across,
# each cell holding a count and shaded by its share of the row; after training the diagonal is dark
# and the few mistakes fall between similar shapes](images/09_confusion.png)
#
# The off-diagonal cells are the interesting ones: mistakes between shapes that look alike at
# 32x32 pixels (a hexagon and a circle, say) tell what the model still has to learn. On the
# command line, `python -m minialex.evaluate <run>/checkpoint.npz --confusion confusion.png`
# computes the same matrix (and top-5 accuracy, and the paper's ten-crop evaluation).

# %% [markdown]
# ## 6. Other data: MNIST, Fashion-MNIST, CIFAR-10, your own images
#
# The run above used `--dataset shapes`, the generated one. The others are read from their
# original files in `--data-dir DIR`: MNIST's and Fashion-MNIST's IDX files, CIFAR-10's archive,
# or a folder of your own images. This cell lists what your version of minialex offers:

# %%
for name, dataset in DATASETS.items():
    print(f"{name:<14} {dataset.description}")
help_text = build_parser().format_help()
print("\n--data-dir:", "available" if "--data-dir" in help_text else "not in this version",
      "| --download:", "available" if "--download" in help_text else "not in this version")

# %% [markdown]
# The commands (nothing is downloaded unless you add `--download`, which fetches the official
# files into `--data-dir` and checks their checksums):
#
#     python -m minialex.train --dataset mnist --data-dir data/mnist --download
#     python -m minialex.train --dataset fashion-mnist --data-dir data/fashion-mnist
#     python -m minialex.train --dataset cifar10 --data-dir data/cifar10 --epochs 30
#     python -m minialex.train --dataset folder --data-dir my_images --image-size 32
#
# For `folder`, put one sub-folder per class under `train/` and `val/`:
# `my_images/train/cat/0001.jpg`, `my_images/val/dog/0102.png`, ... The `small` model takes 28x28
# single-channel images too: `alexnet("small", in_channels=1)` sizes its classifier for them (its
# last feature map is 2x2 instead of 3x3).
#
# To try the folder route without any download, we write a few of the generated images as PNG
# files in that layout (three classes), and train on them for one epoch:

# %%
if "folder" in DATASETS:
    folder = out / "my_images"                                      # inside this tutorial's run folder
    pictures, picture_labels = shapes.load("train", n=90, image_size=32)
    for k, (image, label) in enumerate(zip(pictures, picture_labels)):
        if label < 3:                                               # circle, square, triangle
            split = "val" if k % 5 == 0 else "train"
            path = folder / split / shapes.classes[label] / f"{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            matplotlib.image.imsave(path, image.transpose(1, 2, 0))
    print("written:", {split: sum(1 for _ in (folder / split).rglob("*.png")) for split in ("train", "val")},
          "images in", folder)
    code = main(["--dataset", "folder", "--data-dir", str(folder), "--image-size", "32", "--epochs", "1",
                 "--batch-size", "16", "--out", str(out / "folder_run"), "--quiet"])
    print("exit code:", code)
else:
    print("this version of minialex has no 'folder' data set yet")

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/train.py`: `main` and `build_parser` (the command line), `Run.prepare` (every check
#   before anything is written), `Run._train_step` (forward, loss, `zero_grad`, `backward`,
#   `step`), `Run.evaluate`, `Run.save` (the checkpoint), `compute_loss`.
# - `minialex/data/shapes.py`: `load_shapes`, `make_shapes` (the generated data set);
#   `minialex/data/__init__.py`: `DATASETS`, `Dataset`, `open_dataset`, `register_dataset`;
#   `minialex/data/folder.py`, `minialex/data/idx.py`, `minialex/data/cifar.py`: the data read from
#   files.
# - `minialex/data/loader.py`: `DataLoader` (seeded shuffling, normalisation, prefetching),
#   `channel_stats`.
# - `minialex/checkpoint.py`: `read_checkpoint`, `Checkpoint.restore`; `minialex/optim.py`: `SGD`,
#   `CosineAnnealingLR`.
# - `minialex/plots.py`: `plot_curves`, `plot_filters`, `filter_grid`; `minialex/evaluate.py`:
#   `python -m minialex.evaluate` (accuracy and confusion matrix of a checkpoint).
# - `minialex/models/alexnet.py`: `_small`.
#
# Next: **10 · Numba**, the compiled kernels that made this run fast enough for a CPU.
