"""Argument checking shared by the ops: PyTorch's argument forms, and one-line errors that say what
was wrong, what was expected and what to do.

``where`` is the layer as the user wrote it (``Conv2d(3, 96, kernel_size=11, stride=4)``) or the
function call (``conv2d(weight (96, 3, 11, 11))``); every message starts with it.
"""

from __future__ import annotations


def pair(value, name: str, where: str, minimum: int) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(2, 1)`` stays; each entry an int >= ``minimum``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{where}: {name} must be an int or a pair (h, w), got {value!r}")
        result = tuple(value)
    else:
        result = (value, value)
    for v in result:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{where}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return result


def check_4d(x, channels, where: str):
    """x must be (N, C, H, W), with C == channels unless channels is None."""
    shape = tuple(x.shape)
    expected_c = "C" if channels is None else str(channels)
    if len(shape) != 4 or (channels is not None and shape[1] != channels):
        raise ValueError(f"{where}: expected input (N, {expected_c}, H, W), got {shape}")
    return shape


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool,
                where: str, axis: str) -> int:
    """Output length along one axis, PyTorch's formula; a window hanging past the end is dropped
    in ceil_mode if it would start in the right padding."""
    span = dilation * (kernel - 1) + 1  # the extent of one dilated window
    room = size + 2 * padding - span
    if room < 0:
        raise ValueError(f"{where}: input {axis}={size} (padded {size + 2 * padding}) is smaller than the "
                         f"kernel's extent {span}; use a larger input or more padding")
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out
