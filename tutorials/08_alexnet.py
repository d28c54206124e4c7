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
# # 08 · AlexNet
#
# Tutorials 03 to 07 built every layer. Here they come together. "AlexNet" is not one network: the
# 2012 paper, torchvision, textbooks and blog posts each have their own version, and they differ
# in widths, normalization, pooling, dropout placement and initialisation. minialex builds each of
# them with `alexnet(variant)`. In this tutorial:
#
# 1. the variants side by side;
# 2. the shape of the data after every layer (`summary`);
# 3. where the parameters are and where the arithmetic is: not in the same layers;
# 4. the paper's two towers;
# 5. a real photograph through the network, and the 96 feature maps of conv1.
#
# `docs/variants.md` tells where each variant comes from and which bugs the original listings had.

# %%
import sys

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save, sample_photo  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import nn
from minialex.models import VARIANTS, alexnet, summary

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. The variants side by side
#
# Every variant is an `AlexNet` module: `features` (convolutions, ReLUs, LRNs, pools), an optional
# `avgpool`, a flatten, and `classifier` (linear layers, ReLUs, dropouts). The table below is
# read off the built models themselves. (Building a model draws its ~60 million initial weights,
# a second or two each; in fast mode we build two of the six.)

# %%
for name, variant in VARIANTS.items():
    print(f"{name:<12} {variant.description}")

# %%
def describe(model):
    layers = [m for m in model.modules() if not m._modules]
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    pools = sorted({type(m).__name__.replace("2d", "") for m in layers if "Pool" in type(m).__name__})
    return dict(convs="-".join(str(c.out_channels) for c in convs),
                groups="".join(str(c.groups) for c in convs),
                lrn=sum(isinstance(m, nn.LocalResponseNorm) for m in layers),
                pools=", ".join(pools),
                fc="-".join(str(m.out_features) for m in linears),
                params=model.num_parameters())


built = ("paper", "small") if FAST else tuple(VARIANTS)
models = {}
print(f"{'variant':<12}{'input':>12}  {'conv widths':<22}{'groups':<8}{'LRN':>4}  {'pooling':<28}{'classifier':<16}{'parameters':>12}")
for name in built:
    minialex.manual_seed(0)
    models[name] = model = alexnet(name)
    d = describe(model)
    shape = "x".join(map(str, VARIANTS[name].input_shape))
    print(f"{name:<12}{shape:>12}  {d['convs']:<22}{d['groups']:<8}{d['lrn']:>4}  {d['pools']:<28}{d['fc']:<16}{d['params']:>12,}")

# %% [markdown]
# The big differences: the paper's two towers (groups 2 on conv2, conv4, conv5) and its LRN;
# torchvision's narrower 64-192-384-256-256 convolutions (from Krizhevsky's 2014 "One weird trick"
# paper) with an adaptive average pool; `small`, AlexNet's structure scaled down to 32x32 images
# with about 1.2 million parameters: the one that trains on a laptop (tutorial 09).

# %% [markdown]
# ## 2. Shapes, layer by layer
#
# `summary(model, input_shape)` runs one batch of zeros through the model, records every layer's
# output, and counts parameters, multiply-adds and output memory. For the paper's network:

# %%
paper = models["paper"]
table = summary(paper, (3, 227, 227))

# %% [markdown]
# Follow the sizes: conv1 (11x11, stride 4) takes 227 to `(227 - 11) // 4 + 1 = 55`; each
# overlapping max-pool (3x3, stride 2) takes 55 to 27, 27 to 13 and 13 to 6; the padded convolutions
# keep their size. The classifier reads `256 * 6 * 6 = 9216` numbers.
#
# The paper says 224x224 but its numbers only work for 227 (a famous inconsistency):
# `(224 - 11) // 4 + 1 = 54`. Padding conv1 by 2 makes 224 work: `alexnet("paper", conv1_padding=2)`.
# A wrong size fails with a message that names the layer and a size that fits:

# %%
try:
    summary(paper, (3, 224, 224), verbose=False)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 3. Parameters here, arithmetic there
#
# A convolution's weight is small (it is shared by every pixel), but it is applied at every pixel;
# a fully connected layer's weight is huge but used once per image. So the parameters and the
# arithmetic live in different layers:

# %%
def cost_rows(model, input_shape):
    rows = [r for r in summary(model, input_shape, verbose=False) if r["type"] in ("Conv2d", "Linear")]
    names = [("conv" if r["type"] == "Conv2d" else "fc") for r in rows]
    labels, counts = [], {"conv": 0, "fc": 5}
    for kind in names:
        counts[kind] += 1
        labels.append(f"{kind}{counts[kind]}")
    return labels, np.array([r["params"] for r in rows]), np.array([r["mult_adds"] for r in rows])


costs = {name: cost_rows(models[name], VARIANTS[name].input_shape) for name in ("paper", "torchvision") if name in models}
for name, (labels, params, madds) in costs.items():
    conv = np.array([label.startswith("conv") for label in labels])
    print(f"{name}: convolutions hold {100 * params[conv].sum() / params.sum():.1f}% of the parameters "
          f"and do {100 * madds[conv].sum() / madds.sum():.1f}% of the multiply-adds "
          f"({madds.sum() / 1e9:.2f} G per image)")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
width = 0.8 / len(costs)
for k, (name, (labels, params, madds)) in enumerate(costs.items()):
    positions = np.arange(len(labels)) + (k - (len(costs) - 1) / 2) * width
    axes[0].bar(positions, params / 1e6, width, label=name)
    axes[1].bar(positions, madds / 1e6, width, label=name)
for ax, title in zip(axes, ("parameters (millions)", "multiply-adds per image (millions)")):
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
save(fig, "08_params_madds.png")

# %% [markdown]
# ![Two bar charts over the layers conv1 to conv5 and fc6 to fc8, for the paper's AlexNet and
# torchvision's. Left, parameters: tiny bars for the convolutions, huge ones for fc6 (about 38
# million) and fc7 (about 17 million). Right, multiply-adds: large bars for the convolutions (conv2
# the largest in the paper's network), small ones for the fully connected
# layers](images/08_params_madds.png)
#
# That split shaped the history of the network. The paper fought overfitting where the parameters
# are (dropout on fc6 and fc7), and Krizhevsky's 2014 "one weird trick" parallelised the
# convolutions by data (every GPU does the arithmetic on its own images) and the fully connected
# layers by model (every GPU holds part of the weights).

# %% [markdown]
# ## 4. The two towers
#
# In 2012, two GTX 580 GPUs of 3 GB each shared the network: each held half of every layer's
# kernels. conv2, conv4 and conv5 saw only the maps of their own GPU, which is a grouped
# convolution with `groups=2` (tutorial 04); conv1, conv3 and the fully connected layers saw both.
# Halving a layer's inputs halves its weights and its multiply-adds:

# %%
labels, params2, madds2 = costs["paper"]
convs = [m for m in paper.features if isinstance(m, nn.Conv2d)]
print(f"{'layer':<7}{'weight (2 towers)':>20}{'params, 2 towers':>18}{'1 tower':>12}{'mult-adds, 2 towers':>21}{'1 tower':>15}")
params1, madds1 = params2.copy(), madds2.copy()
for i, conv in enumerate(convs):
    params1[i] = conv.out_channels * conv.in_channels * np.prod(conv.kernel_size) + conv.out_channels
    madds1[i] = madds2[i] * conv.groups            # each output now sums over all C inputs, not C/2
    print(f"{labels[i]:<7}{str(conv.weight.shape):>20}{params2[i]:>18,}{params1[i]:>12,}{madds2[i]:>21,}{madds1[i]:>15,}")
print(f"whole network: {params2.sum():,} parameters with two towers, {params1.sum():,} with one")

# %% [markdown]
# minialex builds the one-tower reading with `alexnet("paper", towers=1)`:

# %%
if FAST:
    print("(fast mode: not built here; docs/variants.md gives 62,378,344)")
else:
    minialex.manual_seed(0)
    print("alexnet('paper', towers=1):", f"{alexnet('paper', towers=1).num_parameters():,}", "parameters")

# %% [markdown]
# ## 5. A photograph through the network
#
# matplotlib ships a photograph of Grace Hopper. We crop it to a square, resize it with NumPy to
# 227x227, subtract the mean colour (the paper subtracted the mean image; it did not scale the
# pixels to [0, 1]) and run the paper's network on it.
#
# **The weights are random**: the paper's initialisation, N(0, 0.01), no training. The maps below
# show what random filters respond to (edges and colour contrasts, in random mixtures), not what
# a trained AlexNet sees; tutorial 09 trains one.

# %%
photo = sample_photo(227)                                                         # (227, 227, 3)
x = minialex.tensor((photo - photo.mean(axis=(0, 1))).transpose(2, 0, 1)[None].astype(np.float32))  # (1, 3, 227, 227)
print("input:", x.shape, x.dtype)

# %% [markdown]
# Layer by layer, with a few statistics of each output:

# %%
paper.eval()                                          # dropout off
activations = {}
with minialex.no_grad():
    h = x
    for i, layer in enumerate(list(paper.features) + ["flatten"] + list(paper.classifier)):
        h = minialex.ops.basic.flatten(h, 1) if layer == "flatten" else layer(h)
        a = h.numpy()
        activations[i] = a
        label = layer if layer == "flatten" else type(layer).__name__
        print(f"{i:2d} {label:<18} {str(a.shape[1:]):<16} mean {a.mean():7.3f}  std {a.std():7.3f}  "
              f"zeros {100 * (a == 0).mean():3.0f}%")

# %% [markdown]
# Two things to notice:
#
# * every ReLU zeroes a large share of its inputs (a sparse code), and each max-pool removes most
#   of those zeros again;
# * with weights of std 0.01 the image's signal **shrinks** from layer to layer: by conv4 and conv5
#   the outputs are close to the **biases of 1** that the paper gives those layers, and almost no
#   ReLU is closed. That is what the biases were for: to keep the ReLUs open (passing gradient)
#   at the start of training. Kaiming initialisation (`variant="half"`) keeps the signal's size
#   instead (tutorial 07).
#
# The classifier's 1000 scores of a random network mean nothing yet:

# %%
logits = activations[max(activations)][0]
probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
print(f"1000 probabilities between {probs.min():.5f} and {probs.max():.5f} (uniform would be 0.001)")

# %% [markdown]
# ### The 96 maps of conv1 (after its ReLU)
#
# Each 55x55 map is one kernel's response at every position of the image (stride 4).

# %%
maps = activations[1][0]                                        # after conv1 + ReLU: (96, 55, 55)
fig = plt.figure(figsize=(14, 6.4))
grid = fig.add_gridspec(8, 20, wspace=0.08, hspace=0.08)
ax = fig.add_subplot(grid[1:7, 0:6])
ax.imshow(photo.astype(np.uint8))
ax.set_title("input, 227x227", fontsize=10)
ax.set_axis_off()
for k in range(96):
    ax = fig.add_subplot(grid[k // 12, 7 + k % 12])
    ax.imshow(maps[k], cmap="gray", vmin=0, vmax=max(float(maps[k].max()), 1e-6))
    ax.set_axis_off()
fig.suptitle("the paper's AlexNet with RANDOM weights (N(0, 0.01), untrained): "
             "the 96 feature maps of conv1 after ReLU, 55x55 each", fontsize=11)
save(fig, "08_feature_maps.png")

# %% [markdown]
# ![Left: the photograph of Grace Hopper in uniform, 227 by 227 pixels. Right: a grid of 96 small
# grey 55x55 maps, the responses of the untrained network's first-layer kernels after ReLU; each
# shows a ghost of her face and uniform, brightest at different edges and colour boundaries, many
# nearly black](images/08_feature_maps.png)

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/models/alexnet.py`: `alexnet` and `VARIANTS`; one builder per variant (`_paper` with
#   `towers` and `conv1_padding`, `_torchvision`, `_d2l`, `_half`, `_tf`, `_small`); `AlexNet.forward`
#   (features, avgpool, flatten, classifier, and the size check that names a fitting input).
# - `minialex/models/summary.py`: `summary`, `ModelSummary` (rows and totals), `_mult_adds`,
#   `describe_fit`.
# - `minialex/nn/module.py`: `Module` (`named_modules`, `num_parameters`, `eval`) and `Sequential`.
# - `minialex/nn/init.py`: `normal_`, `kaiming_normal_`, `default_` (the initialisations).
# - `docs/variants.md`: every variant's origin, numbers and the seed listings' bugs.
# - `tests/test_models.py`: shapes, parameter counts and gradchecks of every variant.
#
# Next: **09 · Training**.
