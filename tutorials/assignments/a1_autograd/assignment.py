# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # A1: autograd basics, a linear layer, softmax cross-entropy and a gradient checker
#
# minialex computes gradients by reverse-mode automatic differentiation (read
# `minialex/tensor.py`): every operation is a `Function` with a `forward`, which computes the
# output from plain NumPy arrays, and a `backward`, which turns dL/d(output) into dL/d(input) for
# each input. `Function.apply` runs `forward` on the arrays inside the Tensors and records the
# node, so that `loss.backward()` can call each `backward` in reverse order.
#
# You write four pieces of that machinery yourself, with NumPy:
#
# | task | what | points |
# |---|---|---|
# | autograd_basics | `Mul`, `Tanh`, `Mean` | 2 |
# | linear | `Linear` | 2 |
# | softmax_xent | `SoftmaxCrossEntropy` | 3 |
# | gradient_checker | `numerical_gradient`, `gradient_check` | 3 |
#
# Rules: NumPy, and minialex's `Function` and `Tensor` from `minialex.tensor`. minialex's own
# layers (`minialex.ops`, `minialex.nn`, the backends, and `minialex.gradcheck` for the last task)
# are off limits: the grader rejects a submission that uses them.
#
# This file is a notebook in Jupytext's percent format: open it in Jupyter with jupytext, or
# run it as plain Python. Check your work from this folder, with no server and no internet:
#
#     python -m minialex.assignments grade a1_autograd .

# %%
import numpy as np

from minialex.tensor import Function, Tensor

# %% [markdown]
# ## Task autograd_basics: three Functions
#
# In `forward`, keep what `backward` needs with `self.save(name=array)`; read it back from
# `self.saved["name"]`. `backward(gy)` returns one gradient per input of `forward`, in order, each
# of the same shape as that input (a tuple when there are several).


# %%
class Mul(Function):
    """y = a * b, elementwise (a and b have the same shape)."""

    def forward(self, a, b):
        # BEGIN SOLUTION
        self.save(a=a, b=b)
        return a * b
        # END SOLUTION

    def backward(self, gy):
        # BEGIN SOLUTION the product rule: each input's gradient is gy times the other input
        a, b = self.saved["a"], self.saved["b"]
        return gy * b, gy * a
        # END SOLUTION


class Tanh(Function):
    """y = tanh(x); dy/dx = 1 - y^2 (save y, not x)."""

    def forward(self, x):
        # BEGIN SOLUTION
        y = np.tanh(x)
        self.save(y=y)
        return y
        # END SOLUTION

    def backward(self, gy):
        # BEGIN SOLUTION dL/dx = gy * (1 - y^2)
        y = self.saved["y"]
        return gy * (1.0 - y * y)
        # END SOLUTION


class Mean(Function):
    """y = the mean of all the elements of x: a 0-d array (shape ())."""

    def forward(self, x):
        # BEGIN SOLUTION
        self.shape = x.shape
        return np.asarray(x.mean())
        # END SOLUTION

    def backward(self, gy):
        # BEGIN SOLUTION every element contributes 1/n of the mean
        return np.full(self.shape, gy / np.prod(self.shape, dtype=np.float64), dtype=gy.dtype)
        # END SOLUTION


# %% [markdown]
# ## Task linear: a fully connected layer
#
# `x` is (N, in), `W` is (out, in) as in PyTorch, `b` is (out,). Write the shape of every
# intermediate result next to its line: most mistakes here are a transpose in the wrong place.


# %%
class Linear(Function):
    """y = x @ W^T + b: (N, in) -> (N, out)."""

    def forward(self, x, W, b):
        # BEGIN SOLUTION
        self.save(x=x, W=W)
        return x @ W.T + b
        # END SOLUTION

    def backward(self, gy):
        # BEGIN SOLUTION return (grad wrt x, grad wrt W, grad wrt b)
        x, W = self.saved["x"], self.saved["W"]
        return gy @ W, gy.T @ x, gy.sum(axis=0)
        # END SOLUTION


# %% [markdown]
# ## Task softmax_xent: softmax cross-entropy
#
# For logits z (N, K) and integer targets t (N,):
#
#     loss = mean over n of  -log softmax(z[n])[t[n]]
#
# Computed naively, `exp(1000)` overflows: subtract each row's maximum first (softmax does not
# change) and use log-sum-exp. The gradient of the mean loss wrt z is (softmax(z) - onehot(t)) / N,
# times the incoming gradient gy (a 0-d array). The targets get no gradient: return None for them.


# %%
class SoftmaxCrossEntropy(Function):
    """forward(logits (N, K), target int (N,)) -> the mean loss, a 0-d array."""

    def forward(self, logits, target):
        # BEGIN SOLUTION
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = logits.shape[0]
        self.save(probs=np.exp(log_probs), target=target)
        return np.asarray(-log_probs[np.arange(N), target].mean())
        # END SOLUTION

    def backward(self, gy):
        # BEGIN SOLUTION return (grad wrt logits, None)
        probs, target = self.saved["probs"], self.saved["target"]
        N = probs.shape[0]
        g = probs.copy()
        g[np.arange(N), target] -= 1.0
        return g * (gy / N), None
        # END SOLUTION


# %% [markdown]
# ## Task gradient_checker: your own finite-difference checker
#
# `numerical_gradient(f, x)`: the gradient of a scalar function `f` of a float64 array `x`, by
# central differences, one entry at a time:
#
#     df/dx[i] ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
#
# `x` must hold its original values when you return (perturb an entry, evaluate, put it back).
#
# `gradient_check(fn, inputs)`: `fn` maps Tensors to a Tensor y. Differentiate the scalar
# L = sum(v * y), with v = `np.random.default_rng(seed).standard_normal(y.shape)`, both ways:
# analytically (one `backward` of L) and numerically (`numerical_gradient` of L wrt each input's
# array). Return the largest error, relative to the largest numeric magnitude:
#
#     max over inputs of  max |analytic - numeric| / max(max |numeric|, 1e-12)
#
# A correct backward gives about 1e-9 or less in float64; a wrong one, about 0.1 or more.


# %%
def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of the scalar function f at x (float64 array), same shape as x."""
    # BEGIN SOLUTION
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = float(f(x))
        flat[i] = original - eps
        minus = float(f(x))
        flat[i] = original
        gflat[i] = (plus - minus) / (2 * eps)
    return grad
    # END SOLUTION


def gradient_check(fn, inputs, eps=1e-6, seed=0):
    """The largest relative error between backward's gradients and numerical_gradient's, over the
    Tensors in ``inputs`` that require grad (see above)."""
    # BEGIN SOLUTION
    y = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(y.shape)
    for t in inputs:
        t.grad = None
    (y * Tensor(v)).sum().backward()
    worst = 0.0
    for t in inputs:
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        analytic = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)

        def loss(_, t=t):
            return float((fn(*inputs).data * v).sum())

        numeric = numerical_gradient(loss, t.data, eps)
        scale = max(float(np.abs(numeric).max()), 1e-12)
        worst = max(worst, float(np.abs(analytic - numeric).max()) / scale)
    return worst
    # END SOLUTION


# %% [markdown]
# ## Try it
#
# Run this file (`python assignment.py`) to see your checker at work on your own Functions.

# %%
if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    W = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    print("Linear:", gradient_check(lambda x, W, b: Linear.apply(x, W, b), [x, W, b]))
    print("Tanh:  ", gradient_check(lambda x: Tanh.apply(x), [x]))
