"""2-D convolution by im2col + GEMM, exactly as Caffe computes it.

Notation (see minialex/backend/numpy_ref.py): x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC,),
y (N, OC, OH, OW); G groups, each seeing C/G input channels and producing OC/G output channels.

Forward, for the whole batch (or one chunk of it) and each group g -- one GEMM per group:
    cols     = im2col(x)                          (C*KH*KW, N*OH*OW)
    y[g]     = weight[g] @ cols[g]                (OC/G, C/G*KH*KW) @ (C/G*KH*KW, N*OH*OW)
and y, ordered (OC, N, OH*OW), is transposed to NCHW. Backward, with gy transposed the same way:
    grad wrt weight[g] = gy[g] @ cols[g]^T        (OC/G, N*OH*OW) @ (N*OH*OW, C/G*KH*KW)
    grad wrt x         = col2im(weight^T @ gy)
    grad wrt bias[o]   = sum of gy[:, o]
Each ``@`` above is a call of the array module's ``xp.matmul`` (BLAS, or cuBLAS on the GPU).

The batch is processed in chunks so that the im2col buffer never exceeds ``im2col_budget`` bytes.
The columns are kept for backward when the whole batch fits in one chunk, and recomputed chunk by
chunk in backward otherwise (an im2col costs far less than the GEMM it feeds).

The default budget, 32 MiB, is small on purpose: small chunks are faster as well as lighter, because a
chunk's input and columns are still in the CPU's cache when the GEMM reads them. Measured on 2 cores
(before the scratch buffers below), torchvision AlexNet at batch 64, forward+backward of each conv
layer: conv1 922 ms with 32 MiB chunks against 1712 ms with 256 MiB, conv2 1390 against 1964, conv4
975 against 1050. (conv3, whose 75 MB of columns fit one 256 MiB chunk and are kept, lost: 771
against 629.)

A chunk's temporaries (its columns, its GEMM output, the transposed gradient) live in scratch
buffers that every conv layer reuses, allocated once (``_scratch``). Fresh memory is not free: the OS
maps and zeroes it page by page on first touch, and a fresh 32 MiB buffer cost 25-40 ms where the
im2col writing it took 2-4 ms.

Two convolutions live here, and a test checks that they agree:
* ``conv2d``: the fused op, forward and backward written by hand (what the layers use);
* ``conv2d_composed``: a differentiable ``Im2col`` followed by ``@``, whose gradient autograd derives.
"""

from __future__ import annotations

import math

from minialex import backend
from minialex.ops._args import check_4d, output_size, pair
from minialex.ops.basic import Pad
from minialex.tensor import Function

_im2col_budget = 32 * 2**20  # bytes; why so small: see the top of this file


_scratch_buffers = {}  # (purpose, array module, dtype) -> a flat buffer, grown when a chunk needs more


def set_im2col_budget(nbytes: int):
    """Cap the im2col buffer of one chunk at ``nbytes`` (default 32 MiB); at least one image is
    always processed at a time. Also frees the scratch buffers sized for the old budget."""
    global _im2col_budget
    if nbytes <= 0:
        raise ValueError(f"set_im2col_budget: expected a positive number of bytes, got {nbytes}")
    _im2col_budget = int(nbytes)
    _scratch_buffers.clear()


def get_im2col_budget() -> int:
    return _im2col_budget


def _scratch(purpose, shape, like):
    """A buffer of ``shape`` and ``like``'s dtype for one chunk's temporary, reused from call to call:
    its contents are overwritten by the next conv layer. Never hand one out beyond the op."""
    xp = backend.xp_of(like)
    key = (purpose, xp.__name__, like.dtype.str)
    size = math.prod(shape)
    buffer = _scratch_buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = _scratch_buffers[key] = xp.empty(size, dtype=like.dtype)
    return buffer[:size].reshape(shape)


class Conv2d(Function):
    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        N, C, H, W = x.shape
        OC, Cg, KH, KW = weight.shape
        G = groups
        (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        self.geometry = (KH, KW, SH, SW, PH, PW, DH, DW)
        self.shapes = (N, C, H, W, OC, G, OH, OW)
        xp, K = backend.xp_of(x), backend.kernels_for(x)

        w = weight.reshape(G, OC // G, Cg * KH * KW)                  # (G, OC/G, C/G*KH*KW)
        y = xp.empty((N, OC, OH * OW), dtype=x.dtype)                  # (N, OC, OH*OW)
        chunk = self._images_per_chunk(x.dtype.itemsize)
        keep = chunk >= N  # one chunk: its columns are kept for backward, in a buffer of their own
        for n0 in range(0, N, chunk):
            n = min(N, n0 + chunk) - n0
            cols = self._columns(x[n0:n0 + n], reuse=not keep)         # (C*KH*KW, n*OH*OW)
            y_groups = xp.matmul(w, cols.reshape(G, Cg * KH * KW, n * OH * OW),
                                 out=_scratch("y", (G, OC // G, n * OH * OW), x))  # (G, OC/G, n*OH*OW)
            y[n0:n0 + n] = y_groups.reshape(OC, n, OH * OW).transpose(1, 0, 2)  # (n, OC, OH*OW)
        if bias is not None:
            K.bias_add(y, bias)
        self.save(x=x, weight=weight, cols=cols if keep else None)
        self.has_bias = bias is not None
        return y.reshape(N, OC, OH, OW)

    def _images_per_chunk(self, itemsize):
        N, C, H, W, OC, G, OH, OW = self.shapes
        KH, KW = self.geometry[:2]
        bytes_per_image = C * KH * KW * OH * OW * itemsize
        return max(1, min(N, _im2col_budget // bytes_per_image))

    def _columns(self, x, reuse):
        """im2col of a chunk of images, into the scratch buffer if ``reuse``, else a fresh one."""
        n, C = x.shape[:2]
        KH, KW = self.geometry[:2]
        OH, OW = self.shapes[6:]
        shape = (C * KH * KW, n * OH * OW)                             # (C*KH*KW, n*OH*OW)
        cols = _scratch("cols", shape, x) if reuse else backend.xp_of(x).empty(shape, dtype=x.dtype)
        backend.kernels_for(x).im2col(x, *self.geometry, cols)
        return cols

    def backward(self, gy):
        x, weight, kept_cols = self.saved["x"], self.saved["weight"], self.saved["cols"]
        N, C, H, W, OC, G, OH, OW = self.shapes
        KH, KW = self.geometry[:2]
        Cg = C // G
        xp, K = backend.xp_of(gy), backend.kernels_for(gy)
        need_x, need_w, need_b = self.needs_input_grad
        gy = gy.reshape(N, OC, OH * OW)                               # (N, OC, OH*OW)
        w = weight.reshape(G, OC // G, Cg * KH * KW)                  # (G, OC/G, C/G*KH*KW)
        wT = xp.swapaxes(w, 1, 2)                                     # (G, C/G*KH*KW, OC/G)

        gx = xp.empty_like(x) if need_x else None
        gw = xp.zeros((G, OC // G, Cg * KH * KW), dtype=x.dtype) if need_w else None
        chunk = self._images_per_chunk(x.dtype.itemsize)
        for n0 in range(0, N, chunk):
            n = min(N, n0 + chunk) - n0
            gy_groups = _scratch("gy", (OC, n, OH * OW), gy)                  # (OC, n, OH*OW)
            gy_groups[...] = gy[n0:n0 + n].transpose(1, 0, 2)
            gy_groups = gy_groups.reshape(G, OC // G, n * OH * OW)            # (G, OC/G, n*OH*OW)
            if need_w:  # ==== grad wrt weight: gy @ cols^T ====
                cols = kept_cols if kept_cols is not None else self._columns(x[n0:n0 + n], reuse=True)
                cols = cols.reshape(G, Cg * KH * KW, n * OH * OW)         # (G, C/G*KH*KW, n*OH*OW)
                gw += xp.matmul(gy_groups, xp.swapaxes(cols, 1, 2))
            if need_x:  # ==== grad wrt x: col2im of weight^T @ gy ====
                gcols = xp.matmul(wT, gy_groups, out=_scratch("gcols", (G, Cg * KH * KW, n * OH * OW), gy))
                K.col2im(gcols.reshape(C * KH * KW, n * OH * OW), *self.geometry, gx[n0:n0 + n])
        gb = None
        if need_b:  # ==== grad wrt bias ====
            gb = xp.empty((OC,), dtype=gy.dtype)
            K.bias_grad(gy.reshape(N, OC, OH * OW), gb)
        return gx, (gw.reshape(weight.shape) if need_w else None), gb


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of ``input`` (N, C, H, W) with ``weight`` (OC, C/groups, KH, KW), as
    ``torch.nn.functional.conv2d``. ``padding`` is an int, a pair, ``"valid"`` (0) or ``"same"``
    (output as large as the input; stride 1 only; an odd total padding puts the extra row/column at
    the bottom/right, as PyTorch does)."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups,
                   where=f"conv2d(weight {tuple(weight.shape)})")


def _conv2d(input, weight, bias, stride, padding, dilation, groups, where):
    x, (SH, SW), (PH, PW), dilation = _check_conv_args(input, weight, bias, stride, padding, dilation,
                                                       groups, where)
    return Conv2d.apply(x, weight, bias, stride=(SH, SW), padding=(PH, PW), dilation=dilation, groups=groups)


def _check_conv_args(x, weight, bias, stride, padding, dilation, groups, where):
    """Validate and normalize; returns (x, possibly pre-padded for 'same', stride, padding, dilation)."""
    if weight.ndim != 4:
        raise ValueError(f"{where}: weight must be (OC, C/groups, KH, KW), got {weight.shape}")
    OC, Cg, KH, KW = weight.shape
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or OC % groups:
        raise ValueError(f"{where}: groups must be a positive int dividing out_channels={OC}, got {groups!r}")
    N, C, H, W = check_4d(x, Cg * groups, where)
    if bias is not None and tuple(bias.shape) != (OC,):
        raise ValueError(f"{where}: bias must have shape ({OC},), got {bias.shape}")
    stride = pair(stride, "stride", where, 1)
    dilation = pair(dilation, "dilation", where, 1)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{where}: padding='same' needs stride 1, got stride={stride}; "
                                 "give the padding as numbers instead")
            totals = (dilation[0] * (KH - 1), dilation[1] * (KW - 1))
            if totals[0] % 2 or totals[1] % 2:  # asymmetric: the extra row/column goes bottom/right
                x = Pad.apply(x, pads=((0, 0), (0, 0), (0, totals[0] % 2), (0, totals[1] % 2)))
            padding = (totals[0] // 2, totals[1] // 2)
        else:
            raise ValueError(f"{where}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    padding = pair(padding, "padding", where, 0)
    H, W = x.shape[2:]
    output_size(H, KH, stride[0], padding[0], dilation[0], False, where, "H")
    output_size(W, KW, stride[1], padding[1], dilation[1], False, where, "W")
    return x, stride, padding, dilation


# =============================================================================================
# The teaching twin: convolution composed of a differentiable im2col and a matrix product
# =============================================================================================


class Im2col(Function):
    """cols = im2col(x); its backward is col2im: the two are each other's transpose."""

    def forward(self, x, kernel_size, stride, padding, dilation):
        N, C, H, W = x.shape
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel_size, stride, padding, dilation
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        self.geometry, self.x_shape = (KH, KW, SH, SW, PH, PW, DH, DW), x.shape
        cols = backend.xp_of(x).empty((C * KH * KW, N * OH * OW), dtype=x.dtype)  # (C*KH*KW, N*OH*OW)
        backend.kernels_for(x).im2col(x, *self.geometry, cols)
        return cols

    def backward(self, gcols):
        gx = backend.xp_of(gcols).empty(self.x_shape, dtype=gcols.dtype)  # (N, C, H, W)
        backend.kernels_for(gcols).col2im(gcols, *self.geometry, gx)
        return gx


def conv2d_composed(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The same convolution as ``conv2d``, built from ``Im2col`` and ``@``: autograd derives its
    backward. Slower and hungrier for memory (no chunking); here to be read and compared."""
    where = f"conv2d_composed(weight {tuple(weight.shape)})"
    x, stride, padding, dilation = _check_conv_args(input, weight, bias, stride, padding, dilation, groups, where)
    N, C, H, W = x.shape
    OC, Cg, KH, KW = weight.shape
    G = groups
    cols = Im2col.apply(x, kernel_size=(KH, KW), stride=stride, padding=padding, dilation=dilation)
    P = cols.shape[1] // N                                     # OH*OW
    cols = cols.reshape(G, Cg * KH * KW, N * P)                # (G, C/G*KH*KW, N*OH*OW)
    w = weight.reshape(G, OC // G, Cg * KH * KW)               # (G, OC/G, C/G*KH*KW)
    y = w @ cols                                               # (G, OC/G, N*OH*OW)
    y = y.reshape(OC, N, P).transpose(1, 0, 2)                 # (N, OC, OH*OW)
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    y = y.reshape(N, OC, OH, P // OH)                          # (N, OC, OH, OW)
    if bias is not None:
        y = y + bias.reshape(1, OC, 1, 1)
    return y
