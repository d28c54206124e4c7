# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # A3: kernels, then training
#
# | task | what | points |
# |---|---|---|
# | numba_im2col | `im2col_numba`: im2col as a compiled CPU kernel | 3 |
# | cuda_maxpool | `maxpool2d_forward` in `maxpool.cu`: max-pooling as a CUDA kernel | 3 |
# | train | `train_small_alexnet`: fit the small AlexNet to the built-in data | 4 |
#
# Read `minialex/backend/numba_cpu.py` and `kernels/*.cu` for the style (but do not call them:
# the grader rejects a submission that uses minialex's own im2col). The CUDA kernel is graded on
# a GPU when the grading machine has one; without a GPU it is compiled with NVRTC and run on the
# CPU by an emulation that runs one thread after another (so: no races to hide behind, and a
# grid-stride loop is required).
#
# Check your work from this folder: `python -m minialex.assignments grade a3_kernels_training .`

# %%
import time

import numpy as np
from numba import njit

import minialex
import minialex.nn.functional as F
from minialex import optim
from minialex.models import alexnet
from minialex.nn import init

# %% [markdown]
# ## Task numba_im2col
#
# The layout of minialex (and Caffe):
#
#     cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + kh, ow*SW - PW + kw]
#
# and 0 where that index falls in the padding. `cols` (C*KH*KW, N*OH*OW) is given, already
# allocated with x's dtype: fill every entry (it is not zeroed). Compile with `@njit`.
#
# Going further (not graded): `@njit(parallel=True)` with `prange` over the rows spreads them over
# the cores, each row written by one thread only, as `minialex/backend/numba_cpu.py` does.


# %%
@njit(cache=False)
def im2col_numba(x, KH, KW, SH, SW, PH, PW, cols):
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    # BEGIN SOLUTION
    for row in range(C * KH * KW):
        c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
        for n in range(N):
            for oh in range(OH):
                h = oh * SH - PH + kh
                col = (n * OH + oh) * OW
                for ow in range(OW):
                    w = ow * SW - PW + kw
                    if 0 <= h < H and 0 <= w < W:
                        cols[row, col + ow] = x[n, c, h, w]
                    else:
                        cols[row, col + ow] = 0
    # END SOLUTION


# %% [markdown]
# ## Task cuda_maxpool
#
# Complete `maxpool2d_forward` in `maxpool.cu`; its header says what it computes and how threads
# map to outputs. To try it without a GPU, the grader's own tools run it on the CPU:
#
#     from minialex.assignments.cuda_tools import load_emulated
#     kernel = load_emulated(open("maxpool.cu").read()).get_function("maxpool2d_forward<double>")
#     kernel((2,), (8,), (x, y, argmax, np.int64(N), ...))     # every scalar as np.int64

# %% [markdown]
# ## Task train
#
# `train_small_alexnet(images, labels, time_budget_s)` gets float32 images (N, 3, 16, 16),
# already normalised, and int64 labels (N,) in 0..9 (the built-in *shapes* data: circle, square,
# triangle, ...). Build `alexnet("small", num_classes=10, image_size=16)` (any dropout), train it,
# and return it. The grader measures the accuracy of the returned model, in eval mode, on those same
# images: reach the manifest's `target_accuracy` (0.8) and return within `time_budget_s` seconds.
# (Fitting a small set is the first sanity check of any training loop; generalising to new
# images takes many more steps: `python -m minialex.train` does that in a few minutes.)
#
# The loop is yours: minialex's model, layers, `F.cross_entropy`, `minialex.optim` and
# `minialex.nn.init` are allowed; `minialex.train` is not.


# %%
def train_small_alexnet(images, labels, time_budget_s=60.0):
    """Train and return alexnet('small') fitted to (images, labels)."""
    # BEGIN SOLUTION
    start = time.perf_counter()
    minialex.manual_seed(0)
    model = alexnet("small", num_classes=10, image_size=images.shape[-1], dropout=0.0)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            init.kaiming_normal_(p, nonlinearity="relu")
        else:
            init.zeros_(p)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batch = 32
    for epoch in range(60):
        order = rng.permutation(len(images))
        correct = 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            logits = model(minialex.tensor(images[idx]))
            loss = F.cross_entropy(logits, labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.numpy().argmax(axis=1) == labels[idx]).sum())
        if correct >= 0.9 * len(images) or time.perf_counter() - start > 0.9 * time_budget_s:
            break
    model.eval()
    return model
    # END SOLUTION
