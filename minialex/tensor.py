"""Tensor, Function and reverse-mode automatic differentiation.

This file is the whole autograd engine. Read it in this order:

1. ``Function``: one differentiable operation. ``forward`` computes the output from plain arrays,
   ``backward`` turns the gradient of the output into gradients of the inputs. Both sit side by
   side in every op (``minialex/ops/*.py``), so the gradient rule is read right under the math.
2. ``Tensor``: an array (NumPy, or CuPy on a GPU) plus ``grad``, ``requires_grad`` and a link to the
   ``Function`` that produced it. Following those links from the loss backwards gives the graph.
3. ``Tensor.backward``: sorts the graph in reverse topological order (iteratively, so a chain of
   100,000 operations does not hit Python's recursion limit) and applies the chain rule once per node.

Gradient rule, once for all: if ``y = f(x)`` and ``L`` is the scalar we differentiate, then
``dL/dx = backward(dL/dy)``; when a tensor feeds several operations, its gradients add up.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from minialex import backend

# ---------------------------------------------------------------------------------------------
# Gradient mode
# ---------------------------------------------------------------------------------------------

_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return getattr(_grad_mode, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Run operations without recording them for backward (evaluation, optimizer updates)."""
    previous = is_grad_enabled()
    _grad_mode.enabled = False
    try:
        yield
    finally:
        _grad_mode.enabled = previous


# ---------------------------------------------------------------------------------------------
# Function: one node of the graph
# ---------------------------------------------------------------------------------------------


class Function:
    """Base class of every differentiable operation.

    Subclasses implement ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad_out) -> tuple`` (one gradient per positional input, ``None`` where an input
    needs none). ``self.needs_input_grad[i]`` says whether input ``i`` wants a gradient, so backward
    can skip work. Arrays that backward needs are stored on ``self`` (``self.save(...)``) and freed
    after the backward pass.
    """

    def save(self, **arrays):
        """Keep arrays for backward: ``self.save(x=x)`` then ``self.saved["x"]``."""
        self.saved = arrays

    @classmethod
    def apply(cls, *inputs, **params):
        """Run ``forward`` on the inputs' arrays and, if needed, record the node for backward.

        Positional inputs are Tensors (differentiable) or plain Python values; keyword
        arguments are the op's hyper-parameters (stride, padding, ...).
        """
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        out = fn.forward(*arrays, **params)
        requires_grad = is_grad_enabled() and any(fn.needs_input_grad)
        result = Tensor(out, requires_grad=requires_grad)
        if requires_grad:
            fn.inputs = inputs
            result._ctx = fn
        return result

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}>"


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    Attributes:
        data: the array (``numpy.ndarray``, or ``cupy.ndarray`` on the GPU).
        grad: a Tensor holding dL/d(self) after ``backward()``, or None.
        requires_grad: whether operations on this tensor are recorded for backward.
    """

    __array_priority__ = 1000  # so that ``ndarray * Tensor`` calls Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None  # the Function that produced this tensor

    # --- array-like properties ---------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    @property
    def is_leaf(self) -> bool:
        """A leaf was created by the user (a parameter, an input), not by an operation."""
        return self._ctx is None

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host if it lives on the GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}; "
                             "index or reduce it first (e.g. .sum())")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data, requires_grad=False)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def zero_grad(self):
        self.grad = None

    def astype(self, dtype) -> Tensor:
        """A copy converted to ``dtype``, differentiable (the gradient is converted back)."""
        return _ops.Cast.apply(self, dtype=np.dtype(dtype))

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def to(self, device: str) -> Tensor:
        """Copy to ``"numpy"`` (host) or ``"cupy"`` (GPU); a leaf stays a leaf."""
        moved = Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)
        if self.grad is not None:
            moved.grad = Tensor(backend.to_device(self.grad.data, device))
        return moved

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(", threshold=20)
        return f"tensor({body}, dtype={self.dtype}{grad})"

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, accumulating into ``leaf.grad``.

        ``grad`` is dL/d(self); it may be omitted for a one-element tensor (then it is 1).
        The graph is freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; create the inputs "
                               "with requires_grad=True (parameters do) and do not wrap in no_grad()")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward(): grad can be implicit only for a one-element tensor, "
                                   f"got shape {self.shape}; pass grad= of the same shape")
            grad = backend.xp_of(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.xp_of(self.data).asarray(grad)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(grad.shape)}, "
                                 f"expected {self.shape} (the shape of the tensor)")

        order = _reverse_topological_order(self)
        grads = {id(self): grad}  # id(tensor) -> dL/d(tensor), summed over its uses
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node._ctx
            if fn is None:  # a leaf: store the gradient
                node.grad = Tensor(g) if node.grad is None else Tensor(node.grad.data + g)
                continue
            if not hasattr(fn, "inputs"):
                raise RuntimeError("backward(): the graph was already freed by an earlier backward(); "
                                   "pass retain_graph=True the first time to go through it twice")
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for inp, needs, gi in zip(fn.inputs, fn.needs_input_grad, input_grads):
                if not needs or gi is None:
                    continue
                if tuple(gi.shape) != inp.shape:  # a bug in an op's backward: say which one
                    raise RuntimeError(f"{type(fn).__name__}.backward returned a gradient of shape "
                                       f"{tuple(gi.shape)} for an input of shape {inp.shape}")
                key = id(inp)
                grads[key] = gi if key not in grads else grads[key] + gi
            if not retain_graph:  # free the saved arrays now: peak memory stays one graph
                del fn.inputs
                fn.saved = None

    # --- operators (implemented in minialex/ops/basic.py) ----------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.GetItem.apply(self, index=index)

    # comparisons give plain (non-differentiable) boolean tensors
    def __gt__(self, other):
        return Tensor(self.data > _data(other))

    def __lt__(self, other):
        return Tensor(self.data < _data(other))

    def __ge__(self, other):
        return Tensor(self.data >= _data(other))

    def __le__(self, other):
        return Tensor(self.data <= _data(other))

    def reshape(self, *shape):
        return _ops.Reshape.apply(self, shape=_shape_arg(shape))

    def view(self, *shape):
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return _ops.flatten(self, start_dim, end_dim)

    def transpose(self, *axes):
        """``transpose()`` reverses the axes, ``transpose(0, 2, 1)`` permutes them; for two axes
        ``transpose(i, j)`` swaps them (PyTorch's meaning) when the tensor has more than two."""
        return _ops.transpose(self, axes)

    def permute(self, *axes):
        return _ops.Transpose.apply(self, axes=_shape_arg(axes))

    @property
    def T(self):
        return _ops.Transpose.apply(self, axes=tuple(reversed(range(self.ndim))))

    def sum(self, axis=None, keepdims: bool = False):
        return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return _ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def relu(self):
        from minialex.ops.activation import relu

        return relu(self)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _shape_arg(shape) -> tuple:
    """Accept ``reshape(2, 3)`` and ``reshape((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _reverse_topological_order(root: Tensor) -> list[Tensor]:
    """Nodes reachable from ``root``, each after every node that uses it (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None and hasattr(node._ctx, "inputs"):
            for inp in node._ctx.inputs:
                if isinstance(inp, Tensor) and inp.requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
    order.reverse()  # post-order reversed: root first, leaves last
    return order


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Create a tensor on the current backend's device.

    Like ``torch.tensor``: Python floats become float32, Python ints int64; a NumPy array keeps its
    dtype (float64 stays float64) unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None and not hasattr(data, "dtype"):  # Python numbers or lists
        data = np.asarray(data)
        if data.dtype.kind == "f":
            data = data.astype(np.float32)
    array = backend.to_device(data, backend.current().device)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if requires_grad and array.dtype.kind != "f":
        raise ValueError(f"tensor(): only floating-point tensors can require grad, got dtype {array.dtype}; "
                         "pass dtype=numpy.float32 or float64")
    return Tensor(array, requires_grad=requires_grad)


from minialex.ops import basic as _ops  # noqa: E402  (the operators above are defined there)
