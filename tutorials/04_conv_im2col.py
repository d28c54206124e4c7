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
# # 04 · Convolution by im2col
#
# A convolution written as loops has six nested loops and runs at a few percent of what the
# processor can do. Caffe (and minialex, and for many layers still cuDNN) turns it into **one
# matrix product** instead: copy every receptive field into a column of a big matrix (*im2col*),
# then multiply by the weights. Matrix products are what BLAS libraries and GPUs are best at.
#
# In this tutorial:
#
# 1. convolution as loops: the definition;
# 2. im2col, drawn as a picture, and the GEMM that follows;
# 3. the backward pass: two more GEMMs and **col2im**, the transpose of im2col;
# 4. what it costs in memory, layer by layer, for two AlexNets;
# 5. grouped convolution and the paper's two towers;
# 6. the two convolutions of minialex, composed and fused, agree.
#
# Notation (the same in every file of minialex): `x` is `(N, C, H, W)`, the weight `(OC, C, KH, KW)`,
# stride `SH, SW`, padding `PH, PW`, output `(N, OC, OH, OW)` with `OH = (H + 2*PH - KH) // SH + 1`.

# %%
import sys

import numpy as np

from matplotlib.patches import Rectangle

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex.backend import numpy_ref
from minialex.nn import functional as F

np.set_printoptions(precision=4, suppress=True, linewidth=120)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. The definition, as loops
#
# Output pixel `(oh, ow)` of output channel `oc` is the sum, over input channels and kernel taps, of
# the input under the kernel times the kernel. (Deep learning's "convolution" does not flip the
# kernel: mathematically it is a cross-correlation.)

# %%
def conv2d_loops(x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH = (H + 2 * padding - KH) // stride + 1
    OW = (W + 2 * padding - KW) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for oc in range(OC):
            for oh in range(OH):
                for ow in range(OW):
                    window = xp[n, :, oh * stride:oh * stride + KH, ow * stride:ow * stride + KW]  # (C, KH, KW)
                    y[n, oc, oh, ow] = (window * w[oc]).sum()        # the C, KH, KW loops
    return y


x = np.arange(1.0, 33.0).reshape(1, 2, 4, 4)       # N=1, C=2, H=W=4: channel 0 holds 1..16, channel 1 17..32
w = np.zeros((1, 2, 3, 3))
w[0, 0, 1, 1] = 1.0                                  # a kernel that copies the centre of channel 0 ...
w[0, 1, 0, 0] = 0.1                                  # ... plus a tenth of the top-left of channel 1
print("x[0, 0] =\n", x[0, 0])
print("conv2d_loops(x, w, padding=1)[0, 0] =\n", conv2d_loops(x, w, padding=1)[0, 0])

# %% [markdown]
# ## 2. im2col: every receptive field becomes a column
#
# For each output pixel, copy its receptive field (`C * KH * KW` numbers: here 2 x 3 x 3 = 18) into
# one column. With `N * OH * OW` output pixels (here 1 x 4 x 4 = 16), that makes a matrix `cols` of
# shape `(C*KH*KW, N*OH*OW)`. Rows are ordered `(c, kh, kw)`, exactly like
# `weight.reshape(OC, -1)`; columns are ordered `(n, oh, ow)`. Taps that fall in the zero padding
# become zeros.

# %%
KH = KW = 3
N, C, H, W = x.shape
OH = OW = 4                                          # padding 1, stride 1: the same size as the input
cols = np.empty((C * KH * KW, N * OH * OW))          # kernels never allocate: the caller passes the output
numpy_ref.im2col(x, KH, KW, 1, 1, 1, 1, 1, 1, cols)  # (KH, KW, SH, SW, PH, PW, DH, DW, out)
print("cols shape:", cols.shape)
print(cols.astype(int))

# %% [markdown]
# Look at column 5, the output pixel `(oh, ow) = (1, 1)`: its first 9 rows are the 3x3 block of
# channel 0 around pixel (1, 1) (the numbers 1, 2, 3, 5, 6, 7, 9, 10, 11), its last 9 rows the same
# block of channel 1. Column 0, the corner, has zeros where its window hangs over the padding. The
# picture shows both:

# %%
def draw_im2col(x, cols, column, path):
    C, H, W = x.shape[1:]
    oh, ow = divmod(column, OW)
    fig = plt.figure(figsize=(12, 5.2))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 3.2], wspace=0.2, hspace=0.35)
    for c in range(C):                                     # the input channels, the window outlined
        ax = fig.add_subplot(grid[c, 0])
        ax.imshow(x[0, c], cmap="Blues", vmin=-10, vmax=40)
        for (i, j), v in np.ndenumerate(x[0, c]):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=9)
        ax.add_patch(Rectangle((ow - 1 - 0.5, oh - 1 - 0.5), KW, KH, fill=False, ec="red", lw=2.5))
        ax.set(title=f"input channel c={c}", xticks=range(W), yticks=range(H))
    ax = fig.add_subplot(grid[:, 1])                       # the cols matrix
    ax.imshow(np.where(cols == 0, np.nan, cols), cmap="Blues", vmin=-10, vmax=40, aspect="auto")
    for (i, j), v in np.ndenumerate(cols):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="grey" if v == 0 else "black")
    ax.add_patch(Rectangle((column - 0.5, -0.5), 1, cols.shape[0], fill=False, ec="red", lw=2.5))
    ax.set_yticks(range(cols.shape[0]), [f"c{r // 9} kh{r // 3 % 3} kw{r % 3}" for r in range(cols.shape[0])],
                  fontsize=7)
    ax.set_xticks(range(cols.shape[1]), [f"{j // OW},{j % OW}" for j in range(cols.shape[1])], fontsize=7)
    ax.set(title="cols = im2col(x): one row per (c, kh, kw), one column per output pixel; 0 = padding",
           xlabel="column: output pixel (oh, ow) of image n=0")
    save(fig, path)


draw_im2col(x, cols, column=5, path="04_im2col.png")

# %% [markdown]
# ![Left: the two 4x4 input channels, numbered 1 to 16 and 17 to 32, with the 3x3 window of output
# pixel (1, 1) outlined in red. Right: the 18 by 16 cols matrix with every entry written in it,
# rows labelled by channel and kernel tap, columns by output pixel; column (1, 1) is outlined and
# holds exactly the numbers inside the two red windows; entries copied from the padding are
# zeros](images/04_im2col.png)

# %% [markdown]
# ### The GEMM
#
# Now the whole convolution, for every image, output channel and pixel at once, is one matrix
# product (GEMM, "general matrix multiply"):
#
#     y (OC, N*OH*OW) = weight.reshape(OC, C*KH*KW) @ cols (C*KH*KW, N*OH*OW)
#
# followed by a reshape to `(OC, N, OH, OW)` and a transpose to `(N, OC, OH, OW)`.

# %%
def conv2d_im2col(x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH = (H + 2 * padding - KH) // stride + 1
    OW = (W + 2 * padding - KW) // stride + 1
    cols = np.empty((C * KH * KW, N * OH * OW))
    numpy_ref.im2col(x, KH, KW, stride, stride, padding, padding, 1, 1, cols)
    y = w.reshape(OC, -1) @ cols                                        # (OC, N*OH*OW)
    return y.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)               # (N, OC, OH, OW)


rng = np.random.default_rng(0)
xr = rng.standard_normal((2, 3, 7, 7))
wr = rng.standard_normal((4, 3, 3, 3))
loops = conv2d_loops(xr, wr, stride=2, padding=1)
gemm = conv2d_im2col(xr, wr, stride=2, padding=1)
fused = F.conv2d(minialex.tensor(xr), minialex.tensor(wr), stride=2, padding=1).numpy()
print("output shape:", gemm.shape)
print("loops vs im2col + GEMM, max difference:", np.abs(loops - gemm).max())
print("loops vs F.conv2d,      max difference:", np.abs(loops - fused).max())

# %% [markdown]
# ## 3. Backward: two GEMMs and col2im
#
# The forward pass is `Y = Wm @ cols` with `Wm = weight.reshape(OC, -1)`: a matrix product, so
# tutorial 03's rules apply. With `gY` the output gradient arranged like `Y`, `(OC, N*OH*OW)`:
#
#     grad wrt weight:  gW = gY @ cols.T            (OC, C*KH*KW)
#     grad wrt cols:    gcols = Wm.T @ gY           (C*KH*KW, N*OH*OW)
#     grad wrt x:       gx = col2im(gcols)
#
# `im2col` copied each input pixel into several columns (once per window that covers it).
# Its transpose, **col2im**, adds every column entry back into the pixel it came from. Feed it
# ones, and each pixel receives the number of windows it belongs to:

# %%
counts = np.empty((1, 1, 4, 4))
numpy_ref.col2im(np.ones((1 * KH * KW, 1 * OH * OW)), KH, KW, 1, 1, 1, 1, 1, 1, counts)
print("col2im(ones): how many 3x3 windows (padding 1) cover each pixel\n", counts[0, 0])

# %% [markdown]
# Corners are in 4 windows, edges in 6, the inside in all 9. "Transpose" is meant exactly: for any
# `x` and any `c`, `<im2col(x), c> = <x, col2im(c)>`. That identity is why col2im is the backward of
# im2col:

# %%
c_any = rng.standard_normal(cols.shape)
back = np.empty_like(x)
numpy_ref.col2im(c_any, KH, KW, 1, 1, 1, 1, 1, 1, back)
print("<im2col(x), c> =", (cols * c_any).sum(), "   <x, col2im(c)> =", (x * back).sum())

# %% [markdown]
# The three backward formulas, by hand, against minialex's `F.conv2d`:

# %%
OC, N = wr.shape[0], xr.shape[0]
OHr = OWr = 4
gy = rng.standard_normal((N, OC, OHr, OWr))                                  # dL/dy, NCHW
gY = gy.transpose(1, 0, 2, 3).reshape(OC, -1)                                # (OC, N*OH*OW)
cols_r = np.empty((3 * 9, N * OHr * OWr))
numpy_ref.im2col(xr, 3, 3, 2, 2, 1, 1, 1, 1, cols_r)
gW = (gY @ cols_r.T).reshape(wr.shape)                                       # grad wrt weight
gx = np.empty_like(xr)
numpy_ref.col2im(wr.reshape(OC, -1).T @ gY, 3, 3, 2, 2, 1, 1, 1, 1, gx)      # grad wrt x

xt = minialex.tensor(xr, requires_grad=True)
wt = minialex.tensor(wr, requires_grad=True)
F.conv2d(xt, wt, stride=2, padding=1).backward(gy)
print("grad wrt weight, max difference:", np.abs(gW - wt.grad.numpy()).max())
print("grad wrt x,      max difference:", np.abs(gx - xt.grad.numpy()).max())

# %% [markdown]
# ## 4. The memory it costs
#
# im2col is fast but greedy: every input pixel is copied once per window that covers it, about
# `KH*KW / (SH*SW)` times. Here are the `cols` matrices of every convolution of two AlexNets
# (torchvision's and the paper's), computed from the models themselves (the input of each layer
# comes from `summary`), in float32:

# %%
from minialex import nn
from minialex.models import VARIANTS, alexnet, summary
from minialex.ops.conv import get_im2col_budget


def conv_inputs(model, input_shape):
    """[(name, conv layer, input shape C x H x W, output shape)] of every Conv2d, in order."""
    rows = summary(model, input_shape, verbose=False)
    modules = dict(model.named_modules())
    shape, found = tuple(input_shape), []
    for row in rows:
        if isinstance(modules[row["name"]], nn.Conv2d):
            found.append((row["name"], modules[row["name"]], shape, row["output_shape"]))
        shape = row["output_shape"]
    return found


MiB = 2 ** 20
batch = 128                                              # the paper's batch size
convs = {}
for variant in ("paper",) if FAST else ("torchvision", "paper"):    # (fast mode: one network)
    minialex.manual_seed(0)
    model = alexnet(variant)
    convs[variant] = conv_inputs(model, VARIANTS[variant].input_shape)
    print(f"\n{variant} AlexNet, input {'x'.join(map(str, VARIANTS[variant].input_shape))}, float32")
    print(f"{'layer':<12}{'input':>12}{'kernel':>12}{'output':>12}{'cols':>16}{'input MiB':>11}"
          f"{'cols MiB':>10}{'x':>6}{'cols MiB, N=128':>17}")
    total = 0
    for name, conv, (Cin, Hin, Win), (OCo, OHo, OWo) in convs[variant]:
        KHc, KWc = conv.kernel_size
        rows_, columns = Cin * KHc * KWc, OHo * OWo
        cols_bytes = rows_ * columns * 4
        input_bytes = Cin * Hin * Win * 4
        total += cols_bytes
        print(f"{name:<12}{f'{Cin}x{Hin}x{Win}':>12}{f'{KHc}x{KWc}/{conv.stride}':>12}{f'{OCo}x{OHo}x{OWo}':>12}"
              f"{f'{rows_}x{columns}':>16}{input_bytes / MiB:11.2f}{cols_bytes / MiB:10.2f}"
              f"{cols_bytes / input_bytes:6.1f}{batch * cols_bytes / MiB:17.0f}")
    print(f"all convolutions: {total / MiB:.1f} MiB per image, {batch * total / 2**30:.2f} GiB for a batch of {batch}")

# %% [markdown]
# The column `x` is `cols / input`: how many times each input value is copied (about `KH*KW/(SH*SW)`).
# For a batch of 128, conv2's columns alone take most of a gigabyte, and those of all five layers
# about 2 GiB, far more than the layers' inputs. minialex therefore processes a
# batch in **chunks** of images so that one `cols` buffer never exceeds a budget (32 MiB by
# default, `minialex.ops.conv.set_im2col_budget`), one GEMM per chunk. When the whole batch fits in
# one chunk the columns are kept for backward; otherwise backward recomputes them chunk by chunk
# (an im2col costs far less than the GEMM it feeds). Small chunks are also *faster* than big ones:
# a chunk's columns are still in the CPU's cache when the GEMM reads them (the numbers are at the
# top of `minialex/ops/conv.py`).

# %%
budget = get_im2col_budget()
print(f"budget: {budget / MiB:.0f} MiB")
for name, conv, (Cin, Hin, Win), (OCo, OHo, OWo) in convs["paper"]:
    per_image = Cin * conv.kernel_size[0] * conv.kernel_size[1] * OHo * OWo * 4
    chunk = max(1, min(batch, budget // per_image))
    gemms = -(-batch // chunk)
    print(f"paper {name:<12} {chunk:4d} images per chunk -> {gemms} GEMM{'s' if gemms > 1 else ''} for a batch of {batch}")

# %% [markdown]
# ## 5. Grouped convolution and the two towers
#
# With `groups=G`, the input channels are split into `G` groups and each output channel sees only
# its own group's `C/G` inputs: the weight is `(OC, C/G, KH, KW)`, `G` times smaller. A grouped
# convolution is exactly `G` independent convolutions, side by side:

# %%
xg = rng.standard_normal((1, 4, 5, 5))
wg = rng.standard_normal((6, 2, 3, 3))                         # OC=6, C/G = 4/2 = 2
grouped = F.conv2d(minialex.tensor(xg), minialex.tensor(wg), groups=2).numpy()
halves = np.concatenate([conv2d_loops(xg[:, :2], wg[:3]),        # group 0: channels 0-1 -> outputs 0-2
                         conv2d_loops(xg[:, 2:], wg[3:])], axis=1)  # group 1: channels 2-3 -> outputs 3-5
print("weight shape with groups=2:", wg.shape, "| with groups=1 it would be", (6, 4, 3, 3))
print("grouped conv == two convs side by side:", np.allclose(grouped, halves))

# %% [markdown]
# In minialex's GEMM this is free: the rows of `cols` for group `g` are a contiguous block
# (rows are ordered by channel first), so `cols.reshape(G, C/G*KH*KW, N*OH*OW)` and
# `weight.reshape(G, OC/G, C/G*KH*KW)` make one batched matrix product of `G` independent GEMMs.
#
# **The paper's two towers.** In 2012 one GTX 580 had 3 GB of memory, too little for AlexNet at
# batch 128, so Krizhevsky split every layer's kernels over two GPUs. conv2, conv4 and conv5 only
# saw the maps on their own GPU; conv1, conv3 and the fully connected layers saw both. In one
# process, that is `groups=2` on conv2, conv4 and conv5:

# %%
paper = model                                                    # the last model built above
print(f"{'layer':<12}{'groups':>7}{'weight':>18}{'params (2 towers)':>19}{'params (1 tower)':>18}")
saved = 0
for name, conv, _, _ in convs["paper"]:
    OCc, Cg, KHc, KWc = conv.weight.shape
    two = conv.weight.size + conv.bias.size
    one = OCc * conv.in_channels * KHc * KWc + OCc               # the same layer with groups=1
    saved += one - two
    print(f"{name:<12}{conv.groups:>7}{str(conv.weight.shape):>18}{two:>19,}{one:>18,}")
print(f"whole network: {paper.num_parameters():,} parameters with two towers, "
      f"{paper.num_parameters() + saved:,} with one")

# %% [markdown]
# ## 6. Two convolutions, one answer
#
# minialex has two implementations, and the tests check that they agree:
#
# * `F.conv2d`: the **fused** op, whose forward and backward are written by hand (im2col, GEMM per
#   chunk and group, col2im). The layers use it.
# * `F.conv2d_composed`: a differentiable `Im2col` `Function` (its backward is col2im) followed by
#   `@`. Autograd derives the whole backward from those two pieces. It is here to be read.

# %%
xc = rng.standard_normal((2, 4, 9, 9))
wc = rng.standard_normal((6, 2, 3, 3))
bc = rng.standard_normal(6)
results = {}
for conv in (F.conv2d, F.conv2d_composed):
    xt, wt, bt = (minialex.tensor(a, requires_grad=True) for a in (xc, wc, bc))
    y = conv(xt, wt, bt, stride=2, padding=1, groups=2)
    y.backward(np.ones(y.shape))
    results[conv.__name__] = [y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]
for what, a, b in zip(("output", "grad wrt x", "grad wrt weight", "grad wrt bias"), *results.values()):
    print(f"{what:<16} conv2d vs conv2d_composed: max difference {np.abs(a - b).max():.1e}")

# %% [markdown]
# Both pass `gradcheck` in float64 too:

# %%
xs = minialex.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
ws = minialex.tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
for conv in (F.conv2d, F.conv2d_composed):
    print(f"{conv.__name__:<16}", minialex.gradcheck(lambda x, w: conv(x, w, stride=2, padding=1, groups=2), [xs, ws]))

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/backend/numpy_ref.py`: `im2col` and `col2im` (the layout `(C*KH*KW, N*OH*OW)`, one
#   strided slice per kernel tap).
# - `minialex/ops/conv.py`: `Conv2d.forward` (chunks, one GEMM per group), `Conv2d.backward`
#   (`gy @ cols.T`, `col2im(weight.T @ gy)`, `bias_grad`), `set_im2col_budget`,
#   `get_im2col_budget`, and the teaching twin `Im2col` / `conv2d_composed`.
# - `minialex/nn/layers.py`: `Conv2d` (PyTorch's arguments, `groups`).
# - `minialex/models/alexnet.py`: `_paper` (`groups=g` on conv2, conv4, conv5) and `_torchvision`.
# - `minialex/backend/numba_cpu.py` and `kernels/im2col.cu`: the same `im2col` in Numba and CUDA
#   (tutorials 10 and 11).
# - `tests/test_conv.py`: PyTorch's values, gradcheck, and `conv2d` against `conv2d_composed`.
#
# Next: **05 · Pooling**.
