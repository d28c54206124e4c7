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
# # 07 · ReLU and dropout
#
# Two of AlexNet's ideas that every network since has kept:
#
# 1. **ReLU**, `max(x, 0)`, instead of the saturating sigmoid and tanh: its gradient does not
#    vanish, so deep networks train much faster (the paper's Figure 1: six times fewer epochs than
#    tanh on CIFAR-10);
# 2. **dropout**: during training, each unit of the fully connected layers is switched off at
#    random with probability 0.5, which stops units from relying on each other (co-adaptation) and
#    cut the paper's overfitting substantially.
#
# We also look at how minialex draws dropout masks: with a **counter-based** random generator, so
# that the same seed gives the same mask on every backend, in any order, on any number of threads.

# %%
import sys

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import backend, nn
from minialex.backend import numpy_ref
from minialex.nn import functional as F

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. Three activations and their gradients
#
# The derivative of the sigmoid `s(x) = 1 / (1 + e^-x)` is `s(x)(1 - s(x))`, at most **0.25**, and
# nearly 0 once `|x|` passes 5: the unit *saturates*. `tanh` is a rescaled sigmoid with derivative
# `1 - tanh²`, at most 1 but just as flat in its tails. ReLU's derivative is exactly 1 for every
# positive input, and 0 for negative ones. We compute the three derivatives with autograd:

# %%
def sigmoid(t):
    return 1 / (1 + (-t).exp())

def tanh(t):
    return 2 * sigmoid(2 * t) - 1

x = minialex.tensor(np.linspace(-6, 6, 241), requires_grad=True)
curves = {}
for name, fn in (("sigmoid", sigmoid), ("tanh", tanh), ("relu", F.relu)):
    x.grad = None
    y = fn(x)
    y.sum().backward()                       # d(sum y)/dx = dy/dx elementwise
    curves[name] = (y.numpy(), x.grad.numpy())
    print(f"{name:>8}: largest derivative {x.grad.numpy().max():.3f}, derivative at x = 5: "
          f"{x.grad.numpy()[np.argmin(np.abs(x.data - 5))]:.4f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for name, (y, dy) in curves.items():
    axes[0].plot(x.data, y, label=name)
    axes[1].plot(x.data, dy, label=name)
axes[0].set(title="activation", xlabel="x", ylim=(-1.5, 3))
axes[1].set(title="derivative", xlabel="x", ylim=(-0.1, 1.2))
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
save(fig, "07_activations.png")

# %% [markdown]
# ![Left: sigmoid rising from 0 to 1, tanh from -1 to 1, and ReLU, zero for negative x and equal
# to x for positive x. Right: their derivatives: the sigmoid's a low bump peaking at 0.25, tanh's a
# bump peaking at 1, both close to zero beyond |x| = 3; ReLU's a step from 0 to
# 1](images/07_activations.png)

# %% [markdown]
# ### Why saturation hurts deep networks
#
# Backpropagation multiplies one local derivative per layer. Through ten sigmoids the product is
# at most `0.25^10 ≈ 1e-6`. Here is a stack of ten `Linear(64, 64)` layers, each followed by the
# same activation, each initialised the way that suits its activation (`init.kaiming_normal_`
# with the activation's gain, so that the *forward* signal keeps its size): one backward pass from
# a random output gradient, then the size of each layer's weight gradient:

# %%
from minialex.nn import init


def gradient_per_layer(activation, gain_name, depth=10, width=64, seed=0):
    minialex.manual_seed(seed)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    for layer in layers:
        init.kaiming_normal_(layer.weight, nonlinearity=gain_name)   # std = gain / sqrt(fan_in)
        init.zeros_(layer.bias)
    rng = np.random.default_rng(seed)
    h = minialex.tensor(rng.standard_normal((32, width)).astype(np.float32))
    for layer in layers:
        h = activation(layer(h))
    h.backward(rng.standard_normal(h.shape).astype(np.float32))       # the same dL/dh for every activation
    return [float(np.linalg.norm(layer.weight.grad.numpy())) for layer in layers]

norms = {name: gradient_per_layer(fn, name) for name, fn in (("sigmoid", sigmoid), ("tanh", tanh), ("relu", F.relu))}
print("layer:   " + " ".join(f"{i:>8}" for i in range(1, 11)))
for name, values in norms.items():
    print(f"{name:>7}: " + " ".join(f"{v:8.1e}" for v in values))

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, values in norms.items():
    ax.semilogy(range(1, 11), values, marker="o", label=name)
ax.set(xlabel="layer (1 = first, next to the input)", ylabel="|| dL/dW ||",
       title="weight gradient, ten Linear(64, 64) + activation")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
save(fig, "07_gradient_depth.png")

# %% [markdown]
# ![Weight-gradient norm against the layer, on a log scale: with sigmoid it falls by about five
# orders of magnitude from the last layer to the first; with tanh and with ReLU it stays within a
# factor of about two across all ten layers](images/07_gradient_depth.png)
#
# With sigmoids, the first layers get gradients about five orders of magnitude smaller than the
# last: they barely learn. A well-initialised tanh holds up in this experiment, but its derivative
# collapses as soon as its inputs grow (0.0002 at `x = 5`, printed above), and training makes
# inputs grow. ReLU's gradient passes unchanged through every active unit, whatever its size, and
# it costs one comparison. Its own weakness: a unit whose input is negative for every example
# ("dead") passes no gradient at all, which is one reason the paper starts some biases at 1
# (tutorial 08).

# %% [markdown]
# ### ReLU in minialex
#
# `relu_forward` is `np.maximum(x, 0)`; `relu_backward` passes the gradient where the *output* is
# positive. At exactly `x = 0` the derivative does not exist; minialex uses 0, as PyTorch does
# (tutorial 02 shows how `gradcheck` treats that kink).

# %%
x = minialex.tensor(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]), requires_grad=True)
y = F.relu(x)
y.backward(np.ones(5))
print("x      =", x.numpy())
print("relu   =", y.numpy())
print("x.grad =", x.grad.numpy())

# %% [markdown]
# ## 2. Dropout
#
# In training, each element is kept with probability `1 - p` and dropped (set to 0) otherwise.
# minialex, like PyTorch, uses **inverted** dropout: the kept elements are multiplied by
# `1 / (1 - p)`, so the expected value of every element is unchanged, and evaluation needs no
# correction at all. (The paper instead kept everything at test time and multiplied the outputs by
# 0.5; the two are equivalent in expectation.)

# %%
x = minialex.tensor(np.ones((2, 8)))
print("training, p = 0.5:\n", F.dropout(x, p=0.5, training=True, seed=1).numpy())
print("evaluation:\n", F.dropout(x, p=0.5, training=False).numpy())
big = F.dropout(minialex.tensor(np.ones(100_000)), p=0.5, seed=2).numpy()
print(f"on 100,000 ones: {100 * (big == 0).mean():.2f}% dropped, mean {big.mean():.4f} (expected 1)")

# %% [markdown]
# The `nn.Dropout` layer follows the module's mode: `model.train()` switches dropout on,
# `model.eval()` off. Forgetting `eval()` before measuring accuracy is a classic bug (one of the
# seed listings in `docs/variants.md` has it):

# %%
layer = nn.Dropout(0.5)
x = minialex.tensor(np.arange(1.0, 9.0))
print("train():", layer.train()(x).numpy())
print("eval(): ", layer.eval()(x).numpy())

# %% [markdown]
# Backward applies the **same** mask and scale: a dropped element passed nothing forward, so it
# receives no gradient.

# %%
x = minialex.tensor(np.arange(1.0, 9.0), requires_grad=True)
y = F.dropout(x, p=0.5, seed=5)
y.backward(np.ones(8))
print("y      =", y.numpy())
print("x.grad =", x.grad.numpy())

# %% [markdown]
# ## 3. The mask: a counter-based random generator
#
# An ordinary generator (NumPy's `default_rng`) produces a *sequence*: number `i` depends on every
# number drawn before it. A GPU with thousands of threads, or Numba with several cores, would have
# to agree on who draws what. minialex's dropout mask uses **Philox-4x32-10** (Salmon et al., 2011)
# instead: a function that scrambles a counter with a key,
#
#     u[i] = philox(counter = i, key = seed)        (ten rounds of multiply, xor, add)
#
# so element `i` is decided by `(seed, i)` alone. Any thread can compute any element, in any order.

# %%
counters = np.arange(6, dtype=np.uint64)
print("philox(i, seed=0) for i = 0..5:", numpy_ref.philox_uint32(counters, 0))
print("the same counters, seed=1:     ", numpy_ref.philox_uint32(counters, 1))
print("counter 4 on its own, seed=0:  ", numpy_ref.philox_uint32(np.array([4], dtype=np.uint64), 0))

# %% [markdown]
# The top 24 bits of `u` give a uniform number in `[0, 2^24)`; the element is kept if it is at
# least `floor(p * 2^24)`, which happens with probability `1 - p`. `dropout_mask(seed, offset, p,
# mask)` fills `mask` with the decisions for elements `offset, offset + 1, ...`. Because each
# element depends only on its own counter, a mask made in two pieces equals the mask made at once:

# %%
p, seed = 0.5, 2024
whole = np.empty(16, dtype=np.uint8)
numpy_ref.dropout_mask(seed, 0, p, whole)
first, second = np.empty(10, dtype=np.uint8), np.empty(6, dtype=np.uint8)
numpy_ref.dropout_mask(seed, 0, p, first)
numpy_ref.dropout_mask(seed, 10, p, second)          # offset 10: the counters 10..15
print("threshold for p = 0.5:", numpy_ref.dropout_threshold(p), "= 2^23")
print("mask at once:       ", whole)
print("mask in two pieces: ", np.concatenate([first, second]))

# %% [markdown]
# And every backend computes the same bits. The Numba kernel splits the mask over CPU threads, the
# CUDA kernel gives one element to each GPU thread: neither changes a single bit.

# %%
x = np.arange(1.0, 13.0)
with backend.backend_scope("numpy"):
    reference = F.dropout(minialex.tensor(x), 0.5, seed=7).numpy()
print("numpy:", reference)
try:
    with backend.backend_scope("numba"):
        numba_mask = F.dropout(minialex.tensor(x), 0.5, seed=7).numpy()
    print("numba:", numba_mask, " identical:", np.array_equal(reference, numba_mask))
except backend.BackendUnavailable as err:
    print("numba backend not available here:", err)

# %% [markdown]
# ### Reproducible training
#
# Without an explicit `seed`, each dropout call draws a fresh 64-bit seed from minialex's one
# global generator. `minialex.manual_seed(s)` resets that generator, so a training run repeats
# its masks exactly (and, with the same initial weights and batches, its whole trajectory):

# %%
def three_masks():
    layer = nn.Dropout(0.5).train()
    return [layer(minialex.tensor(np.ones(8))).numpy() for _ in range(3)]

minialex.manual_seed(0)
run1 = three_masks()
minialex.manual_seed(0)
run2 = three_masks()
for a, b in zip(run1, run2):
    print(a, "==", b, np.array_equal(a, b))

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/ops/activation.py`: `ReLU` and `relu`; `Dropout` (mask, scale 1 / (1 - p), the same
#   mask in backward) and `dropout` (`training`, `seed`).
# - `minialex/backend/numpy_ref.py`: `relu_forward`, `relu_backward`, `philox_uint32`,
#   `dropout_threshold`, `dropout_mask`, `dropout_apply`.
# - `minialex/random.py`: `manual_seed`, `next_seed` (one global generator; its state is saved in
#   training checkpoints).
# - `minialex/nn/layers.py`: the layers `ReLU` and `Dropout` (active in training mode only);
#   `minialex/nn/module.py`: `Module.train`, `Module.eval`.
# - `minialex/backend/numba_cpu.py` and `kernels/dropout.cu`: the same Philox in Numba and CUDA.
# - `tests/test_activation.py`: Random123's known answer for Philox, the same mask on every backend.
#
# Next: **08 · AlexNet**, all the layers together.
