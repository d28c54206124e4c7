"""The kernels of minialex compiled by Numba for the CPU: the same names and arguments as numpy_ref.py.

Read numpy_ref.py first: it is the interface and the formula of every kernel. Here each kernel is the
same formula written as plain loops (one output element at a time, as in C or CUDA), compiled to
machine code by Numba's ``@njit``. Heavy kernels use ``prange`` to spread one outer loop over the CPU
cores; every ``prange`` runs over an axis whose iterations write disjoint parts of the output (one
image, one (image, channel) plane, one row of ``cols``), so no two threads ever write the same element.

Each public kernel is a thin Python wrapper around a compiled loop ``_name``. The wrapper
* passes C-contiguous inputs (a copy only when they are not) and a C-contiguous output (the caller's
  buffer, or a scratch array copied back into it), so each loop is compiled once per dtype (float32,
  float64), not once per memory layout;
* casts float hyper-parameters and constants to the data's dtype (``x.dtype.type(alpha / size)``):
  inside Numba a Python float is a float64, and ``x * 0.5`` would compute a float32 ``x`` in float64.

Notation (as in numpy_ref.py):

    N   batch size              C   channels          H, W    input height, width
    KH, KW  kernel size         SH, SW  stride        PH, PW  zero padding   DH, DW  dilation
    OH, OW  output height, width:  OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1
    K   number of classes (cross-entropy)   L  flattened spatial size

Compilation: a kernel is compiled the first time it is called with a new dtype: 0.2 to 0.5 s, and
1.5 to 2.5 s with ``parallel=True`` (so only the heavy kernels are parallel); all of them, in both
dtypes, about 33 s. ``cache=True`` stores the machine code next to this file
(``__pycache__/numba_cpu.*.nbi/.nbc``): later processes load all of them in about 1 s. The cache
sees changes to this file only. ``error_model="numpy"``: a division by zero gives inf or nan, as in
NumPy, instead of raising. ``NUMBA_DISABLE_JIT=1`` runs the loops as plain Python, to step through
them in a debugger (about 1000x slower: use tiny shapes). pip's Numba may only have the ``workqueue`` threading layer,
which aborts if two Python threads call parallel kernels at once: call them from one thread.
"""

from __future__ import annotations

import os

# OpenMP's worker threads spin after each parallel loop, waiting for the next one. On a machine
# whose cores are busy (a shared CI runner, other processes) the spinning thread takes the core the
# Python thread needs, and a kernel call of 10 us took 1 to 8 ms here (the test suite ran 2.3x
# slower). Sleeping costs about 10 us per call instead. A user's own setting is kept; this must be
# set before Numba starts its threads (its first parallel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from minialex.backend.numpy_ref import (KERNELS, MASK32, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1,  # noqa: F401
                                        _avgpool_divisor, dropout_threshold)

xp = np          # the array module this backend computes with
DEVICE = "cpu"


# ---------------------------------------------------------------------------------------------
# Helpers of the wrappers: contiguous inputs, contiguous outputs
# ---------------------------------------------------------------------------------------------


def _contiguous(array):
    """``array`` itself if C-contiguous, else a C-contiguous copy (read-only use)."""
    return np.ascontiguousarray(array)


def _scratch(out):
    """A C-contiguous buffer to compute ``out`` into: ``out`` itself if it is one."""
    return out if out.flags.c_contiguous else np.empty(out.shape, dtype=out.dtype)


def _copy_back(out, buffer):
    """Finish ``_scratch``: copy the result into ``out`` if it was computed elsewhere."""
    if buffer is not out:
        out[...] = buffer


# =============================================================================================
# Convolution: im2col / col2im
# =============================================================================================
#
#   cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
# (zero where the index falls in the padding): Caffe's loop, with the batch along the columns so that
# one GEMM convolves the whole batch. Loop mapping: prange over the C*KH*KW rows; row (c, kh, kw) is
# one tap of every window, written start to end by one thread (writing rows whole, rather than a
# plane's KH*KW scattered pieces of rows, was 1.5x faster on AlexNet's conv1).
#
# Two things make these loops fast, and both are about the innermost loop (over ow):
# * the bounds test is hoisted out of it: for each tap (kh, kw), ``_inside`` gives the output rows
#   and columns whose pixel lies inside the input; the others are padding;
# * every array index is unsigned (``_u``). A signed index may be negative, and Numba then adds
#   Python's a[-1] rule (add the length) to each access; with unsigned indices the inner loop is a
#   plain strided copy that LLVM vectorizes. This alone made im2col 2x and col2im 2-2.5x faster.


_u = np.uint64  # an array index that Numba knows is not negative (see above)


@njit(cache=True, inline="always")
def _inside(offset, stride, size, count):
    """[lo, hi): the outputs o in [0, count) for which o*stride + offset lies in [0, size)."""
    lo = 0 if offset >= 0 else (stride - 1 - offset) // stride
    hi = min(count, (size - offset + stride - 1) // stride) if size > offset else 0
    return lo, max(lo, hi)


@njit(cache=True, parallel=True, error_model="numpy")
def _im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, cols):
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    for row in prange(C * KH * KW):
        c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
        h_off, w_off = kh * DH - PH, kw * DW - PW            # h = oh*SH + h_off, w = ow*SW + w_off
        oh_lo, oh_hi = _inside(h_off, SH, H, OH)
        ow_lo, ow_hi = _inside(w_off, SW, W, OW)
        r = _u(row)
        for n in range(N):
            for oh in range(OH):
                col = (n * OH + oh) * OW
                if oh_lo <= oh < oh_hi:
                    h = _u(oh * SH + h_off)
                    for ow in range(ow_lo):
                        cols[r, _u(col + ow)] = 0                # padding, left
                    for ow in range(ow_lo, ow_hi):
                        cols[r, _u(col + ow)] = x[_u(n), _u(c), h, _u(ow * SW + w_off)]
                    for ow in range(ow_hi, OW):
                        cols[r, _u(col + ow)] = 0                # padding, right
                else:
                    for ow in range(OW):
                        cols[r, _u(col + ow)] = 0                # padding, top or bottom


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, cols):
    buf = _scratch(cols)
    _im2col(_contiguous(x), KH, KW, SH, SW, PH, PW, DH, DW, buf)
    _copy_back(cols, buf)


# col2im, the transpose: gx[n, c, h, w] = sum of the cols entries copied from (h, w); entries copied
# from the padding are dropped. Loop mapping: prange over the N*C planes; plane (n, c) is written only
# from its own block of cols, so each thread scatters (+=) into its own planes. A pixel receives its
# terms in (kh, kw) order, as in numpy_ref. Bounds hoisted and indices unsigned, as in im2col.


@njit(cache=True, parallel=True, error_model="numpy")
def _col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    N, C, H, W = gx.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        un, uc = _u(n), _u(c)
        for h in range(H):
            for w in range(W):
                gx[un, uc, _u(h), _u(w)] = 0
        for kh in range(KH):
            h_off = kh * DH - PH                                 # h = oh*SH + h_off
            oh_lo, oh_hi = _inside(h_off, SH, H, OH)
            for kw in range(KW):
                w_off = kw * DW - PW                             # w = ow*SW + w_off
                ow_lo, ow_hi = _inside(w_off, SW, W, OW)
                row = _u((c * KH + kh) * KW + kw)
                for oh in range(oh_lo, oh_hi):
                    col = (n * OH + oh) * OW
                    h = _u(oh * SH + h_off)
                    for ow in range(ow_lo, ow_hi):
                        gx[un, uc, h, _u(ow * SW + w_off)] += cols[row, _u(col + ow)]


def col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    buf = _scratch(gx)
    _col2im(_contiguous(cols), KH, KW, SH, SW, PH, PW, DH, DW, buf)
    _copy_back(gx, buf)


# =============================================================================================
# Pooling
# =============================================================================================
#
# Max-pool forward, PyTorch's rule as numpy_ref states it: scanning the window row by row (kh, then
# kw) and skipping taps outside the input (the padding, and the part of a ceil_mode window past the
# edge), a tap replaces the current best if it is the first, if it is greater (ties go to the first
# maximum) or if it is NaN (the last NaN wins). argmax = h*W + w of the winner, -1 if no tap of the
# window lies inside the input (y is then -inf). Loop mapping: prange over N*C.


@njit(cache=True, parallel=True, error_model="numpy")
def _maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, neg_inf, y, argmax):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for oh in range(OH):
            for ow in range(OW):
                best, best_index = neg_inf, -1               # -inf in x's dtype; -1: no tap yet
                for kh in range(KH):
                    h = oh * SH - PH + kh * DH
                    if 0 <= h < H:
                        for kw in range(KW):
                            w = ow * SW - PW + kw * DW
                            if 0 <= w < W:
                                v = x[n, c, h, w]
                                if best_index < 0 or v > best or np.isnan(v):
                                    best, best_index = v, h * W + w
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = best_index


# The same rule for AlexNet's 3x3 windows (every variant pools 3x3, dilation 1), 5x faster at its
# sizes. A plane without NaN (a healthy run has none) needs only "a greater tap replaces the best",
# started from the window's first tap: with loops of constant length Numba unrolls the window, and a
# window wholly inside the input needs no bounds test. A plane holding a NaN, and the border windows,
# take the full rule of _maxpool2d_forward. Each plane is scanned for NaN first, in a loop of its
# own: testing each tap inside the window loop made the whole kernel 5x slower.


@njit(cache=True, parallel=True, error_model="numpy")
def _maxpool2d_forward_3x3(x, SH, SW, PH, PW, neg_inf, y, argmax):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        has_nan = False
        for h in range(H):
            for w in range(W):
                has_nan |= x[n, c, h, w] != x[n, c, h, w]
        for oh in range(OH):
            h0 = oh * SH - PH                                # the window's top-left tap
            for ow in range(OW):
                w0 = ow * SW - PW
                if not has_nan and h0 >= 0 and w0 >= 0 and h0 + 3 <= H and w0 + 3 <= W:
                    best, best_index = x[n, c, h0, w0], h0 * W + w0
                    for kh in range(3):
                        for kw in range(3):
                            v = x[n, c, h0 + kh, w0 + kw]
                            if v > best:                     # strict: ties keep the first
                                best, best_index = v, (h0 + kh) * W + w0 + kw
                else:
                    best, best_index = neg_inf, -1
                    for kh in range(3):
                        h = h0 + kh
                        if 0 <= h < H:
                            for kw in range(3):
                                w = w0 + kw
                                if 0 <= w < W:
                                    v = x[n, c, h, w]
                                    if best_index < 0 or v > best or np.isnan(v):
                                        best, best_index = v, h * W + w
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = best_index


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax):
    y_buf, argmax_buf = _scratch(y), _scratch(argmax)
    neg_inf = x.dtype.type(-np.inf)
    if KH == KW == 3 and DH == DW == 1:
        _maxpool2d_forward_3x3(_contiguous(x), SH, SW, PH, PW, neg_inf, y_buf, argmax_buf)
    else:
        _maxpool2d_forward(_contiguous(x), KH, KW, SH, SW, PH, PW, DH, DW, neg_inf, y_buf, argmax_buf)
    _copy_back(y, y_buf)
    _copy_back(argmax, argmax_buf)


# Max-pool backward (scatter form; the geometry is not needed: argmax says where each gradient goes):
# gx[plane, argmax[plane, p]] += gy[plane, p] over the OH*OW outputs p of each of the N*C planes, in
# order, as np.add.at; an argmax of -1 (a window that missed the input) sends its gradient nowhere,
# as in numpy_ref. Serial: one pass over memory, too light to gain from threads.


@njit(cache=True, error_model="numpy")
def _maxpool2d_backward(gy, argmax, gx):
    P, HW = gx.shape                                          # (N*C, H*W)
    for plane in range(P):
        for i in range(HW):
            gx[plane, i] = 0
        for p in range(gy.shape[1]):                          # OH*OW outputs of this plane
            if argmax[plane, p] >= 0:                        # -1: the window missed the input
                gx[plane, argmax[plane, p]] += gy[plane, p]


def maxpool2d_backward(gy, argmax, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    N, C, H, W = gx.shape
    buf = _scratch(gx)
    _maxpool2d_backward(_contiguous(gy).reshape(N * C, -1), _contiguous(argmax).reshape(N * C, -1),
                        buf.reshape(N * C, H * W))
    _copy_back(gx, buf)


# Average pooling: y[n, c, oh, ow] = (sum of the in-bounds taps) / divisor[oh, ow] (padding adds
# zero). The (OH, OW) divisors come from numpy_ref._avgpool_divisor itself, so both backends count
# exactly alike (PyTorch's rule, read it there). Loop mapping: prange over N*C.


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, divisor, zero, y):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for oh in range(OH):
            h_lo, h_hi = max(oh * SH - PH, 0), min(oh * SH - PH + KH, H)
            for ow in range(OW):
                w_lo, w_hi = max(ow * SW - PW, 0), min(ow * SW - PW + KW, W)
                total = zero                                 # 0 in x's dtype
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        total += x[n, c, h, w]
                y[n, c, oh, ow] = total / divisor[oh, ow]


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, y):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    divisor = _avgpool_divisor(H, W, KH, KW, SH, SW, PH, PW, count_include_pad, OH, OW, x.dtype)  # (OH, OW)
    buf = _scratch(y)
    _avgpool2d_forward(_contiguous(x), KH, KW, SH, SW, PH, PW, divisor, x.dtype.type(0), buf)
    _copy_back(y, buf)


# Average-pool backward: every in-bounds input of window (oh, ow) receives gy[n, c, oh, ow] / divisor.
# Loop mapping: prange over N*C; each thread scatters (+=) into its own planes of gx.


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, divisor, gx):
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for h in range(H):
            for w in range(W):
                gx[n, c, h, w] = 0
        for oh in range(OH):
            h_lo, h_hi = max(oh * SH - PH, 0), min(oh * SH - PH + KH, H)
            for ow in range(OW):
                w_lo, w_hi = max(ow * SW - PW, 0), min(ow * SW - PW + KW, W)
                g = gy[n, c, oh, ow] / divisor[oh, ow]
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        gx[n, c, h, w] += g


def avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, gx):
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    divisor = _avgpool_divisor(H, W, KH, KW, SH, SW, PH, PW, count_include_pad, OH, OW, gy.dtype)  # (OH, OW)
    buf = _scratch(gx)
    _avgpool2d_backward(_contiguous(gy), KH, KW, SH, SW, PH, PW, divisor, buf)
    _copy_back(gx, buf)


# =============================================================================================
# Local response normalization (PyTorch's convention; formulas in numpy_ref.py)
# =============================================================================================
#
# Forward, fused into one pass over the channels of each image n, with a running window sum
#   acc[n, l] = sum_{j=c-size//2}^{c+(size-1)//2} x[n, j, l]^2:
# moving from channel c-1 to c adds the square of the channel entering the window and subtracts the
# one leaving it, so no array of squares is stored. Then
#   scale[n, c, l] = k + alpha/size * acc[n, l]           y[n, c, l] = x[n, c, l] * scale^-beta
# Loop mapping: prange over N; image n writes y[n], scale[n] and its own row acc[n] (the wrapper's
# (N, L) scratch array) only.
#
# scale^-beta costs a pow() per element, the most expensive step; for AlexNet's beta = 0.75 it is
# 1 / sqrt(scale * sqrt(scale)), about 2.5x faster and vectorized (a few ulps from pow()).


@njit(cache=True, parallel=True, error_model="numpy")
def _lrn_forward(x, size, coef, neg_beta, beta_is_3_4, one, k, acc, y, scale):
    N, C, L = x.shape
    before, after = size // 2, (size - 1) // 2               # window of c: [c - before, c + after]
    for n in prange(N):
        for l in range(L):
            acc[n, l] = 0
        for j in range(min(after, C)):                       # the window of c = -1 (less channel -1 - before)
            for l in range(L):
                acc[n, l] += x[n, j, l] * x[n, j, l]
        for c in range(C):
            enter, leave = c + after, c - before - 1
            if enter < C:
                for l in range(L):
                    acc[n, l] += x[n, enter, l] * x[n, enter, l]
            if leave >= 0:
                for l in range(L):
                    acc[n, l] -= x[n, leave, l] * x[n, leave, l]
            for l in range(L):
                s = k + coef * acc[n, l]
                scale[n, c, l] = s
                y[n, c, l] = x[n, c, l] * (one / np.sqrt(s * np.sqrt(s)) if beta_is_3_4 else s ** neg_beta)


def lrn_forward(x, size, alpha, beta, k, y, scale):
    t = x.dtype.type
    acc = np.empty((x.shape[0], x.shape[2]), dtype=x.dtype)                 # (N, L) running sums
    y_buf, scale_buf = _scratch(y), _scratch(scale)
    _lrn_forward(_contiguous(x), size, t(alpha / size), t(-beta), beta == 0.75, t(1), t(k), acc, y_buf, scale_buf)
    _copy_back(y, y_buf)
    _copy_back(scale, scale_buf)


# Backward, the same running window over r[j] = gy[j] * y[j] / scale[j], on the mirrored window
# [i - (size-1)//2, i + size//2] (r is recomputed as it leaves the window rather than stored):
#   gx[n, i, l] = gy * scale^-beta - 2*alpha*beta/size * x * acc[n, l]
# Loop mapping: prange over N, as forward.


@njit(cache=True, parallel=True, error_model="numpy")
def _lrn_backward(x, y, scale, gy, size, coef2, neg_beta, beta_is_3_4, one, acc, gx):
    N, C, L = x.shape
    before, after = (size - 1) // 2, size // 2               # window of i: [i - before, i + after]
    for n in prange(N):
        for l in range(L):
            acc[n, l] = 0
        for j in range(min(after, C)):
            for l in range(L):
                acc[n, l] += gy[n, j, l] * y[n, j, l] / scale[n, j, l]
        for i in range(C):
            enter, leave = i + after, i - before - 1
            if enter < C:
                for l in range(L):
                    acc[n, l] += gy[n, enter, l] * y[n, enter, l] / scale[n, enter, l]
            if leave >= 0:
                for l in range(L):
                    acc[n, l] -= gy[n, leave, l] * y[n, leave, l] / scale[n, leave, l]
            for l in range(L):                               # grad wrt x
                s = scale[n, i, l]
                s_pow = one / np.sqrt(s * np.sqrt(s)) if beta_is_3_4 else s ** neg_beta
                gx[n, i, l] = gy[n, i, l] * s_pow - coef2 * x[n, i, l] * acc[n, l]


def lrn_backward(x, y, scale, gy, size, alpha, beta, gx):
    t = x.dtype.type
    acc = np.empty((x.shape[0], x.shape[2]), dtype=x.dtype)                 # (N, L) running sums
    buf = _scratch(gx)
    _lrn_backward(_contiguous(x), _contiguous(y), _contiguous(scale), _contiguous(gy), size,
                  t(2.0 * alpha * beta / size), t(-beta), beta == 0.75, t(1), acc, buf)
    _copy_back(gx, buf)


# =============================================================================================
# ReLU: elementwise over the flattened arrays (serial: memory-bound, threads gain little)
# =============================================================================================


@njit(cache=True, error_model="numpy")
def _relu_forward(x, zero, y):
    for i in range(x.size):
        y[i] = zero if x[i] < zero else x[i]                 # NaN passes through, as np.maximum


@njit(cache=True, error_model="numpy")
def _relu_backward(gy, y, one, zero, gx):
    for i in range(gy.size):
        gx[i] = gy[i] if y[i] > zero else zero               # a select, as numpy_ref: inf * 0 is not NaN


def relu_forward(x, y):
    buf = _scratch(y)
    _relu_forward(_contiguous(x).reshape(-1), x.dtype.type(0), buf.reshape(-1))
    _copy_back(y, buf)


def relu_backward(gy, y, gx):
    t = gy.dtype.type
    buf = _scratch(gx)
    _relu_backward(_contiguous(gy).reshape(-1), _contiguous(y).reshape(-1), t(1), t(0), buf.reshape(-1))
    _copy_back(gx, buf)


# =============================================================================================
# Dropout: Philox-4x32-10, bit for bit numpy_ref.philox_uint32
# =============================================================================================
#
# Each 32-bit word is held in a uint64 so that the 32 x 32 -> 64-bit products are exact; every
# constant is a np.uint64 (uint64 mixed with a Python int gives float64 in Numba, as in NumPy).
# Loop mapping: prange over the elements; element i depends on (seed, offset + i) only.

_M0, _M1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
_W0, _W1 = np.uint64(PHILOX_W0), np.uint64(PHILOX_W1)
_MASK32, _SHIFT32, _SHIFT8 = np.uint64(MASK32), np.uint64(32), np.uint64(8)


@njit(cache=True)
def _philox_uint32(counter, k0, k1):
    """First output word of Philox-4x32-10 for a uint64 counter and the key (k0, k1)."""
    c0, c1 = counter & _MASK32, counter >> _SHIFT32
    c2, c3 = np.uint64(0), np.uint64(0)
    for _ in range(10):
        p0 = c0 * _M0                                        # 32 x 32 -> 64-bit products
        p1 = c2 * _M1
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32)
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0


@njit(cache=True, parallel=True)
def _dropout_mask(k0, k1, offset, threshold, mask):
    for i in prange(mask.size):
        u = _philox_uint32(offset + np.uint64(i), k0, k1) >> _SHIFT8   # 24 uniform bits
        mask[i] = 1 if u >= threshold else 0                 # counter wraps modulo 2^64, as numpy_ref


def dropout_mask(seed, offset, p, mask):
    buf = _scratch(mask)
    _dropout_mask(np.uint64(seed & MASK32), np.uint64((seed >> 32) & MASK32), np.uint64(offset),
                  np.uint64(dropout_threshold(p)), buf.reshape(-1))
    _copy_back(mask, buf)


@njit(cache=True, error_model="numpy")
def _dropout_apply(x, mask, scale, y):
    for i in range(x.size):
        y[i] = x[i] * mask[i] * scale                        # (x * mask) * scale, as numpy_ref


def dropout_apply(x, mask, scale, y):
    buf = _scratch(y)
    _dropout_apply(_contiguous(x).reshape(-1), _contiguous(mask).reshape(-1), x.dtype.type(scale), buf.reshape(-1))
    _copy_back(y, buf)


# =============================================================================================
# Softmax cross-entropy (formulas in numpy_ref.py). Serial over the N rows: N*K is small (AlexNet:
# 128 x 1000), threads would cost more than they save.
# =============================================================================================


@njit(cache=True, error_model="numpy")
def _softmax_xent_forward(logits, target, zero, loss, probs):
    N, K = logits.shape
    for n in range(N):
        top = logits[n, 0]
        for j in range(1, K):
            top = max(top, logits[n, j])
        total = zero                                         # 0 in the logits' dtype
        for j in range(K):
            total += np.exp(logits[n, j] - top)
        log_sum = np.log(total)
        for j in range(K):
            probs[n, j] = np.exp((logits[n, j] - top) - log_sum)
        loss[n] = -((logits[n, target[n]] - top) - log_sum)


@njit(cache=True, error_model="numpy")
def _softmax_xent_backward(probs, target, gloss, one, glogits):
    N, K = probs.shape
    for n in range(N):
        for j in range(K):
            glogits[n, j] = probs[n, j] * gloss[n]
        glogits[n, target[n]] = (probs[n, target[n]] - one) * gloss[n]   # (p - 1) * gloss at the target


def _checked_target(target, K):
    """int64 targets; an index outside [0, K) would read and write outside the arrays in a loop."""
    target = np.ascontiguousarray(target, dtype=np.int64)
    if target.size and (target.min() < 0 or target.max() >= K):
        raise IndexError(f"softmax cross-entropy: targets must lie in [0, {K}), "
                         f"got values in [{target.min()}, {target.max()}]")
    return target


def softmax_xent_forward(logits, target, loss, probs):
    loss_buf, probs_buf = _scratch(loss), _scratch(probs)
    _softmax_xent_forward(_contiguous(logits), _checked_target(target, logits.shape[1]), logits.dtype.type(0),
                          loss_buf, probs_buf)
    _copy_back(loss, loss_buf)
    _copy_back(probs, probs_buf)


def softmax_xent_backward(probs, target, gloss, glogits):
    buf = _scratch(glogits)
    _softmax_xent_backward(_contiguous(probs), _checked_target(target, probs.shape[1]),
                           _contiguous(gloss).reshape(-1), probs.dtype.type(1), buf)
    _copy_back(glogits, buf)


# =============================================================================================
# Bias (serial: one pass over memory)
# =============================================================================================


@njit(cache=True, error_model="numpy")
def _bias_add(y, b):
    N, C, L = y.shape
    for n in range(N):
        for c in range(C):
            for l in range(L):
                y[n, c, l] += b[c]                           # y (N, C, L) += b[c]


def bias_add(y, b):
    buf = _scratch(y)
    if buf is not y:
        buf[...] = y
    _bias_add(buf, _contiguous(b))
    _copy_back(y, buf)


# bias_grad: gb[c] = sum over n of (sum over l of gy[n, c, l]). fastmath "reassoc" (and only that:
# inf and NaN keep their meaning) lets LLVM split each sum over several SIMD accumulators: about 2x
# faster, and more accurate than one running sum, like NumPy's pairwise summation.


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _bias_grad(gy, zero, gb):
    N, C, L = gy.shape
    for c in range(C):
        gb[c] = zero                                         # 0 in gy's dtype
    for n in range(N):                                       # n outer: gy is read in memory order
        for c in range(C):
            row = zero
            for l in range(L):
                row += gy[n, c, l]
            gb[c] += row


def bias_grad(gy, gb):
    buf = _scratch(gb)
    _bias_grad(_contiguous(gy), gy.dtype.type(0), buf)
    _copy_back(gb, buf)


# =============================================================================================
# SGD update: numpy_ref's formula in one pass over p, g and v
# =============================================================================================
#
# Loop mapping: prange over the elements. ``v`` is an empty stand-in without momentum (a loop-invariant
# branch: LLVM compiles one loop for each case).


@njit(cache=True, parallel=True, error_model="numpy")
def _sgd_update(p, g, v, lr, momentum, weight_decay, has_momentum, nesterov):
    for i in prange(p.size):
        d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        step = d
        if has_momentum:
            v[i] = momentum * v[i] + d
            step = d + momentum * v[i] if nesterov else v[i]
        p[i] -= lr * step


def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    t = p.dtype.type
    p_buf = _contiguous(p)                                    # updated in place (a copy only if p is not)
    v_buf = _contiguous(v) if v is not None else np.empty(0, dtype=p.dtype)
    _sgd_update(p_buf.reshape(-1), _contiguous(g).reshape(-1), v_buf.reshape(-1), t(lr), t(momentum),
                t(weight_decay), v is not None, bool(nesterov))
    _copy_back(p, p_buf)
    if v is not None:
        _copy_back(v, v_buf)
