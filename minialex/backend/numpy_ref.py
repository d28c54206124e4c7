"""The kernels of minialex, written as readable NumPy: the reference every other backend must match.

This file is also the kernel *interface*. ``numba_cpu.py`` and ``cuda.py`` (with ``kernels/*.cu``)
define exactly these names with exactly these arguments, and the tests compare them with this file.
Conventions shared by every kernel:

* Layout NCHW, C-contiguous arrays, float32 or float64 (the same dtype for all float arguments).
* Kernels never allocate their outputs: the caller passes output buffers (``cols``, ``y``, ``gx``
  ...) and the kernel overwrites them completely (or, where the name says ``accumulate``, adds).
  This is what lets the ops reuse buffers and process a big batch in chunks.
* Integer hyper-parameters are plain Python ints; index arrays (``argmax``) are int32.
* No kernel keeps state between calls.

Notation, used in every file of minialex (Python and CUDA):

    N   batch size              C   channels          H, W    input height, width
    KH, KW  kernel size         SH, SW  stride        PH, PW  zero padding   DH, DW  dilation
    OH, OW  output height, width:  OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1
    K   number of classes (cross-entropy)   L  flattened spatial size

The kernels:

    im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, cols)                 x (N,C,H,W) -> cols (C*KH*KW, N*OH*OW)
    col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, gx)                cols -> gx (N,C,H,W), overlaps summed
    maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax) y (N,C,OH,OW), argmax int32 into H*W
    maxpool2d_backward(gy, argmax, KH, KW, SH, SW, PH, PW, DH, DW, gx)   gx (N,C,H,W)
    avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, y)
    avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, gx)
    lrn_forward(x, size, alpha, beta, k, y, scale)                  y, scale (N,C,L)
    lrn_backward(x, y, scale, gy, size, alpha, beta, gx)            gx (N,C,L)
    relu_forward(x, y)            relu_backward(gy, y, gx)
    dropout_mask(seed, offset, p, mask)                             mask uint8 (n,): 1 = keep
    dropout_apply(x, mask, scale, y)                                y = x * mask * scale (also backward)
    softmax_xent_forward(logits, target, loss, probs)               loss (N,), probs (N,K)
    softmax_xent_backward(probs, target, gloss, glogits)            gloss (N,) -> glogits (N,K)
    bias_add(y, b)                y (N,C,L) += b[c]        bias_grad(gy, gb)   gb[c] = sum over N, L
    sgd_update(p, g, v, lr, momentum, weight_decay, nesterov)       p and v (momentum buffer) in place
"""

from __future__ import annotations

import numpy as np

xp = np          # the array module this backend computes with
DEVICE = "cpu"

KERNELS = ("im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward",
           "avgpool2d_backward", "lrn_forward", "lrn_backward", "relu_forward", "relu_backward",
           "dropout_mask", "dropout_apply", "softmax_xent_forward", "softmax_xent_backward",
           "bias_add", "bias_grad", "sgd_update")


# =============================================================================================
# Convolution: im2col / col2im
# =============================================================================================
#
# For each output pixel (n, oh, ow) the receptive field x[n, :, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
# is copied into one column, so that convolution of the whole batch is ONE matrix product:
#     y (OC, N*OH*OW) = weight (OC, C*KH*KW) @ cols (C*KH*KW, N*OH*OW)
# Rows of cols are ordered (c, kh, kw), the same order as weight.reshape(OC, -1); columns are ordered
# (n, oh, ow). With groups, group g's rows are the contiguous block g*C/G*KH*KW ... (g+1)*C/G*KH*KW.


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, cols):
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    cols6 = cols.reshape(C, KH, KW, N, OH, OW)  # a view of the output buffer
    for kh in range(KH):
        h0 = kh * DH
        for kw in range(KW):
            w0 = kw * DW
            # every output pixel's (kh, kw) tap at once: a strided slice of the padded input
            tap = x_pad[:, :, h0:h0 + SH * (OH - 1) + 1:SH, w0:w0 + SW * (OW - 1) + 1:SW]  # (N, C, OH, OW)
            cols6[:, kh, kw] = tap.transpose(1, 0, 2, 3)                                  # (C, N, OH, OW)


def col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    """The transpose of im2col: every column entry is added back to the pixel it was copied from."""
    N, C, H, W = gx.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    gx_pad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gx.dtype)
    cols6 = cols.reshape(C, KH, KW, N, OH, OW)
    for kh in range(KH):
        h0 = kh * DH
        for kw in range(KW):
            w0 = kw * DW
            tap = cols6[:, kh, kw].transpose(1, 0, 2, 3)                                   # (N, C, OH, OW)
            gx_pad[:, :, h0:h0 + SH * (OH - 1) + 1:SH, w0:w0 + SW * (OW - 1) + 1:SW] += tap
    gx[...] = gx_pad[:, :, PH:PH + H, PW:PW + W]


# =============================================================================================
# Pooling
# =============================================================================================
#
# Windows may hang over the bottom/right edge when the caller chose ceil_mode: positions outside the
# padded input are ignored by max-pool and not counted by avg-pool (PyTorch's rule). The caller
# computes OH, OW (it knows ceil_mode) and passes them as the shape of y.


def _window_padding(H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """Extra bottom/right padding so that every window of the (OH, OW) grid fits in the array."""
    extra_h = max(0, (OH - 1) * SH + DH * (KH - 1) + 1 - (H + 2 * PH))
    extra_w = max(0, (OW - 1) * SW + DW * (KW - 1) + 1 - (W + 2 * PW))
    return extra_h, extra_w


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax):
    """y = max over each window; argmax = flat index h*W + w of the winner in its (n, c) plane.

    PyTorch's rule, exactly: scanning the window row by row (kh, then kw) and skipping taps outside
    the input, a tap replaces the current best if it is the first, if it is greater (so ties go to the
    first maximum), or if it is NaN (so a NaN wins, the last one if there are several). A dilated
    window whose taps all miss the input gives -inf and argmax -1.
    """
    N, C, H, W = x.shape
    _, _, OH, OW = y.shape
    extra_h, extra_w = _window_padding(H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    x_pad = np.pad(x, ((0, 0), (0, 0), (PH, PH + extra_h), (PW, PW + extra_w)), constant_values=-np.inf)
    best = np.full((N, C, OH, OW), -np.inf, dtype=x.dtype)
    best_index = np.full((N, C, OH, OW), -1, dtype=np.int32)   # -1: no tap inside the input yet
    oh = np.arange(OH).reshape(OH, 1)
    ow = np.arange(OW).reshape(1, OW)
    for kh in range(KH):
        h0 = kh * DH
        for kw in range(KW):
            w0 = kw * DW
            tap = x_pad[:, :, h0:h0 + SH * (OH - 1) + 1:SH, w0:w0 + SW * (OW - 1) + 1:SW]
            h = oh * SH - PH + h0  # (OH, 1) input row of this tap
            w = ow * SW - PW + w0  # (1, OW) input column
            inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)         # (OH, OW)
            wins = inside & ((best_index < 0) | (tap > best) | np.isnan(tap))  # strict '>': the first max stays
            best = np.where(wins, tap, best)
            best_index = np.where(wins, (h * W + w).astype(np.int32), best_index)
    y[...] = best
    argmax[...] = best_index


def maxpool2d_backward(gy, argmax, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    """Each output's gradient goes to the input element that won its window (summed over windows).
    The window geometry is not needed here (argmax says where each gradient goes); a gather-form
    kernel (CUDA) uses it to find the windows that cover an input element."""
    N, C, H, W = gx.shape
    gx_planes = np.zeros((N * C, H * W), dtype=gx.dtype)            # (N*C, H*W)
    plane = np.arange(N * C).reshape(N * C, 1)                        # (N*C, 1)
    winner = argmax.reshape(N * C, -1)                                # (N*C, OH*OW)
    valid = winner >= 0  # -1: a dilated window that missed the input; its gradient goes nowhere
    np.add.at(gx_planes, (np.broadcast_to(plane, winner.shape)[valid], winner[valid]), gy.reshape(N * C, -1)[valid])
    gx[...] = gx_planes.reshape(N, C, H, W)


def _avgpool_divisor(H, W, KH, KW, SH, SW, PH, PW, count_include_pad, OH, OW, dtype):
    """(OH, OW) number of elements each window averages, exactly as PyTorch counts them.

    With count_include_pad the zero padding counts, but not the part of a ceil_mode window that
    hangs beyond the padding; without it only real input elements count.
    """
    h_start = np.arange(OH) * SH - PH
    w_start = np.arange(OW) * SW - PW
    h_end = np.minimum(h_start + KH, H + PH)
    w_end = np.minimum(w_start + KW, W + PW)
    if count_include_pad:
        rows, cols = h_end - h_start, w_end - w_start
    else:
        rows = np.minimum(h_end, H) - np.maximum(h_start, 0)
        cols = np.minimum(w_end, W) - np.maximum(w_start, 0)
    return np.outer(rows, cols).astype(dtype)


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, y):
    N, C, H, W = x.shape
    _, _, OH, OW = y.shape
    extra_h, extra_w = _window_padding(H, W, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    x_pad = np.pad(x, ((0, 0), (0, 0), (PH, PH + extra_h), (PW, PW + extra_w)))
    total = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            total += x_pad[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW]
    y[...] = total / _avgpool_divisor(H, W, KH, KW, SH, SW, PH, PW, count_include_pad, OH, OW, x.dtype)


def avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, gx):
    """Each output's gradient, divided by its divisor, is spread evenly over its window."""
    N, C, H, W = gx.shape
    _, _, OH, OW = gy.shape
    extra_h, extra_w = _window_padding(H, W, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    g = gy / _avgpool_divisor(H, W, KH, KW, SH, SW, PH, PW, count_include_pad, OH, OW, gy.dtype)
    gx_pad = np.zeros((N, C, H + 2 * PH + extra_h, W + 2 * PW + extra_w), dtype=gx.dtype)
    for kh in range(KH):
        for kw in range(KW):
            gx_pad[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW] += g
    gx[...] = gx_pad[:, :, PH:PH + H, PW:PW + W]


# =============================================================================================
# Local response normalization (PyTorch's convention)
# =============================================================================================
#
#   scale[n, c, l] = k + alpha / size * sum_{j = c - size//2}^{c + (size-1)//2} x[n, j, l]^2
#   y = x * scale^(-beta)
# Channels outside [0, C) count as zero. Backward, with the window W(c) above:
#   gx[i] = gy[i] * scale[i]^(-beta)
#           - 2 * alpha * beta / size * x[i] * sum_{c : i in W(c)} gy[c] * y[c] / scale[c]
# and {c : i in W(c)} = [i - (size-1)//2, i + size//2]: the same window, mirrored.


def _channel_window_sum(a, before, after):
    """s[:, c] = sum of a[:, c-before : c+after+1] over channels, zero outside (a is (N, C, L))."""
    N, C, L = a.shape
    padded = np.zeros((N, C + before + after + 1, L), dtype=a.dtype)
    padded[:, before + 1:before + 1 + C] = a
    prefix = np.cumsum(padded, axis=1)                      # prefix[:, j] = sum of padded[:, :j+1]
    return prefix[:, before + after + 1:] - prefix[:, :C]   # (N, C, L)


def lrn_forward(x, size, alpha, beta, k, y, scale):
    squares = x * x
    scale[...] = k + alpha / size * _channel_window_sum(squares, size // 2, (size - 1) // 2)
    y[...] = x * scale ** -beta


def lrn_backward(x, y, scale, gy, size, alpha, beta, gx):
    # grad wrt x: the direct term, then the term through every scale[c] that x[i] contributes to
    through_scale = _channel_window_sum(gy * y / scale, (size - 1) // 2, size // 2)
    gx[...] = gy * scale ** -beta - (2.0 * alpha * beta / size) * x * through_scale


# =============================================================================================
# ReLU
# =============================================================================================


def relu_forward(x, y):
    np.maximum(x, 0, out=y)


def relu_backward(gy, y, gx):
    """The gradient passes where the output is positive; at x == 0 it is 0 (PyTorch's choice). A
    select, not a product: an infinite gy where y <= 0 gives 0, as in PyTorch, not inf * 0 = NaN."""
    gx[...] = np.where(y > 0, gy, 0)


# =============================================================================================
# Dropout: a counter-based random generator (Philox-4x32-10)
# =============================================================================================
#
# Element i of a dropout mask is decided by philox(counter=offset + i, key=seed) alone, so NumPy,
# Numba and CUDA draw the same mask for the same seed, in any order and on any number of threads.
# Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): the 64-bit
# counter is the first two of four 32-bit words, the 64-bit seed the key; the first output word is
# kept. Its top 24 bits u give a uniform number u / 2^24 in [0, 1); the element is kept if
# u >= floor(p * 2^24), i.e. with probability 1 - p.

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57    # round multipliers
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85    # key increments (golden ratio, sqrt(3) - 1)
MASK32 = 0xFFFFFFFF


def philox_uint32(counter, seed):
    """First 32-bit output of Philox-4x32-10 for each uint64 ``counter`` and one uint64 ``seed``."""
    counter = np.asarray(counter, dtype=np.uint64)
    c0 = counter & MASK32
    c1 = counter >> np.uint64(32)
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0 = np.uint64(seed & MASK32)
    k1 = np.uint64((seed >> 32) & MASK32)
    for _ in range(10):
        p0 = c0 * np.uint64(PHILOX_M0)              # 32 x 32 -> 64-bit products, exact in uint64
        p1 = c2 * np.uint64(PHILOX_M1)
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + np.uint64(PHILOX_W0)) & MASK32
        k1 = (k1 + np.uint64(PHILOX_W1)) & MASK32
    return c0.astype(np.uint32)


def dropout_threshold(p):
    """The 24-bit threshold below which an element is dropped."""
    return int(p * (1 << 24))


def dropout_mask(seed, offset, p, mask):
    """mask[i] = 1 (keep) or 0 (drop) for element ``offset + i``; ``mask`` is uint8 (n,)."""
    counter = np.uint64(offset) + np.arange(mask.size, dtype=np.uint64)
    u = philox_uint32(counter, seed) >> np.uint32(8)  # 24 uniform bits
    mask[...] = u >= dropout_threshold(p)


def dropout_apply(x, mask, scale, y):
    """y = x * mask * scale, with scale = 1 / (1 - p): forward, and backward with x = gy."""
    np.multiply(x, mask, out=y)
    y *= scale


# =============================================================================================
# Softmax cross-entropy
# =============================================================================================
#
#   log p[n, j] = z[n, j] - max_j z[n] - log sum_j exp(z[n, j] - max_j z[n])   (stable)
#   loss[n] = -log p[n, target[n]]
#   d loss[n] / d z[n, j] = p[n, j] - [j == target[n]]


def softmax_xent_forward(logits, target, loss, probs):
    shifted = logits - logits.max(axis=1, keepdims=True)       # (N, K), max 0 per row
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_sum
    probs[...] = np.exp(log_probs)
    loss[...] = -log_probs[np.arange(len(target)), target]


def softmax_xent_backward(probs, target, gloss, glogits):
    glogits[...] = probs
    glogits[np.arange(len(target)), target] -= 1
    glogits *= gloss.reshape(-1, 1)


# =============================================================================================
# Bias
# =============================================================================================


def bias_add(y, b):
    """y[n, c, l] += b[c]; y is (N, C, L) (a conv output with L = OH*OW, or linear with L = 1)."""
    y += b.reshape(1, -1, 1)


def bias_grad(gy, gb):
    """grad wrt bias: gb[c] = sum of gy[:, c, :]."""
    gb[...] = gy.sum(axis=(0, 2))


# =============================================================================================
# SGD: the optimizer's loop over every weight, every step
# =============================================================================================
#
# PyTorch's torch.optim.SGD (dampening 0), on one parameter p with gradient g:
#     d = g + weight_decay * p
#     v = momentum * v + d                  the momentum buffer; it starts at 0, so v = d at step 1
#     p = p - lr * (d + momentum * v)       with nesterov=True
#     p = p - lr * v                        without
# In NumPy each line is a pass over memory, and ``lr * v`` a temporary as large as p: fused in one
# loop (numba, CUDA) it was 4x faster on AlexNet's fc6 weight.


def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    """One SGD step, in place on ``p`` and on the momentum buffer ``v`` (None without momentum:
    then p = p - lr * d). Hyper-parameters are Python floats; nesterov a bool."""
    d = g + weight_decay * p if weight_decay else g          # weight decay 0 leaves g as it is, inf * 0 too
    if v is None:
        p -= lr * d
        return
    v *= momentum
    v += d
    p -= lr * (d + momentum * v if nesterov else v)
