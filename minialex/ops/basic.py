"""Elementwise arithmetic, matmul, reductions and reshapes: the Functions behind Tensor's operators.

Each class is one operation: ``forward`` on arrays, ``backward`` from dL/d(out) to dL/d(inputs).
Binary operations broadcast like NumPy; their backward sums the gradient back over the broadcast
axes (``unbroadcast``), so that every gradient has the shape of its input.
"""

from __future__ import annotations

import numpy as np

from minialex import backend
from minialex.tensor import Function, Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving an array of ``shape``."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad   # axes added in front
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)                  # axes of length 1 stretched
    return grad


def _shape(x):
    return np.shape(x) if not hasattr(x, "shape") else tuple(x.shape)


class Add(Function):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.shapes[0]), unbroadcast(gy, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.shapes[0]), unbroadcast(-gy, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a * b

    def backward(self, gy):
        a, b = self.saved["a"], self.saved["b"]
        ga = unbroadcast(gy * b, _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * a, _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a / b

    def backward(self, gy):
        a, b = self.saved["a"], self.saved["b"]
        ga = unbroadcast(gy / b, _shape(a)) if self.needs_input_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    """a ** exponent for a constant (Python number) exponent."""

    def forward(self, a, exponent):
        self.save(a=a)
        self.exponent = exponent
        return a ** exponent

    def backward(self, gy):
        a = self.saved["a"]
        return gy * self.exponent * a ** (self.exponent - 1), None


class Exp(Function):
    def forward(self, a):
        y = backend.xp_of(a).exp(a)
        self.save(y=y)
        return y

    def backward(self, gy):
        return gy * self.saved["y"]


class Log(Function):
    def forward(self, a):
        self.save(a=a)
        return backend.xp_of(a).log(a)

    def backward(self, gy):
        return gy / self.saved["a"]


class Cast(Function):
    def forward(self, a, dtype):
        self.dtype_in = a.dtype
        return a.astype(dtype)

    def backward(self, gy):
        return gy.astype(self.dtype_in)


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands are promoted to matrices, leading axes broadcast."""

    def forward(self, a, b):
        self.save(a=a, b=b)
        return backend.xp_of(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.saved["a"], self.saved["b"]
        xp = backend.xp_of(gy)
        a2 = a.reshape(1, -1) if a.ndim == 1 else a            # (.., M, K)
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b            # (.., K, P)
        g2 = gy.reshape(gy.shape + (1,)) if b.ndim == 1 else gy
        g2 = g2.reshape(g2.shape[:-2] + (1,) + g2.shape[-1:]) if a.ndim == 1 else g2  # (.., M, P)
        ga = gb = None
        if self.needs_input_grad[0]:  # grad wrt a = gy @ b^T
            ga = unbroadcast(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:  # grad wrt b = a^T @ gy
            gb = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


class Sum(Function):
    def forward(self, a, axis, keepdims):
        self.in_shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        if not self.keepdims and self.axis is not None:
            gy = xp.expand_dims(gy, _normalize_axes(self.axis, len(self.in_shape)))
        return xp.broadcast_to(gy, self.in_shape).copy()


class Max(Function):
    """Maximum over ``axis``; like ``torch.amax``, tied maxima share the gradient evenly."""

    def forward(self, a, axis, keepdims):
        y = a.max(axis=axis, keepdims=True)
        self.save(a=a, y=y)
        self.axis = axis
        return y if keepdims else (y.reshape(()) if axis is None else y.squeeze(axis=axis))

    def backward(self, gy):
        a, y = self.saved["a"], self.saved["y"]
        winners = (a == y)
        count = winners.sum(axis=self.axis, keepdims=True)
        return winners * (gy.reshape(y.shape) / count)


def _normalize_axes(axis, ndim):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def forward(self, a, axes):
        self.axes = tuple(axes) if axes else tuple(reversed(range(a.ndim)))
        return a.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(np.argsort(self.axes))


class GetItem(Function):
    """a[index] for any NumPy index; backward scatters into zeros (repeated indices add up)."""

    def forward(self, a, index):
        self.in_shape, self.index, self.dtype = a.shape, index, a.dtype
        return a[index]

    def backward(self, gy):
        xp = backend.xp_of(gy)
        ga = xp.zeros(self.in_shape, dtype=self.dtype)
        xp.add.at(ga, self.index, gy)
        return ga


class Pad(Function):
    """Zero padding: ``pads`` is one (before, after) pair per axis."""

    def forward(self, a, pads):
        self.pads = pads
        return backend.xp_of(a).pad(a, pads)

    def backward(self, gy):
        return gy[tuple(slice(before, gy.shape[i] - after) for i, (before, after) in enumerate(self.pads))]


# --- functional forms used by Tensor's operators -----------------------------------------------

def _as_operand(x, like):
    """Python numbers stay Python numbers (NumPy keeps the tensor's dtype); arrays become Tensors."""
    if isinstance(x, Tensor) or isinstance(x, (int, float)):
        return x
    return Tensor(backend.xp_of(like.data).asarray(x))


def _binary(cls, a, b):
    like = a if isinstance(a, Tensor) else b
    return cls.apply(_as_operand(a, like), _as_operand(b, like))


def add(a, b):
    return _binary(Add, a, b)


def sub(a, b):
    return _binary(Sub, a, b)


def mul(a, b):
    return _binary(Mul, a, b)


def div(a, b):
    return _binary(Div, a, b)


def pow(a, exponent):
    if isinstance(exponent, Tensor):
        raise TypeError("pow: only a constant (Python number) exponent is supported; "
                        "for a tensor exponent use (b * a.log()).exp()")
    return Pow.apply(a, exponent)


def matmul(a, b):
    return _binary(MatMul, a, b)


def mean(a, axis=None, keepdims=False):
    count = a.size if axis is None else int(np.prod([a.shape[i] for i in _normalize_axes(axis, a.ndim)]))
    return Sum.apply(a, axis=axis, keepdims=keepdims) / count


def transpose(a, axes):
    if len(axes) == 2 and a.ndim > 2:  # PyTorch's transpose(dim0, dim1): swap two axes
        order = list(range(a.ndim))
        order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
        axes = tuple(order)
    elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose.apply(a, axes=axes)


def flatten(a, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one, as ``torch.flatten`` (``flatten(x, 1)`` keeps the
    batch axis; the ``Flatten`` layer does that by default)."""
    shape = a.shape
    start, end = start_dim % len(shape), end_dim % len(shape)
    merged = int(np.prod(shape[start:end + 1]))
    return Reshape.apply(a, shape=shape[:start] + (merged,) + shape[end + 1:])
