"""Softmax cross-entropy with integer class targets, as ``torch.nn.functional.cross_entropy``.

    loss[n] = -log softmax(logits[n])[target[n]]          (computed stably, see numpy_ref)
    grad wrt logits[n] = (softmax(logits[n]) - onehot(target[n])) * gloss[n]
reduced by ``reduction``: 'mean' over the batch (default), 'sum', or 'none'.
"""

from __future__ import annotations

import numpy as np

from minialex import backend
from minialex.tensor import Function, Tensor


class SoftmaxCrossEntropy(Function):
    def forward(self, logits, target):
        xp, K = backend.xp_of(logits), backend.kernels_for(logits)
        logits = xp.ascontiguousarray(logits)
        loss = xp.empty((logits.shape[0],), dtype=logits.dtype)
        probs = xp.empty_like(logits)
        K.softmax_xent_forward(logits, target, loss, probs)
        self.save(probs=probs, target=target)
        return loss

    def backward(self, gloss):
        # grad wrt logits
        probs, target = self.saved["probs"], self.saved["target"]
        glogits = backend.xp_of(probs).empty_like(probs)
        backend.kernels_for(probs).softmax_xent_backward(probs, target, gloss, glogits)
        return glogits, None


def cross_entropy(input, target, reduction="mean"):
    """Cross-entropy of ``input`` logits (N, K) against integer ``target`` classes (N,)."""
    target_data = target.data if isinstance(target, Tensor) else target
    target_data = backend.xp_of(input.data).asarray(target_data)
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits (N, K), got {input.shape}")
    if target_data.shape != (input.shape[0],) or target_data.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: expected integer targets of shape ({input.shape[0]},), "
                         f"got {target_data.dtype} {tuple(target_data.shape)}")
    classes = input.shape[1]
    if target_data.size and (int(target_data.min()) < 0 or int(target_data.max()) >= classes):
        raise ValueError(f"cross_entropy: targets must be class indices in [0, {classes}), "
                         f"got values in [{int(target_data.min())}, {int(target_data.max())}]")
    losses = SoftmaxCrossEntropy.apply(input, target_data.astype(np.int64, copy=False))
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
