"""The layers of AlexNet as Modules, with PyTorch's constructor arguments and defaults.

Each layer checks its arguments when built and its input when called, names itself in errors
(``Conv2d(3, 96, kernel_size=11, stride=4): expected input (N, 3, H, W), got (8, 1, 224, 224)``),
and calls the functional op in ``minialex/ops``.
"""

from __future__ import annotations

import numpy as np

from minialex import backend, random
from minialex.nn import init
from minialex.nn.module import Module, Parameter
from minialex.ops import activation, basic, conv, linear, loss, lrn, pool
from minialex.ops._args import pair


def _empty_param(shape):
    return Parameter(backend.current().xp.zeros(shape, dtype=np.float32))


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", self._signature(kernel_size, stride, padding), 1)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        where = self._signature(kernel_size, stride, padding)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 \
                or in_channels % groups or out_channels % groups:
            raise ValueError(f"{where}: groups={groups!r} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        pair(stride, "stride", where, 1)
        pair(dilation, "dilation", where, 1)
        if not isinstance(padding, str):
            pair(padding, "padding", where, 0)
        self.weight = _empty_param((out_channels, in_channels // groups) + self.kernel_size)
        self.bias = _empty_param((out_channels,)) if bias else None
        init.default_(self.weight, self.bias)

    def _signature(self, kernel_size, stride, padding):
        text = f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={kernel_size!r}"
        if stride != 1:
            text += f", stride={stride!r}"
        if padding != 0:
            text += f", padding={padding!r}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ")"

    def extra_repr(self):
        k = self.kernel_size
        return self._signature(k[0] if k[0] == k[1] else k, self.stride, self.padding)[len("Conv2d("):-1]

    def forward(self, x):
        return conv._conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                            where=repr(self))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def forward(self, x):
        return pool._max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                where=repr(self))


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x):
        return pool._avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, where=repr(self))


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, x):
        return pool._adaptive_avg_pool2d(x, self.output_size, where=repr(self))


class LocalResponseNorm(Module):
    """LRN with PyTorch's arguments (alpha divided by size). The other conventions:

    >>> LocalResponseNorm.from_paper()                       # Krizhevsky et al.: n=5, k=2, alpha=1e-4
    LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)
    >>> LocalResponseNorm.from_tensorflow(depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75)
    LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)
    >>> LocalResponseNorm.from_caffe(local_size=5, alpha=1e-4, beta=0.75, k=1.0)   # bvlc_alexnet
    LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)

    @classmethod
    def from_paper(cls, n=5, k=2.0, alpha=1e-4, beta=0.75):
        """The paper's b = a / (k + alpha * sum a^2)^beta (alpha not divided by n)."""
        return cls(**lrn.lrn_args_from_paper(n, k, alpha, beta))

    @classmethod
    def from_tensorflow(cls, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
        """``tf.nn.lrn``: window 2*depth_radius+1, alpha not divided (TensorFlow's defaults shown)."""
        return cls(**lrn.lrn_args_from_tensorflow(depth_radius, bias, alpha, beta))

    @classmethod
    def from_caffe(cls, local_size=5, alpha=1.0, beta=0.75, k=1.0):
        """Caffe's ACROSS_CHANNELS LRN: the same convention as PyTorch (Caffe's defaults shown)."""
        return cls(local_size, alpha, beta, k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha!r}, beta={self.beta!r}, k={self.k!r}"

    def forward(self, x):
        return lrn._local_response_norm(x, self.size, self.alpha, self.beta, self.k, where=repr(self))


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()  # ``inplace`` is accepted for PyTorch listings and ignored: ops never overwrite

    def forward(self, x):
        return activation.relu(x)


class Dropout(Module):
    """Inverted dropout, active in training mode only. ``seed`` (optional) makes every call draw the
    same mask; by default each call draws a fresh seed from ``minialex.manual_seed``'s generator."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p, self.seed = p, seed

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        return activation.dropout(x, self.p, self.training, seed=self.seed)


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty_param((out_features, in_features))
        self.bias = _empty_param((out_features,)) if bias else None
        init.default_(self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x):
        return linear._linear(x, self.weight, self.bias, where=repr(self))


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return basic.flatten(x, self.start_dim, self.end_dim)


class CrossEntropyLoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return loss.cross_entropy(input, target, self.reduction)
