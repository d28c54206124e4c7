"""Fully connected layer: y = x @ weight^T + bias, weight (out, in) as in PyTorch.

x may be (N, in) or (N, ..., in); the leading axes are flattened for the GEMM.
    grad wrt x      = gy @ weight                 (M, out) @ (out, in)
    grad wrt weight = gy^T @ x                    (out, M) @ (M, in)
    grad wrt bias   = sum of gy over the rows
"""

from __future__ import annotations

from minialex import backend
from minialex.tensor import Function


class Linear(Function):
    def forward(self, x, weight, bias):
        x2 = x.reshape(-1, x.shape[-1])                       # (M, in), M = product of leading axes
        y = backend.xp_of(x).matmul(x2, weight.T)              # (M, out)
        if bias is not None:
            backend.kernels_for(x).bias_add(y.reshape(y.shape[0], -1, 1), bias)
        self.save(x2=x2, weight=weight)
        self.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, gy):
        x2, weight = self.saved["x2"], self.saved["weight"]
        gy2 = gy.reshape(-1, weight.shape[0])                  # (M, out)
        need_x, need_w, need_b = self.needs_input_grad
        xp = backend.xp_of(gy)
        gx = xp.matmul(gy2, weight).reshape(self.x_shape) if need_x else None   # grad wrt x
        gw = xp.matmul(gy2.T, x2) if need_w else None                            # grad wrt weight
        gb = None
        if need_b:                                                       # grad wrt bias
            gb = xp.empty((weight.shape[0],), dtype=gy.dtype)
            backend.kernels_for(gy).bias_grad(gy2.reshape(gy2.shape[0], -1, 1), gb)
        return gx, gw, gb


def linear(input, weight, bias=None):
    """input @ weight^T + bias, as ``torch.nn.functional.linear``."""
    return _linear(input, weight, bias, where=f"linear(weight {tuple(weight.shape)})")


def _linear(x, weight, bias, where):
    if weight.ndim != 2:
        raise ValueError(f"{where}: weight must be (out_features, in_features), got {weight.shape}")
    out_features, in_features = weight.shape
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{where}: expected input (N, {in_features}), got {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise ValueError(f"{where}: bias must have shape ({out_features},), got {bias.shape}")
    return Linear.apply(x, weight, bias)
