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
# # 02 · Gradient checking
#
# Every op in minialex has a hand-written `backward`. A wrong one does not crash: the network
# simply trains worse, or not at all, and nothing tells you why. So every `backward` is checked
# against the definition of the derivative, computed numerically.
#
# In this tutorial:
#
# 1. central differences, and why they beat one-sided differences;
# 2. why the check must run in **float64** (we watch it fail in float32);
# 3. kinks: points where the derivative does not exist (ReLU at 0, max-pool ties), and how
#    `minialex.gradcheck` reports them;
# 4. reading a gradcheck failure, on a `backward` with a bug planted in it.

# %%
import sys
import warnings

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import Function
from minialex.nn import functional as F

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")

# %% [markdown]
# ## 1. Central differences
#
# The derivative is the limit of a slope. With a small step `eps` there are two obvious estimates:
#
#     forward:  (f(x + eps) - f(x)) / eps                 error ~ eps * f''(x) / 2
#     central:  (f(x + eps) - f(x - eps)) / (2 eps)       error ~ eps^2 * f'''(x) / 6
#
# The central difference cancels the `f''` term of the Taylor series, so its error shrinks with
# `eps²` instead of `eps`. Try it on `f(x) = x³` at `x = 1`, where `f'(1) = 3`:

# %%
f = lambda x: x ** 3
for eps in (1e-1, 1e-2, 1e-3):
    forward = (f(1 + eps) - f(1)) / eps
    central = (f(1 + eps) - f(1 - eps)) / (2 * eps)
    print(f"eps {eps:.0e}:  forward {forward:.8f} (error {forward - 3:.1e})   "
          f"central {central:.8f} (error {central - 3:.1e})")

# %% [markdown]
# Dividing `eps` by 10 divides the forward error by 10 and the central error by 100.

# %% [markdown]
# ## 2. Why float64
#
# A smaller `eps` is not always better. `f(x + eps) - f(x - eps)` subtracts two nearly equal
# numbers, each rounded to the precision of the float type (relative error `u`: about `1e-16` in
# float64, `6e-8` in float32). That rounding error, divided by `2 eps`, grows as `eps` shrinks. The
# total error is smallest in between, and it is much smaller in float64:

# %%
eps_values = np.logspace(-12, -1, 45)
x0 = 1.0
errors = {}
for dtype in (np.float64, np.float32):
    x = dtype(x0)
    errs = []
    for eps in eps_values:
        step = dtype(eps)
        slope = (f(x + step) - f(x - step)) / (dtype(2) * step)
        errs.append(abs(float(slope) - 3.0))
    errors[dtype.__name__] = np.maximum(errs, 1e-17)   # (an exact 0 cannot be drawn on a log axis)

for name, errs in errors.items():
    best = int(np.argmin(errs))
    print(f"{name}: smallest error {errs[best]:.1e} at eps = {eps_values[best]:.0e}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for name, errs in errors.items():
    ax.loglog(eps_values, errs, marker=".", label=f"central difference in {name}")
ax.loglog(eps_values, eps_values ** 2, "k--", lw=0.8, label="eps² (truncation error)")
ax.set(xlabel="step eps", ylabel="|numeric - exact| derivative", title="f(x) = x³ at x = 1",
       ylim=(1e-13, 1e1))
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
save(fig, "02_finite_difference_error.png")

# %% [markdown]
# ![Error of the central difference against the step eps, on log-log axes: in float64 it falls as
# eps squared to about 1e-11 between eps = 1e-5 and 1e-7, and rises again for smaller steps; in
# float32 the best error is only about 1e-5 to 1e-6, near eps = 1e-3, and at eps = 1e-6 the
# derivative 3 comes out wrong by about 0.05](images/02_finite_difference_error.png)
#
# The right half of each V is truncation (`eps²`), the left half rounding (`u / eps`). The cell
# below prints the error at the step that `minialex.gradcheck` uses by default, `eps = 1e-6`:

# %%
for dtype in (np.float64, np.float32):
    x, step = dtype(1.0), dtype(1e-6)
    slope = (f(x + step) - f(x - step)) / (dtype(2) * step)
    print(f"{dtype.__name__}, eps = 1e-6: derivative {float(slope):.10f}, error {abs(float(slope) - 3):.1e}")

# %% [markdown]
# In float32 that step is hopeless. Worse, in float32 `x + eps` is not even `x` moved by `eps`:

# %%
one = np.float32(1.0)
print("float32: (1 + 1e-6) - 1 =", (one + np.float32(1e-6)) - one, "  (not 1e-6: the step itself is rounded)")
print("float64: (1 + 1e-6) - 1 =", (1.0 + 1e-6) - 1.0)

# %% [markdown]
# ### `minialex.gradcheck` on a convolution, in both types
#
# `gradcheck(fn, inputs)` computes the analytic gradient with one `backward` (for a random
# cotangent `v`, of `L = sum(v * fn(inputs))`) and compares it, entry by entry, with the central
# difference of `L`. It warns about float32 inputs. Here is the same convolution in float32 and
# float64:

# %%
rng = np.random.default_rng(0)
x_np = rng.standard_normal((1, 2, 5, 5))
w_np = rng.standard_normal((3, 2, 3, 3))
conv = lambda x, w: F.conv2d(x, w, padding=1)

for dtype in (np.float32, np.float64):
    x = minialex.tensor(x_np.astype(dtype), requires_grad=True)
    w = minialex.tensor(w_np.astype(dtype), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = minialex.gradcheck(conv, [x, w], raise_exception=False)
    print(f"{np.dtype(dtype).name}: {report}")
    for warning in caught:
        print("   warning:", warning.message)

# %% [markdown]
# In float32 the check fails although the convolution is correct, and rounding noise even looks like
# dozens of "kinks" (next section). In float64 the worst relative error is about `1e-9`. So
# gradients are always checked in float64: `tensor.double()`, or `model.double()` for a whole model.
# (Training runs in float32: that is fine, the *check* needs the precision, not the training.)

# %% [markdown]
# ## 3. Kinks
#
# ReLU has no derivative at 0: the slope is 0 on the left and 1 on the right. There the central
# difference averages the two slopes (0.5) and matches neither one-sided derivative. minialex's
# ReLU, like PyTorch's, uses 0 at exactly 0.

# %%
x = minialex.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
F.relu(x).sum().backward()
print("analytic d relu / dx at [-1, 0, 2]:", x.grad.numpy())
h = 1e-6
print("central difference at 0:", (max(h, 0) - max(-h, 0)) / (2 * h))

# %% [markdown]
# `gradcheck` recognises a kink when the two one-sided differences disagree, and accepts the
# analytic value if it lies **between** them (it is then a valid one-sided derivative). Such an
# entry is counted as *skipped*, not passed:

# %%
report = minialex.gradcheck(F.relu, [x])
print(report)
print("skipped_kinks =", report.skipped_kinks)

# %% [markdown]
# A value outside that range still fails, so a skip never hides a wrong gradient. Max pooling has
# kinks too: when two elements of a window tie for the maximum, an infinitesimal nudge decides which
# one wins. minialex gives the gradient to the first maximum in row-major order, as PyTorch does.
# This 3x3 input has a tie of two 3s in the top-right 2x2 window:

# %%
x = minialex.tensor(np.array([[[[1.0, 3.0, 3.0],
                                 [0.0, 2.0, 1.0],
                                 [3.0, 1.0, 0.0]]]]), requires_grad=True)
y = F.max_pool2d(x, kernel_size=2, stride=1)
y.backward(np.ones(y.shape))
print("max-pool output:\n", y.numpy()[0, 0])
print("where the gradient went (the first 3 of the tie took it):\n", x.grad.numpy()[0, 0])
print(minialex.gradcheck(lambda t: F.max_pool2d(t, 2, 1), [x]))

# %% [markdown]
# In a real test, inputs are random, so exact ties and exact zeros almost never happen: the tests
# of minialex *plant* them on purpose to check the tie rule.

# %% [markdown]
# ## 4. Reading a gradcheck failure
#
# Let us plant a bug. The sigmoid `y = 1 / (1 + exp(-x))` has the derivative `y (1 - y)`. Suppose
# we forget the `(1 - y)`:

# %%
class BuggySigmoid(Function):
    def forward(self, x):
        y = 1.0 / (1.0 + np.exp(-x))
        self.save(y=y)
        return y

    def backward(self, gy):
        y = self.saved["y"]
        return gy * y            # BUG: should be gy * y * (1 - y)


x = minialex.tensor(np.array([[-2.0, 0.0], [1.0, 3.0]]), requires_grad=True)
try:
    minialex.gradcheck(BuggySigmoid.apply, [x])
except minialex.GradcheckError as err:
    print("GradcheckError:", err)

# %% [markdown]
# How to read it:
#
# * `input 0 at (i, j)`: which input (its position in the list) and which element is worst;
# * `analytic` is what `backward` returned, `numeric` what the finite difference measured;
# * their **ratio** is the best clue. Here it is `1 / (1 - y)`: the factor that was forgotten.

# %%
report = minialex.gradcheck(BuggySigmoid.apply, [x], raise_exception=False)
y = 1.0 / (1.0 + np.exp(-x.data))
print(f"{'element':>8} {'analytic':>9} {'numeric':>9} {'ratio':>7} {'1/(1-y)':>8}")
for i, index, analytic, numeric in report.failures:   # (input, element, analytic, numeric)
    index = tuple(int(k) for k in index)
    print(f"{str(index):>8} {analytic:9.4f} {numeric:9.4f} {analytic / numeric:7.3f} {1 / (1 - y[index]):8.3f}")

# %% [markdown]
# Fix the bug and the check passes:

# %%
class Sigmoid(BuggySigmoid):
    def backward(self, gy):
        y = self.saved["y"]
        return gy * y * (1 - y)  # grad wrt x


print(minialex.gradcheck(Sigmoid.apply, [x]))

# %% [markdown]
# Some bugs are caught even before the check: a `backward` that returns a gradient of the wrong
# shape is stopped by the engine itself, which names the `Function`:

# %%
class WrongShape(Sigmoid):
    def backward(self, gy):
        return super().backward(gy).sum(axis=0)     # BUG: summed over the batch


try:
    WrongShape.apply(x).sum().backward()
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# ## 5. Checking a whole model
#
# `gradcheck` perturbs its inputs in place, so a model's parameters can be listed as inputs too.
# Two things matter:
#
# * **randomness**: the check evaluates the model many times, and each training-mode call would
#   draw a new dropout mask. Use `model.eval()` (or a fixed `seed`);
# * **cost**: one entry costs two forward passes. `samples=k` checks `k` random entries per input.

# %%
from minialex.models import alexnet

minialex.manual_seed(0)
model = alexnet("small").double().eval()
image = minialex.tensor(np.random.default_rng(1).standard_normal((1, 3, 32, 32)), requires_grad=True)
params = dict(model.named_parameters())
checked = ["features.0.weight", "classifier.6.bias"] if FAST else \
          ["features.0.weight", "features.4.weight", "features.12.bias", "classifier.0.weight", "classifier.6.bias"]
report = minialex.gradcheck(lambda img, *ps: model(img), [image] + [params[name] for name in checked],
                            samples=3 if FAST else 8)
print("checked: image and", ", ".join(checked))
print(report)

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/gradcheck.py`: `gradcheck` (the random cotangent, the central differences, the kink
#   test), `GradcheckReport` (`checked`, `skipped_kinks`, `worst`, `failures`) and `GradcheckError`.
# - `minialex/tensor.py`: `Tensor.backward`, which stops a gradient of the wrong shape and names the
#   `Function`.
# - `minialex/backend/numpy_ref.py`: `relu_backward` (0 at 0) and `maxpool2d_forward` (the
#   first-maximum rule for ties).
# - `tests/test_gradcheck.py`: the checker's own tests (it must catch planted bugs); every op's test
#   file runs `gradcheck` in float64 over generated shapes.
#
# Next: **03 · Linear layer and softmax cross-entropy**, derived by hand and checked this way.
