"""``python -m minialex.evaluate CHECKPOINT``: top-1 and top-5 accuracy of a trained model, and its
confusion matrix as a PNG.

    python -m minialex.evaluate runs/20250101-120000/checkpoint.npz
    python -m minialex.evaluate runs/.../checkpoint.npz --ten-crop           # the paper's 10-crop test
    python -m minialex.evaluate runs/.../checkpoint.npz --dataset folder --data-dir other_photos

The checkpoint's configuration says everything needed: the variant, the classes, the image size,
the channels and the normalisation (mean and std of the training images). By default the model is
evaluated on the validation split of the data set it was trained on.

**Ten crops.** The paper "extracts five 224x224 patches (the four corner patches and the center
patch) as well as their horizontal reflections (hence ten patches in all), and averages the
predictions made by the network's softmax layer on the ten patches". ``model_logits`` does this for
a batch of shape (B, 10, C, S, S) and returns log(mean softmax): a valid vector of logits (its
softmax is the average), so accuracy, top-5 and the cross-entropy are computed as for one crop.

**Confusion matrix.** Row = true class, column = predicted class; the PNG shades each row by the
fraction of that class's images (a perfect model is a dark diagonal) and prints the counts.

Bad input (a missing checkpoint, data that cannot be read, classes that do not match the model):
one line ``error: ...`` and exit code 2, as ``python -m minialex.train``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import minialex
from minialex import backend as B
from minialex.tensor import no_grad

__all__ = ["main", "model_logits", "softmax", "topk_correct", "confusion_matrix", "plot_confusion", "load_model",
           "class_names"]

EVAL_BATCH = 256          # images per forward pass (ten crops: 25 images, 250 crops)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable (the maximum is subtracted first)."""
    z = scores.astype(np.float64) - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def model_logits(model, x: np.ndarray, chunk: int = EVAL_BATCH):
    """The model's logits (a Tensor) for a batch ``x``: (B, C, S, S) as it is; (B, K, C, S, S) (K
    crops of each image) as log of the softmax averaged over the crops, K crops of an image
    never split across forward passes of at most ``chunk`` crops."""
    if x.ndim == 4:
        return model(minialex.tensor(x))
    Bn, K = x.shape[:2]
    flat = x.reshape((Bn * K,) + x.shape[2:])                                  # (B*K, C, S, S)
    step = max(1, chunk // K) * K
    probs = np.concatenate([softmax(B.to_numpy(model(minialex.tensor(flat[i:i + step])).data))
                            for i in range(0, len(flat), step)])                # (B*K, classes)
    mean = probs.reshape(Bn, K, -1).mean(axis=1)                               # (B, classes)
    return minialex.tensor(np.log(np.maximum(mean, 1e-300)).astype(x.dtype))


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (B,): is the label among the ``k`` highest scores?"""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]                       # (B, k), unordered
    return (top == labels[:, None]).any(axis=1)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def plot_confusion(matrix: np.ndarray, classes, path, title="") -> str:
    """Draw the confusion matrix to ``path`` (PNG); each row shaded by its own total."""
    from matplotlib.figure import Figure

    from minialex.plots import _save

    K = len(matrix)
    side = min(3.5 + 0.45 * K, 16)
    fig = Figure(figsize=(side + 2, side + 0.5))
    ax = fig.add_subplot(1, 1, 1)
    rows = matrix.sum(axis=1, keepdims=True)
    fraction = matrix / np.maximum(rows, 1)
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if K <= 40:
        names = [str(c) for c in classes]
        ax.set_xticks(range(K), names, rotation=60 if max(map(len, names)) > 3 else 0, ha="right" if max(
            map(len, names)) > 3 else "center", fontsize=8)
        ax.set_yticks(range(K), names, fontsize=8)
    if K <= 20:
        for i in range(K):
            for j in range(K):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if fraction[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, os.fspath(path))
    return os.fspath(path)


# =============================================================================================
# The checkpoint: model, classes, preprocessing
# =============================================================================================


def class_names(config: dict, warn=None) -> list:
    """The class names stored in the checkpoint's config, else "0", "1", ... (with a warning)."""
    names = config.get("classes")
    if names and len(names) == config["num_classes"]:
        return [str(c) for c in names]
    if warn is not None:
        warn("note: the checkpoint holds no class names; classes are shown as numbers")
    return [str(i) for i in range(config["num_classes"])]


def load_model(path):
    """(model in eval mode, checkpoint) from a checkpoint written by ``python -m minialex.train``;
    raises ``train.UsageError`` when it is missing, corrupt or does not fit its own config."""
    from minialex.checkpoint import CheckpointError, read_checkpoint
    from minialex.train import UsageError, _build_model

    try:
        ckpt = read_checkpoint(path)
        config = dict(ckpt.config)
        for key in ("model", "num_classes", "in_channels", "image_size", "dtype", "seed"):
            if key not in config:
                raise CheckpointError(f"{ckpt.path}: its configuration lacks {key!r}; pass a checkpoint.npz written "
                                      "by python -m minialex.train")
        model = _build_model(config)
        ckpt.restore(model)
    except CheckpointError as err:
        raise UsageError(str(err)) from err
    model.eval()
    return model, ckpt


def preprocessing(config: dict) -> tuple:
    """(stored size L, crop size S, channels, mean, std) the model was trained with."""
    S = int(config["image_size"])
    L = int(config.get("load_size") or S)
    C = int(config["in_channels"])
    mean = np.asarray(config.get("mean", np.zeros(C)), dtype=np.float64)
    std = np.asarray(config.get("std", np.ones(C)), dtype=np.float64)
    return L, S, C, mean, std


# =============================================================================================
# Command line
# =============================================================================================


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minialex.evaluate",
        description="Top-1 and top-5 accuracy of a checkpoint written by python -m minialex.train, and its "
                    "confusion matrix (PNG). By default on the validation split of the data set it was trained on.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz (or the run folder holding it)")
    parser.add_argument("--dataset", metavar="NAME", help="data set (default: the one the model was trained on)")
    parser.add_argument("--data-dir", metavar="DIR", help="where the data set's files are (default: the training "
                                                          "run's)")
    parser.add_argument("--download", action="store_true", help="fetch the data set's official files if missing")
    parser.add_argument("--split", choices=("val", "train"), default="val", help="which split (default: val)")
    parser.add_argument("--ten-crop", action="store_true",
                        help="average the softmax over 10 crops (corners, centre and their mirrors), as the paper")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate N images only")
    parser.add_argument("--batch-size", type=int, default=EVAL_BATCH, metavar="B", help="images per forward pass")
    parser.add_argument("--confusion", metavar="PNG", help="where to write the confusion matrix (default: "
                                                           "confusion-<dataset>-<split>.png beside the checkpoint)")
    parser.add_argument("--backend", choices=("numpy", "numba", "cupy"),
                        help="numpy, numba or cupy (default: $MINIALEX_BACKEND, else numba)")
    return parser


def run_cli(body, argv, parser) -> int:
    """Parse ``argv`` and run ``body(args)`` on the chosen backend; bad input of any kind is the
    training CLI's one line ``error: ...`` and exit code 2."""
    from minialex.data.download import DataError
    from minialex.train import UsageError, _backend_name, _set_backend

    args = parser.parse_args(argv)
    try:
        with B.backend_scope("numpy"):
            _set_backend(_backend_name(args.backend))
            return body(args)
    except (UsageError, DataError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _evaluate(args) -> int:
    from minialex.data import DATASETS, open_dataset
    from minialex.data.augment import EvalCrops, match_channels
    from minialex.data.loader import DataLoader
    from minialex.train import UsageError

    def note(message):
        print(message, file=sys.stderr, flush=True)

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    model, ckpt = load_model(args.checkpoint)
    config = ckpt.config
    name = args.dataset or config.get("dataset", "shapes")
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}; choose --dataset from {', '.join(DATASETS)}")
    data_dir = args.data_dir or (config.get("data_dir") if name == config.get("dataset") else None)
    dataset = open_dataset(name, data_dir=data_dir, download=args.download, log=note)
    classes = class_names(config, warn=note)
    if len(dataset.classes) != config["num_classes"]:
        raise UsageError(f"the model predicts {config['num_classes']} classes but the {name} data set has "
                         f"{len(dataset.classes)}; evaluate it on a data set with the same classes")
    if config.get("classes") and [str(c) for c in dataset.classes] != classes:
        raise UsageError(f"the {name} data set's classes ({', '.join(map(str, dataset.classes))}) are not the "
                         f"model's ({', '.join(classes)}); evaluate it on a data set with the same classes")
    L, S, C, mean, std = preprocessing(config)
    size = dataset.val_size if args.split == "val" else dataset.train_size
    n = None if args.limit is None else min(args.limit, size)
    try:
        images, labels = dataset.load(args.split, n=n, image_size=L)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load the {name} data set: {err}") from err
    if images.shape[1] != C:
        note(f"note: the {name} images have {images.shape[1]} channel(s) and the model {C}: "
             + ("the channel is repeated" if images.shape[1] == 1 else "converted to grey (luma)"))
        images = match_channels(images, C)
    crops = EvalCrops(S, ten_crop=args.ten_crop, dtype=config.get("dtype", "float32"))
    loader = DataLoader(images, labels, args.batch_size, mean, std, dtype=config.get("dtype", "float32"),
                        shuffle=False, transform=crops)
    predicted, correct5 = [], []
    with no_grad():
        for x, y in loader.epoch(0):
            scores = B.to_numpy(model_logits(model, x).data)
            predicted.append(scores.argmax(axis=1))
            correct5.append(topk_correct(scores, y, 5))
    predicted, correct5 = np.concatenate(predicted), np.concatenate(correct5)
    top1, top5 = float((predicted == labels).mean()), float(correct5.mean())
    matrix = confusion_matrix(labels, predicted, config["num_classes"])
    png = args.confusion or os.path.join(os.path.dirname(os.path.abspath(ckpt.path)),
                                         f"confusion-{name}-{args.split}.png")
    how = "ten crops" if args.ten_crop else "centre crop"
    title = (f"{config['model']} AlexNet on {name} {args.split}\n{len(labels)} images, {how}: top-1 {100 * top1:.2f}%, "
             f"top-5 {100 * top5:.2f}%")
    try:
        plot_confusion(matrix, classes, png, title=title)
    except OSError as err:
        raise UsageError(f"cannot write the confusion matrix to {png} ({err.strerror or err}); pass --confusion "
                         "PATH in a folder you can write") from err
    print(f"{name} {args.split}: {len(labels)} images, {how}: top-1 {100 * top1:.2f}%  top-5 {100 * top5:.2f}%")
    print(f"confusion matrix: {png}")
    return 0


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input)."""
    return run_cli(_evaluate, argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
