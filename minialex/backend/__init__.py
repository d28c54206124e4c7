"""The one seam between the math and the hardware.

A *backend* is a module of kernels with the same names and signatures in every language:

    ``numpy``  minialex/backend/numpy_ref.py   readable NumPy: the oracle, read it first
    ``numba``  minialex/backend/numba_cpu.py   the same loops compiled by Numba for the CPU
    ``cupy``   minialex/backend/cuda.py        the same loops in CUDA C (kernels/*.cu) on the GPU

Ops (``minialex/ops``) never test which backend is active: they ask ``kernels_for(array)`` for the
kernel module that matches where the array lives and call ``K.im2col(...)``. GEMM is not a kernel:
ops call the array module's ``matmul`` (BLAS on the CPU, cuBLAS on the GPU).

This is the only package that imports numba or cupy. The active backend is chosen by
``minialex.set_backend(name)``, the ``with minialex.backend_scope(name):`` context manager, or the
``MINIALEX_BACKEND`` environment variable.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType

import numpy as np

NAMES = ("numpy", "numba", "cupy")
_MODULES = {"numpy": "minialex.backend.numpy_ref", "numba": "minialex.backend.numba_cpu",
            "cupy": "minialex.backend.cuda"}
_INSTALL_HINT = {
    "numba": 'pip install "numba>=0.61"',
    "cupy": 'pip install "minialex[cuda12]" (or [cuda13]) on a machine with an NVIDIA GPU',
}


@dataclass(frozen=True)
class Backend:
    name: str             # "numpy", "numba" or "cupy"
    kernels: ModuleType   # the module holding the kernels (numpy_ref, numba_cpu or cuda)
    xp: ModuleType        # the array module: numpy, or cupy
    device: str           # "cpu" or "cuda"


_loaded: dict[str, Backend] = {}


def get(name: str) -> Backend:
    """Load (once) and return the backend called ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(NAMES)}")
    if name not in _loaded:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError as err:
            raise BackendUnavailable(f"backend {name!r} is not available ({err}); "
                                     f"install it with: {_INSTALL_HINT.get(name, 'pip install minialex')}") from err
        reason = getattr(module, "unavailable_reason", lambda: None)()  # e.g. CuPy installed, but no GPU
        if reason:
            raise BackendUnavailable(f"backend {name!r} cannot run here: {reason}")
        _loaded[name] = Backend(name, module, module.xp, module.DEVICE)
    return _loaded[name]


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (a package or the GPU is missing)."""


def default_name() -> str:
    """``$MINIALEX_BACKEND`` if set, else the best backend this machine has."""
    name = os.environ.get("MINIALEX_BACKEND")
    if name:
        return name
    try:
        import numba  # noqa: F401  (the numba backend's only requirement; a broken install falls back too)
    except Exception:
        return "numpy"
    return "numba"


_current: Backend | None = None


def current() -> Backend:
    """The active backend (loaded on first use)."""
    global _current
    if _current is None:
        _current = get(default_name())
    return _current


def set_backend(name: str) -> Backend:
    """Make ``name`` the active backend: new tensors are created on its device, ops use its kernels."""
    global _current
    _current = get(name)
    return _current


@contextlib.contextmanager
def backend_scope(name: str):
    """``with backend_scope("numpy"): ...`` runs the block on another backend, then restores."""
    global _current
    previous = current()
    set_backend(name)
    try:
        yield _current
    finally:
        _current = previous


# ---------------------------------------------------------------------------------------------
# Arrays and devices
# ---------------------------------------------------------------------------------------------


def is_cupy_array(array) -> bool:
    return type(array).__module__.startswith("cupy")


def xp_of(array) -> ModuleType:
    """The array module (numpy or cupy) that ``array`` belongs to."""
    return get("cupy").xp if is_cupy_array(array) else np


def device_of(array) -> str:
    return "cuda" if is_cupy_array(array) else "cpu"


def kernels_for(array) -> ModuleType:
    """The kernel module for data living where ``array`` lives: CUDA kernels for a GPU array, the
    active CPU backend's kernels (NumPy reference or Numba) for a host array."""
    if is_cupy_array(array):
        return get("cupy").kernels
    active = current()
    return active.kernels if active.device == "cpu" else get("numpy").kernels


def to_numpy(array) -> np.ndarray:
    """A host (NumPy) copy of ``array``; NumPy arrays are returned as they are."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


_DEVICE_ALIASES = {"numpy": "cpu", "numba": "cpu", "cpu": "cpu", "cupy": "cuda", "cuda": "cuda", "gpu": "cuda"}


def to_device(array, device: str):
    """``array`` on ``device`` ("cpu"/"numpy"/"numba" or "cuda"/"cupy"), copied only if needed."""
    target = _DEVICE_ALIASES.get(device)
    if target is None:
        raise ValueError(f"unknown device {device!r}: expected 'cpu' (or 'numpy') or 'cuda' (or 'cupy')")
    if target == "cpu":
        return to_numpy(array)
    return get("cupy").xp.asarray(array)
