# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # A2: AlexNet's layers by hand, forward and backward
#
# AlexNet is convolutions, overlapping max-pools, local response normalization (LRN) and
# dropout. You write each one's gradient with NumPy, in the layout minialex uses (read
# `minialex/backend/numpy_ref.py` for the notation, but do not call it):
#
#     N batch, C channels, H x W input, KH x KW kernel, SH, SW stride, PH, PW zero padding
#     OH = (H + 2*PH - KH) // SH + 1,   OW = (W + 2*PW - KW) // SW + 1
#
# | task | what | points |
# |---|---|---|
# | im2col | `im2col`, `col2im` | 2 |
# | conv_forward | `conv2d_forward` | 2 |
# | conv_backward | `conv2d_backward` | 3 |
# | maxpool_backward | `maxpool2d_backward` (the forward is given) | 2 |
# | lrn_backward | `lrn_backward` (the forward is given) | 3 |
# | dropout | `dropout_forward`, `dropout_backward` | 1 |
#
# Every function takes and returns NumPy arrays (float64 in the checks). A forward returns
# `(y, cache)`: `cache` is whatever your backward needs, and only your backward reads it.
#
# The grader checks each backward against finite differences (`minialex.gradcheck`, which you may
# use too: see the end of this file) and compares every result with the reference solution on
# shapes you do not see. minialex's own layers (`minialex.ops`, `minialex.nn`, the backends) are
# off limits: the grader rejects a submission that uses them.
#
# Check your work from this folder: `python -m minialex.assignments grade a2_layers .`

# %%
import numpy as np

# %% [markdown]
# ## Task im2col: convolution as one matrix product
#
# For every output pixel (n, oh, ow), its receptive field is copied into one *column* of `cols`,
# so that a convolution of the whole batch is a single matrix product with the weights:
#
#     cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x_padded[n, c, oh*SH + kh, ow*SW + kw]
#
# `cols` is (C*KH*KW, N*OH*OW). `col2im(cols, x_shape, ...)` is its transpose: every entry of
# `cols` is *added* back to the pixel it was copied from (pixels in overlapping windows receive
# several), and the padding is dropped. It is the gradient of im2col.


# %%
def im2col(x, KH, KW, SH, SW, PH, PW):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW)."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    # BEGIN SOLUTION one strided slice of the padded input per tap (kh, kw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            tap = x_pad[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW]   # (N, C, OH, OW)
            cols[:, kh, kw] = tap.transpose(1, 0, 2, 3)                                    # (C, N, OH, OW)
    return cols.reshape(C * KH * KW, N * OH * OW)
    # END SOLUTION


def col2im(cols, x_shape, KH, KW, SH, SW, PH, PW):
    """cols (C*KH*KW, N*OH*OW) -> gx (N, C, H, W) = x_shape, overlapping entries summed."""
    N, C, H, W = x_shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    # BEGIN SOLUTION the same slices as im2col, added back (+=) into a padded buffer
    gx_pad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=cols.dtype)
    cols6 = cols.reshape(C, KH, KW, N, OH, OW)
    for kh in range(KH):
        for kw in range(KW):
            gx_pad[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW] += \
                cols6[:, kh, kw].transpose(1, 0, 2, 3)
    return gx_pad[:, :, PH:PH + H, PW:PW + W].copy()
    # END SOLUTION


# %% [markdown]
# ## Tasks conv_forward and conv_backward
#
# `W` is (OC, C, KH, KW), `b` is (OC,), `stride` and `padding` are ints (the same along H and W).
# Forward: `y (OC, N*OH*OW) = W.reshape(OC, -1) @ cols + b`, then back to (N, OC, OH, OW).
# Backward: the three gradients of the matrix product, and col2im for x.


# %%
def conv2d_forward(x, W, b, stride=1, padding=0):
    """-> (y (N, OC, OH, OW), cache)."""
    # BEGIN SOLUTION
    N, C, H, Wd = x.shape
    OC, _, KH, KW = W.shape
    OH = (H + 2 * padding - KH) // stride + 1
    OW = (Wd + 2 * padding - KW) // stride + 1
    cols = im2col(x, KH, KW, stride, stride, padding, padding)             # (C*KH*KW, N*OH*OW)
    y = W.reshape(OC, -1) @ cols + b.reshape(OC, 1)                        # (OC, N*OH*OW)
    y = y.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)                     # (N, OC, OH, OW)
    return np.ascontiguousarray(y), (x.shape, W, cols, stride, padding)
    # END SOLUTION


def conv2d_backward(gy, cache):
    """gy (N, OC, OH, OW) -> (gx, gW, gb), the gradients wrt x, W and b."""
    # BEGIN SOLUTION
    x_shape, W, cols, stride, padding = cache
    OC, C, KH, KW = W.shape
    g = gy.transpose(1, 0, 2, 3).reshape(OC, -1)                           # (OC, N*OH*OW)
    gW = (g @ cols.T).reshape(W.shape)                                     # grad wrt W
    gb = g.sum(axis=1)                                                     # grad wrt b
    gx = col2im(W.reshape(OC, -1).T @ g, x_shape, KH, KW, stride, stride, padding, padding)   # grad wrt x
    return gx, gW, gb
    # END SOLUTION


# %% [markdown]
# ## Task maxpool_backward: overlapping max-pooling
#
# AlexNet pools 3x3 windows with stride 2: neighbouring windows share a row or a column, so one
# input can be the maximum of several windows. The forward below is given: `argmax[n, c, oh, ow]`
# is the flat index `h*W + w` of the winner of each window (the first maximum, scanning row by row).
# Write the backward: each output's gradient goes to its window's winner, summed over windows.


# %%
def maxpool2d_forward(x, K=3, S=2):
    """x (N, C, H, W) -> (y (N, C, OH, OW), cache); K x K windows, stride S, no padding."""
    N, C, H, W = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    y = np.full((N, C, OH, OW), -np.inf)
    argmax = np.zeros((N, C, OH, OW), dtype=np.int64)
    for kh in range(K):
        for kw in range(K):
            tap = x[:, :, kh:kh + S * (OH - 1) + 1:S, kw:kw + S * (OW - 1) + 1:S]
            h = (np.arange(OH) * S + kh)[:, None]
            w = (np.arange(OW) * S + kw)[None, :]
            wins = tap > y                       # strict: ties keep the first maximum
            y = np.where(wins, tap, y)
            argmax = np.where(wins, h * W + w, argmax)
    return y, (x.shape, argmax)


def maxpool2d_backward(gy, cache):
    """gy (N, C, OH, OW) -> gx (N, C, H, W)."""
    # BEGIN SOLUTION np.add.at sums the gradients of the windows an input wins
    (N, C, H, W), argmax = cache
    gx = np.zeros((N * C, H * W), dtype=gy.dtype)
    rows = np.repeat(np.arange(N * C), argmax[0, 0].size)
    np.add.at(gx, (rows, argmax.reshape(-1)), gy.reshape(-1))
    return gx.reshape(N, C, H, W)
    # END SOLUTION


# %% [markdown]
# ## Task lrn_backward: local response normalization
#
# PyTorch's convention (`minialex/ops/lrn.py` explains the paper's): with a window of `size`
# channels around c (zero outside [0, C)),
#
#     scale[c] = k + alpha / size * sum_{j = c - size//2}^{c + (size-1)//2} x[j]^2,   y[c] = x[c] * scale[c]^-beta
#
# The forward is given. x[i] reaches the loss directly through y[i], and through every scale[c]
# whose window holds i: differentiate both paths.


# %%
def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """x (N, C, H, W) -> (y, cache)."""
    C = x.shape[1]
    squares = x * x
    window_sum = np.zeros_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)
        window_sum[:, c] = squares[:, lo:hi].sum(axis=1)
    scale = k + alpha / size * window_sum
    y = x * scale ** -beta
    return y, (x, y, scale, size, alpha, beta)


def lrn_backward(gy, cache):
    """gy (N, C, H, W) -> gx (N, C, H, W)."""
    # BEGIN SOLUTION
    x, y, scale, size, alpha, beta = cache
    C = x.shape[1]
    t = gy * y / scale
    through = np.zeros_like(x)
    for i in range(C):
        lo, hi = max(0, i - (size - 1) // 2), min(C, i + size // 2 + 1)
        through[:, i] = t[:, lo:hi].sum(axis=1)
    return gy * scale ** -beta - 2.0 * alpha * beta / size * x * through
    # END SOLUTION


# %% [markdown]
# ## Task dropout: inverted dropout with a given mask
#
# In training, each element is kept (mask True) or dropped (False); the kept ones are scaled by
# 1 / (1 - p) so that evaluation needs no change. The mask is given (the checks draw it), so that
# results can be compared; `make_mask` shows how one is drawn.


# %%
def make_mask(shape, p, seed=0):
    """True (keep) with probability 1 - p."""
    return np.random.default_rng(seed).random(shape) >= p


def dropout_forward(x, p, mask, training=True):
    """-> (y, cache). p = 1 drops everything; training=False returns x unchanged."""
    # BEGIN SOLUTION
    if not training or p == 0.0:
        return x, None
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return x * mask * scale, (mask, scale)
    # END SOLUTION


def dropout_backward(gy, cache):
    """gy -> gx, with the forward's mask and scale (cache None: dropout was off)."""
    # BEGIN SOLUTION
    if cache is None:
        return gy
    mask, scale = cache
    return gy * mask * scale
    # END SOLUTION


# %% [markdown]
# ## Check a gradient yourself
#
# `minialex.gradcheck` compares a backward with finite differences; wrap a forward/backward pair
# in a `minialex.Function` to use it (running this file does it for the convolution).

# %%
if __name__ == "__main__":
    import minialex
    from minialex.tensor import Function, Tensor

    class Conv(Function):
        def forward(self, x, W, b):
            y, self.cache = conv2d_forward(x, W, b, stride=2, padding=1)
            return y

        def backward(self, gy):
            return conv2d_backward(gy, self.cache)

    rng = np.random.default_rng(0)
    inputs = [Tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 7, 7), (4, 3, 3, 3), (4,)]]
    print(minialex.gradcheck(lambda x, W, b: Conv.apply(x, W, b), inputs))
