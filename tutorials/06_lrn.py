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
# # 06 · Local response normalization
#
# After the ReLUs of conv1 and conv2, the AlexNet paper divides every activation by a function of
# the activations of its **neighbouring channels** at the same pixel: a strongly active channel
# damps its neighbours ("lateral inhibition", borrowed from real neurons). The paper credits it with
# 1.4% lower top-1 error; later networks replaced it with batch normalization, or dropped it
# (torchvision's AlexNet has none).
#
# The idea is simple. What makes LRN confusing is that it is written in **four different
# conventions**, and copying the constants from one into another is a classic bug. In this
# tutorial:
#
# 1. the formula, computed by hand on one pixel;
# 2. the paper, PyTorch / Caffe and TensorFlow conventions, and how minialex converts between them;
# 3. what LRN does to real feature maps (pictures).

# %%
import sys

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import save, sample_photo  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import nn
from minialex.nn import functional as F
from minialex.nn import init

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. The formula
#
# minialex computes PyTorch's convention. For input `a` of shape `(N, C, H, W)`, at every pixel and
# channel `c`, sum the squares over a window of `size` channels centred on `c` (channels outside
# `0..C-1` count as zero):
#
#     scale[c] = k + alpha / size * sum_{j = c - size//2}^{c + (size-1)//2} a[j]²
#     b[c]     = a[c] / scale[c] ** beta
#
# One pixel, five channels, `size = 3`, and constants chosen to make the effect large:

# %%
a = np.array([1.0, 2.0, 8.0, 2.0, 1.0]).reshape(1, 5, 1, 1)       # (N, C, H, W): channel 2 is strong
size, alpha, beta, k = 3, 0.3, 0.75, 1.0

scale = np.empty(5)
for c in range(5):
    window = [a[0, j, 0, 0] ** 2 for j in range(c - size // 2, c + (size - 1) // 2 + 1) if 0 <= j < 5]
    scale[c] = k + alpha / size * sum(window)
b_hand = a[0, :, 0, 0] / scale ** beta
b_minialex = F.local_response_norm(minialex.tensor(a), size, alpha=alpha, beta=beta, k=k).numpy()[0, :, 0, 0]
print("a        =", a[0, :, 0, 0])
print("scale    =", scale)
print("b (hand) =", b_hand)
print("b (F.local_response_norm) =", b_minialex)

# %% [markdown]
# Channels 1 and 3 sit next to the strong channel 2, so their windows include its `8² = 64`: they
# are divided by much more than channels 0 and 4, which are two channels away. Channel 1 had twice
# the input of channel 0, and ends with a smaller output:

# %%
print("a[1] / a[0] =", a[0, 1, 0, 0] / a[0, 0, 0, 0], "  b[1] / b[0] =", round(b_hand[1] / b_hand[0], 3))

# %% [markdown]
# ## 2. Four conventions for one idea
#
# | who | formula | AlexNet's layer |
# |---|---|---|
# | paper (Krizhevsky et al. 2012) | `b = a / (k + alpha * sum a²)^beta`, window of `n` channels | `n=5, k=2, alpha=1e-4, beta=0.75` |
# | PyTorch, Caffe | `b = a / (k + alpha/size * sum a²)^beta` | `size=5, alpha=5e-4, k=2` |
# | TensorFlow `tf.nn.lrn` | window `2*depth_radius + 1`, `alpha` **not** divided, `bias` = `k` | `depth_radius=2, bias=2, alpha=1e-4` |
#
# The difference that bites is `alpha`: the paper and TensorFlow multiply the sum of squares by
# `alpha`; PyTorch and Caffe by `alpha / size`. So the paper's `alpha = 1e-4` becomes `5e-4` in
# PyTorch. Here are the three formulas written literally, each in its own convention:

# %%
def window_sum_of_squares(a, before, after):
    """sum over channels c-before .. c+after of a², zero outside (a is (N, C, H, W))."""
    C = a.shape[1]
    s = np.zeros_like(a)
    for c in range(C):
        s[:, c] = (a[:, max(0, c - before):min(C, c + after + 1)] ** 2).sum(axis=1)
    return s

def lrn_paper(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    return a / (k + alpha * window_sum_of_squares(a, n // 2, n // 2)) ** beta

def lrn_pytorch(a, size, alpha=1e-4, beta=0.75, k=1.0):
    return a / (k + alpha / size * window_sum_of_squares(a, size // 2, (size - 1) // 2)) ** beta

def lrn_tensorflow(a, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
    return a / (bias + alpha * window_sum_of_squares(a, depth_radius, depth_radius)) ** beta

# %% [markdown]
# minialex's layer takes PyTorch's arguments and converts the others with three constructors:

# %%
print("from_paper():                                  ", nn.LocalResponseNorm.from_paper())
print("from_tensorflow(2, bias=2.0, alpha=1e-4, 0.75): ",
      nn.LocalResponseNorm.from_tensorflow(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75))
print("from_caffe(5, alpha=1e-4, beta=0.75, k=1.0):   ",
      nn.LocalResponseNorm.from_caffe(local_size=5, alpha=1e-4, beta=0.75, k=1.0), " (Caffe's bvlc_alexnet)")

# %% [markdown]
# Each conversion, checked against the literal formula on activations of a few tens to a few
# hundred (the scale where the `alpha` term matters, see section 3):

# %%
rng = np.random.default_rng(0)
acts = np.maximum(rng.normal(0, 80, (2, 8, 3, 3)), 0)            # (N, C, H, W), non-negative like a ReLU's output
t = minialex.tensor(acts)
checks = [
    ("paper", lrn_paper(acts), nn.LocalResponseNorm.from_paper()),
    ("tensorflow, depth_radius=5 (the TF1 listing)",
     lrn_tensorflow(acts, depth_radius=5, bias=1.0, alpha=0.001 / 9, beta=0.75),
     nn.LocalResponseNorm.from_tensorflow(depth_radius=5, bias=1.0, alpha=0.001 / 9, beta=0.75)),
    ("caffe (bvlc_alexnet)", lrn_pytorch(acts, 5, alpha=1e-4, beta=0.75, k=1.0),
     nn.LocalResponseNorm.from_caffe(5, alpha=1e-4, beta=0.75, k=1.0)),
]
for name, literal, layer in checks:
    print(f"{name:<46} {layer!r:<52} max difference {np.abs(layer(t).numpy() - literal).max():.1e}")

# %% [markdown]
# ### The bug this prevents
#
# A PyTorch listing of "the paper's AlexNet" in `docs/variants.md` writes
# `nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`: the paper's numbers in PyTorch's
# convention, so an `alpha` five times too weak. And Caffe's `bvlc_alexnet` (alpha `1e-4`, `k=1`) is
# not the paper's layer either. On the same activations:

# %%
paper = nn.LocalResponseNorm.from_paper()(t).numpy()
for name, layer in (("copied constants, LocalResponseNorm(5, 1e-4, 0.75, k=2)", nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)),
                    ("Caffe's bvlc_alexnet, LocalResponseNorm(5, 1e-4, 0.75, k=1)", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))):
    out = layer(t).numpy()
    active = acts > 0                                            # (where a = 0 both layers give 0)
    print(f"{name}: differs from the paper's layer by up to {100 * np.abs(out[active] / paper[active] - 1).max():.0f}%")

# %% [markdown]
# ## 3. What it does to an activation
#
# With a single active channel (its neighbours at zero), the paper's layer maps `a` to
# `a / (2 + 1e-4 a²)^0.75`. Below about 50 this is nearly a constant gain of `2^-0.75 = 0.59`.
# But it is **not monotone**: its derivative vanishes where `k + alpha a² = 2 beta alpha a²`,
# that is at `a = sqrt(k / (alpha (2 beta - 1))) = 200`, and beyond that a larger input gives a
# *smaller* output. Active neighbours lower the whole curve:

# %%
a_values = np.linspace(0, 800, 401)
layer = nn.LocalResponseNorm.from_paper()
fig, ax = plt.subplots(figsize=(6, 3.8))
for neighbour in (0, 100, 200):
    x = np.zeros((1, 5, 1, a_values.size))
    x[0, 2, 0] = a_values                       # the centre channel sweeps 0..800
    x[0, 1, 0] = x[0, 3, 0] = neighbour         # its two nearest neighbours are held fixed
    b = layer(minialex.tensor(x)).numpy()[0, 2, 0]
    ax.plot(a_values, b, label=f"neighbours at {neighbour}")
ax.plot(a_values, a_values * 2 ** -0.75, "k:", lw=0.8, label="a · 2^-0.75 (the small-a gain)")
ax.axvline(200, color="grey", lw=0.8, ls="--")
ax.set(xlabel="input activation a (centre channel)", ylabel="output b", ylim=(0, 60),
       title="paper's LRN (n=5, k=2, alpha=1e-4, beta=0.75)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
save(fig, "06_lrn_response.png")
b_alone = a_values / (2 + 1e-4 * a_values ** 2) ** 0.75
print(f"alone: the output peaks at a = {a_values[np.argmax(b_alone)]:.0f} (b = {b_alone.max():.2f})")

# %% [markdown]
# ![Output of the paper's LRN against the input activation of one channel, for neighbours at 0,
# 100 and 200: each curve rises almost linearly with slope 0.59, bends, peaks (at a = 200 when the
# neighbours are silent) and then slowly falls; stronger neighbours give lower
# curves](images/06_lrn_response.png)
#
# LRN is not scale-invariant: its effect depends on the absolute size of the activations. That is
# why the same constants behave differently on differently scaled inputs, and one reason
# batch normalization replaced it.

# %% [markdown]
# ## 4. What it does to feature maps
#
# A real photograph (Grace Hopper, shipped with matplotlib; `minialex.tutorial.sample_photo` crops it
# and resizes it with NumPy to 227x227) goes through a conv1 like the paper's (96 kernels of 11x11,
# stride 4) with **random** weights drawn
# from the paper's initialisation N(0, 0.01): no training here, so the maps respond to edges and
# colours in random combinations. Then ReLU, then the paper's LRN.

# %%
photo = sample_photo(227)                                               # (227, 227, 3), 0..255
x = minialex.tensor((photo - photo.mean(axis=(0, 1))).transpose(2, 0, 1)[None].copy())  # (1, 3, 227, 227)
minialex.manual_seed(0)
conv1 = nn.Conv2d(3, 96, 11, stride=4)
init.normal_(conv1.weight, 0.0, 0.01)
init.zeros_(conv1.bias)
with minialex.no_grad():
    a = F.relu(conv1(x))                                              # (1, 96, 55, 55)
    b = nn.LocalResponseNorm.from_paper()(a)
A, B = a.numpy()[0], b.numpy()[0]
print("after conv1 + ReLU:", A.shape, f"mean {A.mean():.1f}, 99th percentile {np.percentile(A, 99):.1f}, max {A.max():.1f}")

# %% [markdown]
# The gain `b / a` of a channel is at most `2^-0.75 = 0.59` (where its neighbours are silent) and
# falls where its neighbouring channels are strong. We pick the channel with the strongest
# response and show its map before and after, and its gain:

# %%
c = int(A.max(axis=(1, 2)).argmax())
gain = np.where(A[c] > 0, B[c] / np.maximum(A[c], 1e-12), np.nan)
neighbours = (A[max(0, c - 2):c + 3] ** 2).sum(axis=0)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
axes[0].imshow(photo.astype(np.uint8))
axes[0].set_title("input (227x227)\n", fontsize=10)
vmax = A[c].max()
for ax, image, title in ((axes[1], A[c], f"channel {c}\nafter conv1 + ReLU"),
                         (axes[2], B[c], f"channel {c} after LRN\n(same colour scale)")):
    im = ax.imshow(image, cmap="magma", vmin=0, vmax=vmax)
    ax.set_title(title, fontsize=10)
fig.colorbar(im, ax=axes[1:3], fraction=0.025)
im = axes[3].imshow(gain, cmap="viridis", vmin=np.nanmin(gain), vmax=2 ** -0.75)
axes[3].set_title("gain b / a\n(dark: strong neighbours)", fontsize=10)
fig.colorbar(im, ax=axes[3], fraction=0.046)
for ax in axes:
    ax.set_axis_off()
save(fig, "06_lrn_maps.png")
print(f"channel {c}: gain from {np.nanmin(gain):.3f} to {np.nanmax(gain):.3f}")
print("correlation between the gain and the neighbours' energy:",
      round(float(np.corrcoef(gain[A[c] > 0], neighbours[A[c] > 0])[0, 1]), 3))

# %% [markdown]
# ![Four panels: the photograph of Grace Hopper; one 55x55 conv1 feature map of random weights
# after ReLU, bright in spots on the face, the flag's stars and the medals; the same map after LRN,
# the same pattern but dimmer; and the gain b over a (blank where the map is 0), close to 0.59 in
# quiet areas and lowest where the map and its neighbouring channels respond
# strongly](images/06_lrn_maps.png)
#
# The gain is lowest exactly where the neighbouring channels are busy (strong negative
# correlation): LRN makes channels compete at each pixel.

# %% [markdown]
# ## 5. The gradient
#
# `scale[c]` depends on the neighbours, so `b[c]` depends on `a[j]` for every `j` in the window,
# and the backward pass has a second term (derived next to the kernel in `numpy_ref.py`):
#
#     grad wrt a[i] = gy[i] * scale[i]^-beta
#                     - 2 alpha beta / size * a[i] * sum_{c: i in window(c)} gy[c] * b[c] / scale[c]
#
# Checked in float64, with constants large enough for the second term to matter:

# %%
xg = minialex.tensor(rng.standard_normal((2, 7, 3, 3)) * 3, requires_grad=True)
print(minialex.gradcheck(lambda t: F.local_response_norm(t, 5, alpha=0.5, beta=0.75, k=1.0), [xg]))

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/backend/numpy_ref.py`: `lrn_forward`, `lrn_backward` (the derivation is next to them)
#   and `_channel_window_sum` (the window sum as a difference of prefix sums).
# - `minialex/ops/lrn.py`: `LocalResponseNorm` (the `Function`), `local_response_norm`,
#   `lrn_args_from_paper`, `lrn_args_from_tensorflow`.
# - `minialex/nn/layers.py`: the layer `LocalResponseNorm` with `from_paper`, `from_tensorflow`,
#   `from_caffe`.
# - `minialex/models/alexnet.py`: `_paper` and `_small` use `from_paper()`; `_tf` uses
#   `from_tensorflow` with the listing's constants.
# - `kernels/lrn.cu`: the CUDA kernel. `docs/variants.md`: the conventions and the seeds' LRN bugs.
# - `tests/test_lrn.py`: PyTorch's values, the conversions, gradcheck.
#
# Next: **07 · ReLU and dropout**.
