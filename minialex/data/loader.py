"""Batches for training: seeded shuffling, normalisation, and a background thread that prepares
the next batches while the model trains on the current one.

    loader = DataLoader(images, labels, batch_size=128, mean=mean, std=std, shuffle=True, seed=0)
    for x, y in loader.epoch(3):          # x float32 (B, C, H, W) normalised, y int64 (B,)
        ...

Three ideas, each a few lines:

1. **Shuffling you can replay.** The order of epoch ``e`` is a permutation drawn from
   ``np.random.default_rng([seed, e])``: it depends on (seed, epoch) only, not on how many batches
   came before. A run resumed at epoch 7 (or at batch 40 of epoch 7: ``loader.epoch(7, start=40)``)
   sees exactly the batches an uninterrupted run would have seen.
2. **Normalisation.** uint8 pixels become floats in [0, 1], then each channel c is standardised
   with the training split's statistics: ``x = (pixels / 255 - mean[c]) / std[c]``
   (``channel_stats`` computes mean and std; the trainer stores them in the checkpoint).
3. **Prefetching.** A thread fills a small queue (``prefetch`` batches) while the main thread
   trains. The thread does NumPy work only -- indexing, ``astype``, multiply-add -- which releases
   the GIL, so it runs while the main thread waits in BLAS. It never calls minialex ops or Numba
   kernels: Numba's default "workqueue" threading layer aborts the process when two threads launch
   parallel kernels at once.

Notation: N images, C channels, H x W pixels, B images per batch.
"""

from __future__ import annotations

import functools
import queue
import threading

import numpy as np

__all__ = ["DataLoader", "channel_stats", "epoch_order"]


def channel_stats(images: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 ``images`` (N, C, H, W), as floats in the
    [0, 1] scale (pixel / 255). Computed in float64, chunk by chunk, so it is exact enough and
    never allocates a float copy of the whole data set."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"channel_stats: expected images (N, C, H, W) with N >= 1, got shape {images.shape}")
    N, C = images.shape[:2]
    total = np.zeros(C)
    total_sq = np.zeros(C)
    for n0 in range(0, N, chunk):
        block = images[n0:n0 + chunk].astype(np.float64) / 255.0          # (b, C, H, W)
        total += block.sum(axis=(0, 2, 3))
        total_sq += (block * block).sum(axis=(0, 2, 3))
    count = N * images.shape[2] * images.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0                                                  # a constant channel: leave it
    return mean, std


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the ``n`` samples: a function of (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


class DataLoader:
    """Mini-batches of normalised images and their labels.

    Args:
        images: uint8 (N, C, H, W).   labels: integer (N,).
        batch_size: images per batch; the last batch of an epoch may be smaller.
        mean, std: per-channel statistics in the [0, 1] scale (default: 0 and 1, no standardising).
        dtype: float dtype of the batches (float32 or float64).
        shuffle: visit the samples in a new random order each epoch (training) or in order (evaluation).
        seed: with the epoch number, fixes each epoch's order.
        prefetch: how many batches the background thread prepares ahead (0: no thread).
        transform: None, or ``transform(images, index, epoch)`` -> float pixels (0-255) of the samples
            ``images[index]`` in epoch ``epoch``: the random crops and flips of ``minialex.data.augment``
            (seeded per sample and epoch, so a resumed run sees the same), or the evaluation crops,
            (B, C, S, S) or (B, crops, C, S, S). NumPy only: it runs in the background thread.
    """

    def __init__(self, images, labels, batch_size, mean=None, std=None, dtype=np.float32, shuffle=False,
                 seed=0, prefetch=2, transform=None):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"DataLoader: expected images (N, C, H, W) and labels (N,), got {images.shape} "
                             f"and {np.shape(labels)}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed, self.prefetch = int(batch_size), shuffle, int(seed), int(prefetch)
        self.dtype = np.dtype(dtype)
        self.transform = transform
        C = images.shape[1]
        mean = np.zeros(C) if mean is None else np.asarray(mean, dtype=np.float64)
        std = np.ones(C) if std is None else np.asarray(std, dtype=np.float64)
        # x = (pixel / 255 - mean) / std = pixel * scale + shift, per channel, shape (1, C, 1, 1)
        self.scale = (1.0 / (255.0 * std)).astype(self.dtype).reshape(1, C, 1, 1)
        self.shift = (-mean / std).astype(self.dtype).reshape(1, C, 1, 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.images) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.images)

    def batch(self, index: np.ndarray, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The normalised images and labels at ``index`` (NumPy only: safe in any thread)."""
        if self.transform is None:
            x = self.images[index].astype(self.dtype)                        # (B, C, H, W)
        else:
            x = self.transform(self.images, index, epoch).astype(self.dtype, copy=False)   # (B, [crops,] C, S, S)
        x *= self.scale
        x += self.shift
        return x, self.labels[index]

    def epoch(self, epoch: int = 0, start: int = 0):
        """Iterate over the batches of epoch ``epoch``, beginning at batch ``start`` (to resume in
        the middle of an epoch). Yields (x, y)."""
        order = epoch_order(len(self.images), self.seed, epoch, self.shuffle)
        indices = [order[i:i + self.batch_size] for i in range(start * self.batch_size, len(order), self.batch_size)]
        make_batch = functools.partial(self.batch, epoch=epoch)
        if self.prefetch <= 0:
            for index in indices:
                yield make_batch(index)
            return
        yield from _prefetched(make_batch, indices, self.prefetch)

    def __iter__(self):
        return self.epoch(0)


_DONE = object()


def _prefetched(make_batch, indices, depth):
    """Run ``make_batch`` over ``indices`` in a background thread, at most ``depth`` batches ahead.

    The consumer may stop early (break, an exception, Ctrl-C): ``stop`` is then set and the thread
    exits at its next ``put`` attempt, so no thread outlives the loop for long.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for index in indices:
                item = make_batch(index)
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item = _DONE
        except BaseException as err:  # hand the error to the consumer
            item = err
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="minialex-loader", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
