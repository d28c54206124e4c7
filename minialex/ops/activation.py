"""ReLU and dropout.

ReLU: y = max(x, 0); grad wrt x = gy where y > 0, else 0 (0 at x == 0, as PyTorch).

Dropout (inverted, as PyTorch): in training each element is kept with probability 1 - p and scaled
by 1 / (1 - p), so evaluation needs no change: y = x * mask / (1 - p); grad wrt x = gy * mask / (1 - p).
The mask comes from a counter-based generator (Philox-4x32-10, see numpy_ref.dropout_mask): element i
is decided by (seed, i) alone, so every backend draws the same mask for the same seed. The seed is
drawn from minialex's global generator (``minialex.manual_seed``) unless given.
"""

from __future__ import annotations

import numpy as np

from minialex import backend, random
from minialex.tensor import Function


class ReLU(Function):
    def forward(self, x):
        y = backend.xp_of(x).empty_like(x)
        backend.kernels_for(x).relu_forward(x, y)
        self.save(y=y)
        return y

    def backward(self, gy):
        # grad wrt x
        gx = backend.xp_of(gy).empty_like(gy)
        backend.kernels_for(gy).relu_backward(gy, self.saved["y"], gx)
        return gx


def relu(input):
    """max(input, 0), elementwise."""
    return ReLU.apply(input)


class Dropout(Function):
    def forward(self, x, p, seed):
        xp, K = backend.xp_of(x), backend.kernels_for(x)
        x = xp.ascontiguousarray(x)
        mask = xp.empty(x.shape, dtype=np.uint8)
        K.dropout_mask(seed, 0, p, mask.reshape(-1))
        self.scale = x.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
        y = xp.empty_like(x)
        K.dropout_apply(x, mask, self.scale, y)
        self.save(mask=mask)
        return y

    def backward(self, gy):
        # grad wrt x: the same mask and scale
        gx = backend.xp_of(gy).empty_like(gy)
        backend.kernels_for(gy).dropout_apply(gy, self.saved["mask"], self.scale, gx)
        return gx


def dropout(input, p=0.5, training=True, seed=None):
    """Inverted dropout, as ``torch.nn.functional.dropout``. ``seed`` fixes the mask (any int in
    [0, 2**64)); by default a fresh seed is drawn from ``minialex.manual_seed``'s generator."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return input
    seed = random.next_seed() if seed is None else int(seed)
    return Dropout.apply(input, p=float(p), seed=seed)
