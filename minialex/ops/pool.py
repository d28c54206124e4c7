"""Max pooling, average pooling and adaptive average pooling (NCHW), PyTorch's semantics.

Notation as in minialex/backend/numpy_ref.py. Output size along H (W likewise):
    OH = floor_or_ceil((H + 2*PH - DH*(KH-1) - 1) / SH) + 1
and in ceil_mode the last window is dropped if it would start in the right padding.

Max pooling: y = max over the window. Backward: the whole gradient of an output goes to the one
input element that won its window. With overlapping windows (AlexNet's 3x3, stride 2) an element can
win several windows and receives the sum. Ties go to the first maximum in the window, scanning row by
row (PyTorch's rule), so exactly one element per window gets the gradient.

Average pooling: y = sum over the window / divisor. Backward spreads gy / divisor evenly.
"""

from __future__ import annotations

import numpy as np

from minialex import backend
from minialex.ops._args import check_4d, output_size, pair
from minialex.tensor import Function


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, where):
    """Validate PyTorch's pooling arguments; returns (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)."""
    N, C, H, W = check_4d(x, None, where)
    KH, KW = pair(kernel_size, "kernel_size", where, 1)
    SH, SW = pair(stride if stride is not None and stride != [] else (KH, KW), "stride", where, 1)
    PH, PW = pair(padding, "padding", where, 0)
    DH, DW = pair(dilation, "dilation", where, 1)
    if PH > KH // 2 or PW > KW // 2:
        raise ValueError(f"{where}: padding {(PH, PW)} must be at most half the kernel size {(KH, KW)}")
    OH = output_size(H, KH, SH, PH, DH, ceil_mode, where, "H")
    OW = output_size(W, KW, SW, PW, DW, ceil_mode, where, "W")
    return KH, KW, SH, SW, PH, PW, DH, DW, OH, OW


class MaxPool2d(Function):
    def forward(self, x, geometry):
        KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geometry
        xp, K = backend.xp_of(x), backend.kernels_for(x)
        N, C = x.shape[:2]
        y = xp.empty((N, C, OH, OW), dtype=x.dtype)
        argmax = xp.empty((N, C, OH, OW), dtype=np.int32)  # flat index h*W + w in the (n, c) plane
        K.maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax)
        self.save(argmax=argmax)
        self.x_shape, self.geometry = x.shape, geometry
        return y

    def backward(self, gy):
        # grad wrt x: each output's gradient goes to its window's winner
        gx = backend.xp_of(gy).empty(self.x_shape, dtype=gy.dtype)
        backend.kernels_for(gy).maxpool2d_backward(gy, self.saved["argmax"], *self.geometry[:8], gx)
        return gx


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling as ``torch.nn.functional.max_pool2d``. Gradient ties: the first maximum in the
    window (row-major order) receives the gradient."""
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode,
                       where=f"max_pool2d(kernel_size={kernel_size!r})")


def _max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, where):
    geometry = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, where)
    return MaxPool2d.apply(x, geometry=geometry)


class AvgPool2d(Function):
    def forward(self, x, geometry, count_include_pad):
        KH, KW, SH, SW, PH, PW, _, _, OH, OW = geometry
        N, C = x.shape[:2]
        y = backend.xp_of(x).empty((N, C, OH, OW), dtype=x.dtype)
        backend.kernels_for(x).avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, y)
        self.geometry, self.count_include_pad, self.x_shape = geometry, count_include_pad, x.shape
        return y

    def backward(self, gy):
        # grad wrt x: gy / divisor spread evenly over each window
        KH, KW, SH, SW, PH, PW = self.geometry[:6]
        gx = backend.xp_of(gy).empty(self.x_shape, dtype=gy.dtype)
        backend.kernels_for(gy).avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, self.count_include_pad, gx)
        return gx


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling as ``torch.nn.functional.avg_pool2d``. ``count_include_pad`` counts the zero
    padding in the divisor; the part of a ceil_mode window beyond the padding never counts."""
    return _avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       where=f"avg_pool2d(kernel_size={kernel_size!r})")


def _avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, where):
    geometry = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, where)
    return AvgPool2d.apply(x, geometry=geometry, count_include_pad=bool(count_include_pad))


# =============================================================================================
# Adaptive average pooling
# =============================================================================================
#
# Output bin i along H (of OH) averages rows [floor(i*H/OH), ceil((i+1)*H/OH)): PyTorch's bins.
# They cover the input exactly when OH divides H, overlap by a row otherwise, and repeat rows when
# OH > H. Few bins (AlexNet: 6x6), each a plain mean over a slice: no kernel needed.


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """[(start, end)] of each of the ``out`` bins over ``size`` elements."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    def forward(self, x, output_size):
        N, C, H, W = x.shape
        OH, OW = output_size
        self.rows, self.cols, self.x_shape = adaptive_bins(H, OH), adaptive_bins(W, OW), x.shape
        y = backend.xp_of(x).empty((N, C, OH, OW), dtype=x.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y

    def backward(self, gy):
        # grad wrt x: each bin's gradient spread evenly over its rows and columns
        gx = backend.xp_of(gy).zeros(self.x_shape, dtype=gy.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                gx[:, :, h0:h1, w0:w1] += (gy[:, :, i, j] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
        return gx


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int or pair; None in a pair keeps that input size),
    as ``torch.nn.functional.adaptive_avg_pool2d``."""
    return _adaptive_avg_pool2d(input, output_size, where=f"adaptive_avg_pool2d(output_size={output_size!r})")


def _adaptive_avg_pool2d(x, output_size, where):
    N, C, H, W = check_4d(x, None, where)
    if isinstance(output_size, (list, tuple)) and len(output_size) == 2:
        output_size = (H if output_size[0] is None else output_size[0], W if output_size[1] is None else output_size[1])
    OH, OW = pair(output_size, "output_size", where, 1)
    if H < 1 or W < 1:
        raise ValueError(f"{where}: input must have H, W >= 1, got {tuple(x.shape)}")
    return AdaptiveAvgPool2d.apply(x, output_size=(OH, OW))
