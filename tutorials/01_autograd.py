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
# # 01 · Tensors and autograd
#
# Training a network means following the gradient of a loss with respect to every weight. Nobody
# writes those derivatives out by hand for a whole network: the framework records the operations of
# the forward pass and then applies the chain rule backwards, one operation at a time. This is
# **reverse-mode automatic differentiation**.
#
# In this tutorial you will
#
# 1. build a complete reverse-mode engine for scalars in twenty lines,
# 2. use it on a small expression and check it against a finite difference,
# 3. meet minialex's real engine (`Tensor`, `Function`, `backward`), which is the same idea on arrays.
#
# Run it as a script (`python tutorials/01_autograd.py`) or open it as a notebook.

# %%
import sys

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numpy")  # the readable NumPy kernels (minialex/backend/numpy_ref.py)

# %% [markdown]
# ## 1. The chain rule, backwards
#
# Take `L = (a * b + c) * a`. Name the intermediate results: `d = a * b`, `e = d + c`, `L = e * a`.
# Each operation knows its **local** derivatives: for `d = a * b`, `dd/da = b` and `dd/db = a`.
# The chain rule multiplies local derivatives along every path from `L` back to an input, and adds
# up the paths:
#
#     dL/da = dL/de * de/dd * dd/da  +  dL/da (direct path, because a is used twice)
#           = a * 1 * b              +  e
#
# Reverse mode computes this by visiting the operations from `L` back to the inputs. Each node
# receives `dL/d(node)` from the nodes that use it, and passes `dL/d(node) * local derivative` on to
# its own inputs.

# %% [markdown]
# ## 2. A scalar engine in twenty lines
#
# A `Value` holds a number, its gradient, the values it was computed from (`parents`) and the
# local derivative with respect to each parent. `backward` sorts the graph so that every node comes
# after all the nodes that use it, then pushes gradients from the output to the inputs.

# %%
class Value:
    def __init__(self, data, parents=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self.parents, self.local_grads = parents, local_grads  # d(self)/d(parent), one per parent

    def __add__(self, other):
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def relu(self):
        return Value(max(self.data, 0.0), (self,), (1.0 if self.data > 0 else 0.0,))

    def backward(self):
        order, seen = [], set()
        def visit(v):                        # depth first: a node is appended after its parents
            if id(v) not in seen:
                seen.add(id(v))
                for p in v.parents:
                    visit(p)
                order.append(v)
        visit(self)
        self.grad = 1.0                      # dL/dL
        for v in reversed(order):            # from the output back to the inputs
            for parent, local in zip(v.parents, v.local_grads):
                parent.grad += local * v.grad  # chain rule; += because a value may be used twice


# %% [markdown]
# The chain rule itself is the last three lines. Notice the `+=`: `a` feeds two operations, so it
# receives two contributions.

# %%
a, b, c = Value(2.0), Value(-3.0), Value(10.0)
d = a * b
e = d + c
L = e * a
L.backward()
print(f"L = {L.data}")
print(f"dL/da = {a.grad}   (by hand: a*b + (a*b + c) = {2.0 * -3.0 + (2.0 * -3.0 + 10.0)})")
print(f"dL/db = {b.grad}   (by hand: a*a = {2.0 * 2.0})")
print(f"dL/dc = {c.grad}   (by hand: a = {2.0})")

# %% [markdown]
# ### Check it with a finite difference
#
# Nudge `a` by a small `h` and watch `L` move. The slope `(L(a+h) - L(a-h)) / 2h` must match
# `dL/da`. (Tutorial 02 is all about this check.)

# %%
def L_of(a_, b_=-3.0, c_=10.0):
    return (a_ * b_ + c_) * a_

h = 1e-6
numeric = (L_of(2.0 + h) - L_of(2.0 - h)) / (2 * h)
print(f"numeric dL/da = {numeric:.6f}, engine: {a.grad}")

# %% [markdown]
# ### A tiny neuron
#
# The same engine trains a neuron `y = relu(w1*x1 + w2*x2 + bias)`. The gradients tell us how to
# change each weight to make `y` larger. Below, `x2` is negative, so its weight gets a negative
# gradient; and if the neuron's input sum were negative, ReLU would pass no gradient at all.

# %%
x1, x2 = Value(1.5), Value(-0.5)
w1, w2, bias = Value(0.8), Value(0.3), Value(0.1)
y = (w1 * x1 + w2 * x2 + bias).relu()
y.backward()
print(f"y = {y.data:.3f}")
print(f"dy/dw1 = {w1.grad} (= x1), dy/dw2 = {w2.grad} (= x2), dy/dbias = {bias.grad}")

w1.grad = w2.grad = bias.grad = 0.0          # gradients accumulate: reset them before the next pass
y_dead = (w1 * Value(-5.0) + bias).relu()    # input sum -3.9 < 0: ReLU outputs 0 ...
y_dead.backward()
print(f"dead ReLU: y = {y_dead.data}, dy/dw1 = {w1.grad}  (... and passes no gradient)")

# %% [markdown]
# ## 3. The same idea on arrays: minialex's `Tensor`
#
# minialex's engine (`minialex/tensor.py`) is this engine with two changes:
#
# * a `Tensor` holds a whole array (NumPy, or CuPy on a GPU) instead of one number;
# * the local rule of an operation is not a number but a function: `Function.backward` receives
#   `dL/d(output)` (an array) and returns `dL/d(input)` for each input. For arrays, multiplying
#   by "the local derivative" means a matrix product or a sum, not a scalar product.
#
# The same expression, with each variable now a small vector:

# %%
a = minialex.tensor([2.0, 1.0, -1.0], requires_grad=True)
b = minialex.tensor([-3.0, 0.5, 4.0], requires_grad=True)
c = minialex.tensor([10.0, 0.0, 1.0], requires_grad=True)
L = ((a * b + c) * a).sum()     # sum: backward() starts from one number
L.backward()
print("L     =", L.item())
print("dL/da =", a.grad.numpy(), "  by hand:", (2 * a.data * b.data + c.data))
print("dL/db =", b.grad.numpy(), "  by hand:", a.data * a.data)
print("dL/dc =", c.grad.numpy(), "  by hand:", a.data)

# %% [markdown]
# ### The graph
#
# Every tensor made by an operation remembers the `Function` that made it (`_ctx`), and that
# function remembers its inputs. That chain of links *is* the graph. (The graph is freed by
# `backward()`, so we build it again to look at it.)

# %%
a = minialex.tensor([2.0, 1.0], requires_grad=True)
b = minialex.tensor([-3.0, 0.5], requires_grad=True)
L = (a * b + a).sum()

def show(t, depth=0):
    name = "leaf" if t._ctx is None else type(t._ctx).__name__
    print("    " * depth + f"{name:<5} shape {t.shape}")
    if t._ctx is not None:
        for inp in t._ctx.inputs:
            show(inp, depth + 1)

show(L)

# %% [markdown]
# `backward()` visits these nodes in **reverse topological order**: every node after all the nodes
# that use it. minialex sorts iteratively (with an explicit stack rather than recursion like our
# `Value.visit`), so a graph 100,000 operations deep does not hit Python's recursion limit.

# %%
from minialex.tensor import _reverse_topological_order

for node in _reverse_topological_order(L):
    print("leaf" if node._ctx is None else type(node._ctx).__name__, node.shape)

# %% [markdown]
# ### Writing your own `Function`
#
# Every op in minialex is a `Function` subclass with `forward` and `backward` side by side. Here is
# `y = x**3`, with the gradient rule `dL/dx = dL/dy * 3x**2` written right under the math. Arrays
# that backward needs are kept with `self.save(...)`.

# %%
from minialex import Function


class Cube(Function):
    def forward(self, x):
        self.save(x=x)
        return x ** 3

    def backward(self, gy):
        x = self.saved["x"]
        return gy * 3 * x ** 2       # grad wrt x


x = minialex.tensor([1.0, 2.0, -0.5], requires_grad=True)
y = Cube.apply(x)
y.sum().backward()
print("y     =", y.numpy())
print("dy/dx =", x.grad.numpy(), "  (3x^2 =", 3 * x.data ** 2, ")")

# %% [markdown]
# ### Broadcasting: gradients come back in the input's shape
#
# When a bias of shape `(3,)` is added to a batch of shape `(2, 3)`, NumPy broadcasts it to every
# row. Each row then sends a gradient back to the *same* bias, so the bias gradient is the **sum
# over the batch**. minialex's `unbroadcast` (in `minialex/ops/basic.py`) does that sum.

# %%
x = minialex.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
bias = minialex.tensor(np.zeros(3), requires_grad=True)
y = x + bias
y.backward(np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]))   # dL/dy given explicitly
print("grad wrt x    (2, 3):\n", x.grad.numpy())
print("grad wrt bias (3,):  ", bias.grad.numpy(), " = the column sums")

# %% [markdown]
# ### Gradients accumulate; graphs are used once
#
# Like `Value.grad +=`, `Tensor.grad` accumulates over calls to `backward()`: an optimizer calls
# `zero_grad()` before each step. And `backward()` frees the saved arrays as it goes (so memory
# stays at one graph), so a second `backward()` over the same graph is an error unless the first
# passed `retain_graph=True`.

# %%
w = minialex.tensor([1.0, 2.0], requires_grad=True)
loss = (w * w).sum()
loss.backward(retain_graph=True)
print("after one backward:", w.grad.numpy())
loss.backward()
print("after two:         ", w.grad.numpy(), " (added up)")
try:
    loss.backward()
except RuntimeError as err:
    print("a third:            RuntimeError:", err)

# %% [markdown]
# ### `no_grad`: evaluation without a graph
#
# Inside `minialex.no_grad()` nothing is recorded: no `_ctx`, nothing saved for backward, less
# memory and time. Evaluation loops and optimizer updates run there.

# %%
with minialex.no_grad():
    y = w * 3
print("requires_grad inside no_grad:", y.requires_grad, "| graph node:", y._ctx)
y = w * 3
print("requires_grad outside:       ", y.requires_grad, "| graph node:", y._ctx)

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/tensor.py`: `Tensor` (the array, `grad`, `requires_grad`, `_ctx`), `Function.apply`
#   (runs `forward` and records the node), `Tensor.backward` (the chain rule over the graph),
#   `_reverse_topological_order` (the iterative sort), `no_grad`.
# - `minialex/ops/basic.py`: the `Function`s behind the operators: `Add`, `Mul`, `MatMul`, `Sum`,
#   `Reshape`, and `unbroadcast` (gradients of broadcast operands).
# - `tests/test_autograd.py`: the engine's tests (accumulation, broadcasting, a very deep graph).
#
# Next: **02 · Gradient checking**, how to be sure that every `backward` is right.
