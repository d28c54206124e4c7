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
# # 03 · Linear layer and softmax cross-entropy
#
# AlexNet ends with three fully connected (linear) layers and a softmax cross-entropy loss. Both
# are small enough to derive completely by hand, which is what we do here: forward, gradient,
# and a check against minialex and against finite differences. At the end the two together train
# a softmax classifier on points in the plane.

# %%
import sys

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import nn, optim
from minialex.nn import functional as F

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. The linear layer
#
# For a batch `x` of shape `(N, in)`, a weight `W` of shape `(out, in)` (PyTorch's layout) and a
# bias `b` of shape `(out,)`:
#
#     y = x @ W.T + b                       y[n, o] = sum_i x[n, i] * W[o, i] + b[o]
#
# Two images (N = 2), three inputs, two outputs:

# %%
x = np.array([[1.0, 2.0, 3.0],
              [0.0, -1.0, 1.0]])
W = np.array([[0.1, 0.2, 0.3],
              [-0.5, 0.0, 0.5]])
b = np.array([0.0, 1.0])
y = x @ W.T + b
print("y =\n", y)

# %% [markdown]
# ### The gradients, by hand
#
# Let `gy = dL/dy` (shape `(N, out)`) come from the layer above. Differentiate the index formula:
#
# * `y[n, o]` depends on `W[o, i]` with slope `x[n, i]`, for every image `n`. Summing over `n`:
#   `dL/dW[o, i] = sum_n gy[n, o] * x[n, i]`, that is **`gW = gy.T @ x`**, shape `(out, in)`.
# * `y[n, o]` depends on `x[n, i]` with slope `W[o, i]`, for every output `o`:
#   `dL/dx[n, i] = sum_o gy[n, o] * W[o, i]`, that is **`gx = gy @ W`**, shape `(N, in)`.
# * `y[n, o]` depends on `b[o]` with slope 1 for every `n`: **`gb = gy.sum(axis=0)`**.
#
# A useful guard: a gradient always has the shape of its variable, and only one arrangement of
# `gy`, `x` and `W` into a matrix product gives that shape.

# %%
gy = np.array([[1.0, -1.0],
               [0.5, 2.0]])
gW, gx, gb = gy.T @ x, gy @ W, gy.sum(axis=0)
print("gW =\n", gW, "\ngx =\n", gx, "\ngb =", gb)

# %% [markdown]
# minialex's `F.linear` computes the same (its `backward` is these three lines, in
# `minialex/ops/linear.py`):

# %%
xt, Wt, bt = (minialex.tensor(a, requires_grad=True) for a in (x, W, b))
yt = F.linear(xt, Wt, bt)
yt.backward(gy)
for name, mine, theirs in (("y", y, yt), ("gW", gW, Wt.grad), ("gx", gx, xt.grad), ("gb", gb, bt.grad)):
    print(f"{name:>2}: equal to the hand computation: {np.allclose(mine, theirs.numpy())}")

# %% [markdown]
# ## 2. Softmax
#
# The last linear layer gives one score (a *logit*) `z[k]` per class. Softmax turns them into
# probabilities: `p[k] = exp(z[k]) / sum_j exp(z[j])`. Written literally, it overflows as soon as a
# logit passes about 709 (`exp(710)` is `inf` in float64):

# %%
z = np.array([1000.0, 1001.0, 1002.0])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(z) / np.exp(z).sum()
print("naive softmax: ", naive)

# %% [markdown]
# Softmax does not change when the same constant is subtracted from every logit (it cancels between
# the numerator and the denominator). Subtracting the largest logit makes every exponent `<= 0`, so
# nothing overflows, and at least one term of the sum is exactly 1, so nothing underflows to 0 either:

# %%
def softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)

print("stable softmax:", softmax(z))
print("same as for z - 1000:", softmax(z - 1000))

# %% [markdown]
# ## 3. Cross-entropy and its gradient
#
# For a target class `t`, the loss is the negative log-probability of the right answer:
#
#     loss = -log p[t] = -z[t] + log sum_j exp(z[j])
#
# Differentiate with respect to `z[k]`: the first term gives `-[k == t]`, the second gives
# `exp(z[k]) / sum_j exp(z[j]) = p[k]`. So
#
#     d loss / d z[k] = p[k] - [k == t]           (softmax minus one-hot)
#
# The gradient pushes the right class's logit up by `1 - p[t]` and every other logit down by its
# probability. With the mean over a batch of `N` images, each row is also divided by `N`.

# %%
logits = np.array([[2.0, 1.0, 0.1],
                   [0.5, 2.5, 0.0]])
target = np.array([0, 2])
p = softmax(logits)
loss = -np.log(p[np.arange(2), target]).mean()
onehot = np.eye(3)[target]
grad = (p - onehot) / len(target)
print("p =\n", p)
print("loss =", loss)
print("d loss / d logits =\n", grad)

zt = minialex.tensor(logits, requires_grad=True)
loss_t = F.cross_entropy(zt, target)
loss_t.backward()
print("minialex: loss", loss_t.item(), "| same gradient:", np.allclose(zt.grad.numpy(), grad))

# %% [markdown]
# Two sanity checks worth remembering:
#
# * with all logits equal (an untrained network), `p = 1/K` and the loss is `log K`: about 2.303
#   for 10 classes, 6.908 for ImageNet's 1000. A first training loss far from that means a bug;
# * minialex's loss is computed from `log p = z - max z - log sum exp(z - max z)` directly (never
#   `log` of a softmax that may have underflowed to 0), so even a hopeless prediction gives a
#   finite loss.

# %%
print("uniform logits, 10 classes:", F.cross_entropy(minialex.tensor(np.zeros((4, 10))), np.array([0, 3, 7, 9])).item(),
      " log 10 =", np.log(10))
print("logit margin 1000 against the target:",
      F.cross_entropy(minialex.tensor(np.array([[1000.0, 0.0]])), np.array([1])).item())

# %% [markdown]
# ## 4. Checked by finite differences
#
# The linear layer followed by the loss, all inputs in float64 (tutorial 02):

# %%
rng = np.random.default_rng(0)
xs = minialex.tensor(rng.standard_normal((4, 5)), requires_grad=True)
Ws = minialex.tensor(rng.standard_normal((3, 5)), requires_grad=True)
bs = minialex.tensor(rng.standard_normal(3), requires_grad=True)
targets = np.array([0, 2, 1, 2])
print(minialex.gradcheck(lambda x, W, b: F.cross_entropy(F.linear(x, W, b), targets), [xs, Ws, bs]))

# %% [markdown]
# ## 5. Putting them together: softmax regression
#
# One `nn.Linear(2, 3)` and the cross-entropy loss make a classifier of points in the plane. We
# draw three clouds of points, then take gradient steps with `optim.SGD`, the optimizer AlexNet
# trains with. The first loss should be close to `log 3 = 1.0986`.

# %%
minialex.manual_seed(0)
rng = np.random.default_rng(0)
centres = np.array([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])
labels = rng.integers(0, 3, 300)
points = (centres[labels] + rng.standard_normal((300, 2))).astype(np.float32)

layer = nn.Linear(2, 3)
opt = optim.SGD(layer.parameters(), lr=0.5)
steps = 30 if FAST else 200
for step in range(steps + 1):
    loss = F.cross_entropy(layer(minialex.tensor(points)), labels)
    if step % (steps // 5) == 0:
        print(f"step {step:4d}: loss {loss.item():.4f}")
    opt.zero_grad()
    loss.backward()
    opt.step()

with minialex.no_grad():
    predicted = layer(minialex.tensor(points)).numpy().argmax(axis=1)
print(f"training accuracy: {100 * (predicted == labels).mean():.1f}%")

# %% [markdown]
# The decision regions of a softmax classifier are separated by straight lines: where two classes'
# logits are equal, `(W[j] - W[k]) · x + b[j] - b[k] = 0`, the equation of a line.

# %%
grid = np.stack(np.meshgrid(np.linspace(-6, 6, 200), np.linspace(-6, 6, 200)), axis=-1).reshape(-1, 2)
with minialex.no_grad():
    region = layer(minialex.tensor(grid.astype(np.float32))).numpy().argmax(axis=1)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.contourf(grid[:, 0].reshape(200, 200), grid[:, 1].reshape(200, 200), region.reshape(200, 200),
            levels=[-0.5, 0.5, 1.5, 2.5], colors=["#cfe2f3", "#f4cccc", "#d9ead3"])
for k, colour in enumerate(["tab:blue", "tab:red", "tab:green"]):
    ax.scatter(*points[labels == k].T, s=8, color=colour, label=f"class {k}")
ax.set(title=f"softmax regression after {steps} SGD steps", xlabel="x[0]", ylabel="x[1]",
       xlim=(-6, 6), ylim=(-6, 6))
ax.legend(loc="upper right", fontsize=8)
save(fig, "03_softmax_regression.png")

# %% [markdown]
# ![Three clouds of points, blue at the top, red bottom left, green bottom right, over three
# shaded regions separated by straight lines: the classes predicted by the trained linear layer
# with softmax](images/03_softmax_regression.png)

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/ops/linear.py`: `Linear.forward` (`x @ W.T`, then `bias_add`) and `Linear.backward`
#   (`gy @ W`, `gy.T @ x`, `bias_grad`); `linear` checks the shapes.
# - `minialex/ops/loss.py`: `SoftmaxCrossEntropy` and `cross_entropy` (targets, `reduction`).
# - `minialex/backend/numpy_ref.py`: `softmax_xent_forward` (the stable log-softmax),
#   `softmax_xent_backward` (softmax minus one-hot), `bias_add`, `bias_grad`.
# - `minialex/nn/layers.py`: `Linear` (owns `weight` and `bias`) and `CrossEntropyLoss`.
# - `minialex/optim.py`: `SGD`.
# - `kernels/softmax_xent.cu` and `kernels/bias.cu`: the same kernels in CUDA (tutorial 11).
#
# Next: **04 · Convolution by im2col**, which turns a convolution into the same matrix product.
