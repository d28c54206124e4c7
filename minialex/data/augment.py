"""Data augmentation as in the AlexNet paper, and the crops used to evaluate.

The paper (section 4.1) fights overfitting with two label-preserving transformations:

1. **Random crops and horizontal flips.** Images are stored at 256x256 and the network sees a
   random 224x224 patch of each, mirrored half of the time. Here the stored side L is
   ``load_size(S, augment)``: S * 256/224 rounded (37 for S = 32), and the crop is S x S.
2. **PCA colour jitter.** Over the training set, the RGB values of all pixels have a 3x3
   covariance with eigenvectors p_i and eigenvalues lambda_i. Each time an image is used, draw
   alpha_i ~ N(0, sigma^2) (sigma = 0.1) and add to every pixel the same colour shift

       shift = [p1 p2 p3] [alpha1 lambda1, alpha2 lambda2, alpha3 lambda3]^T

   so the image's colour changes along the directions in which natural colours vary most (the
   paper: "object identity is invariant to changes in the intensity and color of the
   illumination"). The shift's covariance is sum_i sigma^2 lambda_i^2 p_i p_i^T. Pixels are in the
   [0, 1] scale, as the loader's mean and std.

At test time the paper averages the softmax over **ten crops**: the four corners and the centre,
and their mirrors (``EvalCrops(ten_crop=True)``); the plain evaluation takes the centre crop.

**Randomness per sample, not per stream.** The crop, the flip and alpha of sample i in epoch e are
a hash of (seed, e, i): a *counter-based* generator (like Philox or JAX's keys). There is no state
to save and nothing depends on which samples came before, the batch size or the thread that makes
the batch, so a resumed run augments exactly as an uninterrupted one. The hash is SplitMix64's
mixing function, a few integer multiplications and shifts over whole arrays (NumPy only: safe in
the loader's background thread).

``--augment``: ``none`` (the stored image is the crop), ``flip-crop`` (1.) or ``paper`` (1. and 2.).

Notation: N images, C channels, L x L stored images, S x S crops, B images per batch.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AUGMENTS", "Augment", "EvalCrops", "load_size", "pca_colour", "sample_uniforms", "sample_normals",
           "match_channels", "ten_crop_offsets"]

AUGMENTS = ("none", "flip-crop", "paper")
PAPER_RATIO = 256 / 224       # stored side / crop side in the paper
SIGMA = 0.1                   # the paper's standard deviation of alpha

# SplitMix64 (Steele, Lea, Flood 2014): x -> a well-mixed 64-bit value; wraps modulo 2^64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def sample_uniforms(seed: int, epoch: int, index, k: int) -> np.ndarray:
    """k uniform numbers in [0, 1) for each sample of ``index``: float64 (B, k), a function of
    (seed, epoch, sample index) only."""
    index = np.asarray(index, dtype=np.uint64).reshape(-1)                       # (B,)
    key = _mix(_mix(np.array([seed & (2 ** 64 - 1)], dtype=np.uint64)) ^ np.uint64(epoch & (2 ** 64 - 1)))
    h = _mix(key ^ index)                                                        # (B,)  one key per sample
    counters = np.arange(1, k + 1, dtype=np.uint64) * _GOLDEN                    # (k,)
    bits = _mix(h[:, None] ^ counters[None, :])                                  # (B, k)
    return (bits >> _S11).astype(np.float64) * (1.0 / 2 ** 53)                   # top 53 bits -> [0, 1)


def sample_normals(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Two independent standard normal numbers from each pair of uniforms (Box-Muller):
    (B,), (B,) -> (B, 2)."""
    r = np.sqrt(-2.0 * np.log1p(-u1))                      # log1p(-u) = log(1 - u): finite, as u < 1
    return np.stack([r * np.cos(2.0 * math.pi * u2), r * np.sin(2.0 * math.pi * u2)], axis=1)


def load_size(image_size: int, augment: str = "none") -> int:
    """Side L at which images are stored for crops of ``image_size``: the crop itself without
    augmentation, else the paper's ratio 256/224 (224 -> 256, 32 -> 37)."""
    return int(image_size) if augment == "none" else int(round(image_size * PAPER_RATIO))


def pca_colour(images: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (C,), largest first, and eigenvectors (C, C), one per column, of the covariance
    of the pixel colours of uint8 ``images`` (N, C, H, W), in the [0, 1] scale (float64)."""
    N, C = images.shape[:2]
    total = np.zeros(C)
    outer = np.zeros((C, C))
    count = 0
    for n0 in range(0, N, chunk):
        block = images[n0:n0 + chunk].astype(np.float64) / 255.0               # (b, C, H, W)
        pixels = block.transpose(1, 0, 2, 3).reshape(C, -1)                     # (C, b*H*W)
        total += pixels.sum(axis=1)
        outer += pixels @ pixels.T                                              # (C, C)
        count += pixels.shape[1]
    mean = total / count
    cov = outer / count - np.outer(mean, mean)                                  # E[x x^T] - m m^T
    eigval, eigvec = np.linalg.eigh(cov)                                        # ascending
    order = np.argsort(eigval)[::-1]
    return np.maximum(eigval[order], 0.0), eigvec[:, order]


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Give uint8 ``images`` (N, C, H, W) ``channels`` channels: grey -> colour repeats the
    channel; colour -> grey is the luma of ITU-R BT.601, Y = 0.299 R + 0.587 G + 0.114 B
    (what Pillow's convert("L") computes)."""
    C = images.shape[1]
    if C == channels:
        return images
    if C == 1:
        return np.repeat(images, channels, axis=1)                              # (N, channels, H, W)
    if C == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
        out = np.empty((len(images), 1) + images.shape[2:], dtype=np.uint8)
        for n0 in range(0, len(images), 1024):
            luma = (images[n0:n0 + 1024].astype(np.float32) * weights).sum(axis=1, keepdims=True)
            out[n0:n0 + 1024] = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
        return out
    raise ValueError(f"cannot turn {C}-channel images into {channels}-channel images")


def ten_crop_offsets(L: int, S: int) -> list[tuple[int, int]]:
    """(top, left) of the centre and the four corner crops of S x S in L x L."""
    c = (L - S) // 2
    return [(c, c), (0, 0), (0, L - S), (L - S, 0), (L - S, L - S)]


class Augment:
    """The training transform: uint8 stored images -> float crops, in pixel units (0-255).

    ``augment(images, index, epoch)`` returns float (B, C, S, S) for the samples ``images[index]``;
    the loader then normalises them. ``mode``: "none" (centre crop), "flip-crop", "paper" (with
    PCA colour jitter: pass ``pca=(eigval, eigvec)`` from ``pca_colour``).
    """

    def __init__(self, size: int, mode: str = "flip-crop", pca=None, sigma: float = SIGMA, seed: int = 0,
                 dtype=np.float32):
        if mode not in AUGMENTS:
            raise ValueError(f"Augment: unknown mode {mode!r}; choose one of {', '.join(AUGMENTS)}")
        if mode == "paper" and (pca is None or len(pca[0]) > 4):
            raise ValueError("Augment: mode 'paper' needs pca=(eigval, eigvec) of at most 4 channels "
                             "(see pca_colour)")
        self.size, self.mode, self.sigma, self.seed = int(size), mode, float(sigma), int(seed)
        self.dtype = np.dtype(dtype)
        self.eigval = None if pca is None else np.asarray(pca[0], dtype=np.float64)
        self.eigvec = None if pca is None else np.asarray(pca[1], dtype=np.float64)

    def params(self, index, epoch: int, L: int):
        """The random choices for the samples ``index``: top (B,), left (B,), flip (B,) bool, and
        alpha (B, C) (None without colour jitter)."""
        S = self.size
        u = sample_uniforms(self.seed, epoch, index, 7)                          # (B, 7)
        if self.mode == "none":
            c = (L - S) // 2
            B = len(u)
            return np.full(B, c), np.full(B, c), np.zeros(B, dtype=bool), None
        top = np.minimum((u[:, 0] * (L - S + 1)).astype(np.int64), L - S)        # uniform in 0..L-S
        left = np.minimum((u[:, 1] * (L - S + 1)).astype(np.int64), L - S)
        flip = u[:, 2] < 0.5
        alpha = None
        if self.mode == "paper":
            C = len(self.eigval)
            z = np.concatenate([sample_normals(u[:, 3], u[:, 4]), sample_normals(u[:, 5], u[:, 6])], axis=1)
            alpha = self.sigma * z[:, :C]                                        # (B, C), C <= 4
        return top, left, flip, alpha

    def colour_shift(self, alpha: np.ndarray) -> np.ndarray:
        """The paper's shift per image, (B, C) in the [0, 1] scale: eigvec @ (alpha * eigval)."""
        weighted = alpha * self.eigval[None, :]                                  # (B, C): alpha_i lambda_i
        # sum_i p_i alpha_i lambda_i, written out (no BLAS call from the loader's thread)
        return (self.eigvec[None, :, :] * weighted[:, None, :]).sum(axis=2)     # (B, C)

    def __call__(self, images: np.ndarray, index, epoch: int) -> np.ndarray:
        index = np.asarray(index).reshape(-1)
        L, S = images.shape[-1], self.size
        if L < S:
            raise ValueError(f"Augment: the images are {L}x{L}, smaller than the {S}x{S} crop")
        top, left, flip, alpha = self.params(index, epoch, L)
        out = np.empty((len(index), images.shape[1], S, S), dtype=self.dtype)    # (B, C, S, S)
        for j, i in enumerate(index):
            crop = images[i, :, top[j]:top[j] + S, left[j]:left[j] + S]          # (C, S, S), a view
            out[j] = crop[:, :, ::-1] if flip[j] else crop
        if alpha is not None:
            shift = (255.0 * self.colour_shift(alpha)).astype(self.dtype)        # (B, C), pixel units
            out += shift[:, :, None, None]
        return out


class EvalCrops:
    """The evaluation transform: the centre S x S crop (B, C, S, S), or with ``ten_crop`` the ten
    crops of the paper (B, 10, C, S, S): centre, top-left, top-right, bottom-left, bottom-right,
    then the same five mirrored. When the stored images are no larger than the crop, the ten
    crops are five copies of the image and five of its mirror."""

    def __init__(self, size: int, ten_crop: bool = False, dtype=np.float32):
        self.size, self.ten_crop, self.dtype = int(size), bool(ten_crop), np.dtype(dtype)

    def __call__(self, images: np.ndarray, index, epoch: int = 0) -> np.ndarray:
        index = np.asarray(index).reshape(-1)
        L, S = images.shape[-1], self.size
        if L < S:
            raise ValueError(f"EvalCrops: the images are {L}x{L}, smaller than the {S}x{S} crop")
        batch = images[index]                                                     # (B, C, L, L)
        offsets = ten_crop_offsets(L, S)
        if not self.ten_crop:
            top, left = offsets[0]
            return batch[:, :, top:top + S, left:left + S].astype(self.dtype)
        crops = [batch[:, :, t:t + S, l:l + S] for t, l in offsets]              # 5 x (B, C, S, S)
        crops += [c[:, :, :, ::-1] for c in crops]                                # and their mirrors
        return np.stack(crops, axis=1).astype(self.dtype)                         # (B, 10, C, S, S)
