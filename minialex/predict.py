"""``python -m minialex.predict CHECKPOINT IMAGE...``: the five most likely classes of each image.

    $ python -m minialex.predict runs/20250101-120000/checkpoint.npz cat.jpg
    cat.jpg
      1. cat          91.20%
      2. dog           6.02%
      ...

Each image gets exactly the preprocessing of the validation images during training: converted to
RGB (or grey, for a one-channel model), shorter side resized to the stored size, centre square,
then the centre crop (or the paper's ten crops with ``--ten-crop``), normalised with the
training set's mean and std from the checkpoint. The probabilities are the softmax of the logits
(averaged over the crops with ``--ten-crop``).

Bad input (a missing checkpoint, an image that is missing or cannot be read): one line
``error: ...`` and exit code 2, as ``python -m minialex.train``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from minialex import backend as B
from minialex.evaluate import class_names, load_model, model_logits, preprocessing, run_cli, softmax
from minialex.tensor import no_grad

__all__ = ["main", "predict"]


def predict(model, config, paths, top: int = 5, ten_crop: bool = False):
    """For each image file: a list of (class name, probability), the ``top`` most likely first."""
    from minialex.data.augment import EvalCrops
    from minialex.data.folder import read_image

    L, S, C, mean, std = preprocessing(config)
    dtype = np.dtype(config.get("dtype", "float32"))
    names = class_names(config, warn=lambda m: print(m, file=sys.stderr))
    images = np.stack([read_image(p, L, channels=C) for p in paths])              # (N, C, L, L)
    x = EvalCrops(S, ten_crop=ten_crop, dtype=dtype)(images, np.arange(len(images)))
    shape = (1, C, 1, 1)
    x = ((x / 255.0 - mean.reshape(shape)) / std.reshape(shape)).astype(dtype)   # as DataLoader does
    with no_grad():
        probs = softmax(B.to_numpy(model_logits(model, x).data))                  # (N, classes)
    k = min(top, probs.shape[1])
    results = []
    for p in probs:
        order = np.argsort(-p, kind="stable")[:k]
        results.append([(names[i], float(p[i])) for i in order])
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minialex.predict",
        description="Print the most likely classes of images, with their probabilities, from a checkpoint written "
                    "by python -m minialex.train.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz (or the run folder holding it)")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to print (default: 5)")
    parser.add_argument("--ten-crop", action="store_true", help="average over the paper's ten crops")
    parser.add_argument("--backend", choices=("numpy", "numba", "cupy"),
                        help="numpy, numba or cupy (default: $MINIALEX_BACKEND, else numba)")
    return parser


def _predict(args) -> int:
    from minialex.train import UsageError

    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    model, ckpt = load_model(args.checkpoint)
    results = predict(model, ckpt.config, args.images, top=args.top, ten_crop=args.ten_crop)
    width = max(len(name) for ranked in results for name, _ in ranked)
    for path, ranked in zip(args.images, results):
        print(path)
        for rank, (name, p) in enumerate(ranked, 1):
            print(f"  {rank}. {name:<{width}}  {100 * p:6.2f}%")
    return 0


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input)."""
    return run_cli(_predict, argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
