"""minialex's one source of randomness: parameter initialisation and dropout seeds.

``manual_seed(s)`` makes a run reproducible; ``get_state()`` / ``set_state()`` save and restore it
exactly (checkpoints store it). The generator always lives on the host (NumPy's PCG64), whatever
the backend: dropout masks are drawn on the device from a seed taken here.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the generator: the same seed gives the same initial weights and dropout masks."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator


def next_seed() -> int:
    """A fresh 64-bit seed (for one dropout mask)."""
    return int(_generator.integers(0, 2**63 - 1, dtype=np.int64))


def get_state() -> dict:
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state
