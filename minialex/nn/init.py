"""Weight initialisation schemes, in place on a Parameter, with PyTorch's names.

All draw from minialex's global generator (``minialex.manual_seed``) on the host, then move to the
parameter's device, so the same seed gives the same weights on every backend.

    fan_in  = in_channels/groups * KH * KW   (Linear: in_features)
    fan_out = out_channels * KH * KW         (Linear: out_features)
"""

from __future__ import annotations

import math

import numpy as np

from minialex import backend, random


def _fill(param, values):
    param.data = backend.to_device(np.asarray(values, dtype=param.dtype).reshape(param.shape), param.device)
    return param


def fans(param) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    shape = param.shape
    if len(shape) < 2:
        raise ValueError(f"fans: need a weight with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def zeros_(param):
    return _fill(param, np.zeros(param.shape))


def constant_(param, value: float):
    return _fill(param, np.full(param.shape, value))


def normal_(param, mean: float = 0.0, std: float = 1.0):
    return _fill(param, _standard_normal(param.size, param.dtype) * std + mean)


def _standard_normal(count, dtype):
    """N(0, 1) draws, in float32 for a float32 parameter (twice as fast as float64 then cast)."""
    dtype = np.float32 if np.dtype(dtype) == np.float32 else np.float64
    return random.generator().standard_normal(count, dtype=dtype)


def uniform_(param, a: float = 0.0, b: float = 1.0):
    dtype = np.float32 if param.dtype == np.float32 else np.float64
    return _fill(param, a + (b - a) * random.generator().random(param.size, dtype=dtype))


def trunc_normal_(param, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as PyTorch).
    TensorFlow's truncated_normal is ``trunc_normal_(p, 0, s, -2*s, 2*s)``."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    values = _standard_normal(param.size, np.float64) * std + mean
    redraw = np.flatnonzero((values < a) | (values > b))
    while redraw.size:  # redraw only the entries still outside
        values[redraw] = _standard_normal(redraw.size, np.float64) * std + mean
        redraw = redraw[(values[redraw] < a) | (values[redraw] > b)]
    return _fill(param, values)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def kaiming_normal_(param, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015: N(0, gain^2 / fan), fan = fan_in or fan_out."""
    fan = _fan(param, mode)
    return normal_(param, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def kaiming_uniform_(param, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(param, mode))
    return uniform_(param, -bound, bound)


def _fan(param, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(param)
    return fan_in if mode == "fan_in" else fan_out


def default_(weight, bias=None):
    """PyTorch's default for Conv2d and Linear: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (kaiming_uniform_ with a=sqrt(5))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1.0 / math.sqrt(fans(weight)[0])
        uniform_(bias, -bound, bound)
