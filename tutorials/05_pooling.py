# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Pooling
#
# Pooling shrinks a feature map by summarising each small window with one number. AlexNet uses
# three kinds:
#
# 1. **max pooling** with *overlapping* 3x3 windows, stride 2 (the paper's choice, after conv1,
#    conv2 and conv5): we will see exactly where its gradient goes;
# 2. **average pooling** (the TensorFlow listing of `docs/variants.md`);
# 3. **adaptive average pooling** to 6x6 (torchvision), which picks its windows ("bins") from the
#    input size.

# %%
import sys

import numpy as np

from matplotlib.patches import Rectangle

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex.backend import numpy_ref
from minialex.nn import functional as F
from minialex.ops.pool import adaptive_bins

np.set_printoptions(precision=3, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. Max pooling, 3x3 windows, stride 2
#
# A 7x7 map (one image, one channel) holding the numbers 0 to 48 in random order, so that no two
# are equal. With a 3x3 window moving 2 pixels at a time, the output is
# `OH = (7 - 3) // 2 + 1 = 3` by 3. Neighbouring windows **overlap**: they share row 2, row 4,
# column 2 and column 4.

# %%
rng = np.random.default_rng(3)
x_np = rng.permutation(49).reshape(1, 1, 7, 7).astype(np.float64)
x = minialex.tensor(x_np, requires_grad=True)
y = F.max_pool2d(x, kernel_size=3, stride=2)
print("x =\n", x_np[0, 0].astype(int))
print("y = max_pool2d(x, 3, stride=2) =\n", y.numpy()[0, 0].astype(int))

# %% [markdown]
# The forward kernel also records, for every output, **which** input element won its window: its
# flat index `h * W + w` in the 7x7 plane (`argmax`). Backward needs nothing else.

# %%
out = np.empty((1, 1, 3, 3))
argmax = np.empty((1, 1, 3, 3), dtype=np.int32)
numpy_ref.maxpool2d_forward(x_np, 3, 3, 2, 2, 0, 0, 1, 1, out, argmax)   # (KH, KW, SH, SW, PH, PW, DH, DW)
print("argmax (h*7 + w) =\n", argmax[0, 0])
print("as (h, w):", [divmod(int(i), 7) for i in argmax.ravel()])

# %% [markdown]
# ### Where the gradient goes
#
# `y` is the winner's value, so `dy/dx` is 1 for the winner and 0 for the rest of the window. The
# whole gradient of each output goes to one input element. Send back the gradients `1, 2, ..., 9`
# (one per output, so we can tell them apart):

# %%
gy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
y.backward(gy)
print("gy =\n", gy[0, 0].astype(int))
print("x.grad =\n", x.grad.numpy()[0, 0].astype(int))
print(f"{int((x.grad.numpy() == 0).sum())} of the 49 inputs receive no gradient at all")

# %% [markdown]
# Most inputs get nothing. And because the windows overlap, one element can win **several**
# windows and receive the sum of their gradients: an element on a shared row or column (2 or 4)
# can win two windows, one on a shared row *and* column, such as (2, 2), up to four. The picture
# shows every window's winner:

# %%
def draw_max_pool(x2, argmax2, gx2, path):
    H, W = x2.shape
    won = {}                                                   # element -> the outputs (1..9) it won
    for k, winner in enumerate(argmax2.ravel()):
        won.setdefault(divmod(int(winner), W), []).append(k + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    ax = axes[0]
    shade = np.zeros((H, W))
    for (h, w) in won:
        shade[h, w] = 1
    ax.imshow(shade, cmap="Oranges", vmin=0, vmax=2.5)
    for (i, j), v in np.ndenumerate(x2):
        ax.text(j, i - (0.12 if (i, j) in won else 0), f"{v:.0f}", ha="center", va="center", fontsize=10)
        if (i, j) in won:
            ax.text(j, i + 0.28, "#" + ",".join(map(str, won[(i, j)])), ha="center", va="center", fontsize=7,
                    color="darkred")
    for k, colour in ((0, "tab:blue"), (1, "tab:green")):   # windows #1 and #2 share column 2
        ax.add_patch(Rectangle((2 * k - 0.45, -0.45), 2.9, 2.9, fill=False, ec=colour, lw=2.5))
    ax.set(title="input; shaded: winners (#: the outputs they won)\nblue, green: windows #1 and #2 overlap",
           xticks=range(W), yticks=range(H))
    ax = axes[1]
    ax.imshow(gx2, cmap="Reds", vmin=0, vmax=gx2.max() * 1.2)
    for (i, j), v in np.ndenumerate(gx2):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=10, color="black" if v else "lightgrey")
    ax.set(title="x.grad for gy = 1..9 (output #k sends k)\nwinners only, summed over the windows won",
           xticks=range(W), yticks=range(H))
    save(fig, path)


draw_max_pool(x_np[0, 0], argmax[0, 0], x.grad.numpy()[0, 0], "05_maxpool_gradient.png")
wins = np.bincount(argmax.ravel(), minlength=49).reshape(7, 7)    # windows won by each element
for h, w in zip(*np.nonzero(wins > 1)):
    print(f"element ({h}, {w}) won {wins[h, w]} windows: its gradient {int(x.grad.numpy()[0, 0, h, w])} is their sum")

# %% [markdown]
# ![Left: the 7x7 input with its numbers; the five elements that won a window are shaded and
# labelled with the outputs they won (the 47 in the middle of the top-left quarter won outputs 1,
# 2, 4 and 5); the first two 3x3 windows are outlined and share a column. Right: the input's
# gradient for output gradients 1 to 9: zero almost everywhere, and on each winner the sum of the
# gradients of the windows it won](images/05_maxpool_gradient.png)

# %% [markdown]
# With non-overlapping 2x2 windows (stride 2), every element belongs to at most one window, so
# none can receive two gradients. The paper reports that overlapping pooling lowered its top-1
# error by 0.4% (and overfitted slightly less).

# %%
x2 = minialex.tensor(x_np[:, :, :6, :6], requires_grad=True)
y2 = F.max_pool2d(x2, 2, 2)
y2.backward(np.ones(y2.shape))
print("2x2 stride 2 on the top-left 6x6: x.grad =\n", x2.grad.numpy()[0, 0].astype(int))

# %% [markdown]
# ### AlexNet's sizes
#
# `OH = (H + 2*PH - KH) // SH + 1`. The paper's three pools take 55 to 27, 27 to 13 and 13 to 6:

# %%
for H in (55, 27, 13):
    print(f"max_pool2d(3, 2) on {H}x{H} -> {(H - 3) // 2 + 1}x{(H - 3) // 2 + 1}")

# %% [markdown]
# ### Ties
#
# When several elements share the maximum, the gradient must go somewhere. minialex follows
# PyTorch: the **first** maximum, scanning the window row by row. (Tutorial 02 shows how
# `gradcheck` treats such a tie: as a kink.)

# %%
tie = minialex.tensor(np.array([[[[5.0, 1.0, 5.0],
                                   [0.0, 5.0, 2.0],
                                   [1.0, 0.0, 3.0]]]]), requires_grad=True)
F.max_pool2d(tie, 3).backward(np.ones((1, 1, 1, 1)))
print("three 5s tie; the first one (row 0, column 0) gets the gradient:\n", tie.grad.numpy()[0, 0])

# %% [markdown]
# ## 2. Average pooling
#
# `y` is the mean of the window, so each element of a window receives `gy / 9`. With overlapping
# windows, elements on shared rows and columns receive from two (or four) windows:

# %%
xa = minialex.tensor(x_np, requires_grad=True)
ya = F.avg_pool2d(xa, 3, 2)
ya.backward(np.ones(ya.shape))
print("avg_pool2d(3, 2) output =\n", ya.numpy()[0, 0])
print("x.grad for gy = 1, times 9 (= number of windows covering each element) =\n",
      (9 * xa.grad.numpy()[0, 0]).round().astype(int))

# %% [markdown]
# With padding, should the padded zeros count in the mean? `count_include_pad=True` (PyTorch's
# default) divides by 9 everywhere; `False` divides only by the number of real elements, so a
# corner window of a constant map still averages to the constant:

# %%
ones = minialex.tensor(np.ones((1, 1, 4, 4)))
print("count_include_pad=True:\n", F.avg_pool2d(ones, 3, 1, padding=1, count_include_pad=True).numpy()[0, 0])
print("count_include_pad=False:\n", F.avg_pool2d(ones, 3, 1, padding=1, count_include_pad=False).numpy()[0, 0])

# %% [markdown]
# ## 3. Adaptive average pooling
#
# torchvision's AlexNet ends its convolutions with `AdaptiveAvgPool2d((6, 6))`: whatever the input
# size, the output is 6x6, so the classifier always receives `256 * 6 * 6 = 9216` numbers. Instead
# of a fixed window, output bin `i` of `OH` averages rows `floor(i*H/OH)` to `ceil((i+1)*H/OH) - 1`:

# %%
for H, OH in ((6, 6), (7, 6), (13, 6), (5, 3)):
    bins = adaptive_bins(H, OH)
    print(f"H={H:2d} -> {OH}: bins (start, end) {bins}  sizes {[e - s for s, e in bins]}")

# %% [markdown]
# * 6 -> 6 (torchvision at 224x224): every bin is one row, the layer does nothing;
# * 7 -> 6 (at 256x256): bins of 2 rows that overlap by one, like a 2x2 window with stride 1;
# * 13 -> 6: bins of 3 rows, overlapping by one;
# * when `OH` divides `H` the bins tile the input exactly: plain average pooling.
#
# Checked against the definition, and against `avg_pool2d` where `OH` divides `H`:

# %%
xb = rng.standard_normal((1, 1, 7, 7))
yb = F.adaptive_avg_pool2d(minialex.tensor(xb), (6, 6)).numpy()
by_hand = np.array([[xb[0, 0, h0:h1, w0:w1].mean() for (w0, w1) in adaptive_bins(7, 6)]
                    for (h0, h1) in adaptive_bins(7, 6)])
print("7x7 -> 6x6 equals the bin means:", np.allclose(yb[0, 0], by_hand))
xc = minialex.tensor(rng.standard_normal((1, 1, 6, 6)))
print("6x6 -> 3x3 equals avg_pool2d(2, 2):",
      np.allclose(F.adaptive_avg_pool2d(xc, 3).numpy(), F.avg_pool2d(xc, 2, 2).numpy()))

# %% [markdown]
# ## 4. Gradient check
#
# On random inputs (no ties), in float64:

# %%
xg = minialex.tensor(rng.standard_normal((2, 3, 7, 7)), requires_grad=True)
print("max_pool2d(3, 2):         ", minialex.gradcheck(lambda t: F.max_pool2d(t, 3, 2), [xg]))
print("avg_pool2d(3, 2, pad 1):  ", minialex.gradcheck(lambda t: F.avg_pool2d(t, 3, 2, padding=1), [xg]))
print("adaptive_avg_pool2d(6):   ", minialex.gradcheck(lambda t: F.adaptive_avg_pool2d(t, 6), [xg]))

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/backend/numpy_ref.py`: `maxpool2d_forward` (the winner and its `argmax`, the tie
#   rule), `maxpool2d_backward` (each gradient to its winner, summed with `np.add.at`),
#   `avgpool2d_forward`, `avgpool2d_backward` and `_avgpool_divisor` (`count_include_pad`).
# - `minialex/ops/pool.py`: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d` with `adaptive_bins`,
#   and `_pool_geometry` (the output size).
# - `minialex/nn/layers.py`: the layers `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`.
# - `kernels/pool.cu`: the CUDA kernels; their backward *gathers* (one thread per input element)
#   instead of scattering (tutorial 11).
# - `tests/test_pool.py`: PyTorch's values, ties, gradcheck.
#
# Next: **06 · Local response normalization**.
