"""Every kernel of every compiled backend against the NumPy reference (minialex/backend/numpy_ref.py).

For each name in ``numpy_ref.KERNELS`` the kernel of each other backend that can run here (numba;
cupy on a GPU; and "cupy-on-cpu": the CUDA kernels of kernels/*.cu compiled for the host and
launched through cuda.py's own wrappers, see minialex/backend/cuda_emulator.py) gets the same arguments as the
reference, over a spread of small shapes, and its outputs must match:
* float64 to 1e-12 and float32 to 1e-5, relative to the reference's largest magnitude; for the
  kernels that sum (col2im, the pooling backwards, bias_grad) relative to each element's sum of the
  magnitudes of its terms, the scale of its rounding error;
* exactly for integer outputs: the max-pool argmax and the dropout mask.
Output buffers start filled with NaN (or a sentinel), so an element a kernel forgets to write fails.

Also: every backend module defines every kernel with numpy_ref's parameter names; Philox-4x32-10
against Random123's known answer; the default backend.
"""

import contextlib
import inspect
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from minialex import backend as B
from minialex.backend import numpy_ref as R
from minialex.ops._args import output_size


def _loads(name):
    try:
        B.get(name)
    except Exception:
        return False
    return True


def _runs(name):
    if not _loads(name):
        return False
    return B.get(name).kernels.gpu_available() if name == "cupy" else True


LOADABLE = [pytest.param(n, marks=pytest.mark.skipif(not _loads(n), reason=f"{n} backend not available"))
            for n in B.NAMES]
def _emulates_cuda():
    """The CUDA kernels can run on the CPU: cuda.py imports (CuPy installed) and a C++ compiler exists.
    Under CI (CI=true, where .ci/run installs CuPy) a missing piece fails instead of skipping."""
    from minialex.backend import cuda_emulator

    try:
        import minialex.backend.cuda  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        return False
    return cuda_emulator.host_compiler() is not None


COMPARED = [pytest.param(n, marks=pytest.mark.skipif(not _runs(n), reason=f"{n} backend cannot run here"))
            for n in B.NAMES if n != "numpy"]
COMPARED.append(pytest.param("cupy-on-cpu", marks=pytest.mark.skipif(not _emulates_cuda(),
                                                                     reason="CuPy or a C++ compiler missing")))
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


# ---------------------------------------------------------------------------------------------
# Running a kernel on both sides and comparing
# ---------------------------------------------------------------------------------------------


def run_both(backend_name, name, args, outputs):
    """Run kernel ``name`` on copies of ``args`` in numpy_ref and in the backend; return
    [(backend output, reference output)] for the argument positions in ``outputs``."""
    ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(invalid="ignore"):                    # inf * 0 in the inputs that test it
        getattr(R, name)(*ref_args)
    if backend_name == "cupy-on-cpu":
        from minialex.backend import cuda

        be_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        with mock.patch.object(cuda, "_function", _emulated_function):
            getattr(cuda, name)(*be_args)
        return [(be_args[i], ref_args[i]) for i in outputs]
    be = B.get(backend_name)
    be_args = [be.xp.asarray(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    getattr(be.kernels, name)(*be_args)
    return [(B.to_numpy(be_args[i]), ref_args[i]) for i in outputs]


_emulated_modules = {}


@contextlib.contextmanager
def _kernels(backend_name):
    """(kernel module, array module) of a backend, "cupy-on-cpu" included."""
    if backend_name == "cupy-on-cpu":
        from minialex.backend import cuda

        with mock.patch.object(cuda, "_function", _emulated_function):
            yield cuda, np
    else:
        yield B.get(backend_name).kernels, B.get(backend_name).xp


def _emulated_function(file, name, dtype=None):
    """Stands in for cuda._function: the kernel compiled for the CPU (minialex/backend/cuda_emulator.py)."""
    from minialex.backend import cuda, cuda_emulator

    if file not in _emulated_modules:
        _emulated_modules[file] = cuda_emulator.load_module(cuda.kernels_dir() / file)
    expression = name if dtype is None else f"{name}<{cuda._CTYPES[np.dtype(dtype)]}>"
    return _emulated_modules[file].get_function(expression)


def assert_matches(got, want, scale=None, what=""):
    """Integers exactly; floats to RTOL[dtype] * scale (default: the largest finite |want|), with
    NaN and infinities in the same places."""
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)],
                                  err_msg=f"{what}: infinities")
    if scale is None:
        scale = float(np.abs(want[finite]).max()) if finite.any() else 0.0
    bound = RTOL[want.dtype] * np.maximum(scale, 1e-30)
    error = np.abs(np.where(finite, got, 0).astype(np.float64) - np.where(finite, want, 0))
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else None
    assert (error <= bound).all(), (f"{what}: error {error[worst]:.3g} > "
                                    f"bound {np.broadcast_to(bound, error.shape)[worst]:.3g} "
                                    f"at {worst} (got {got[worst]!r}, want {want[worst]!r})")


def nan_like(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Geometries
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW)
CONV_GEOMETRIES = [
    (2, 3, 7, 8, 3, 2, 2, 1, 1, 1, 1, 2),
    (1, 1, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1),        # 1x1
    (2, 2, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1),        # 'same', stride < kernel
    (1, 3, 11, 13, 5, 4, 3, 2, 2, 1, 2, 1),      # dilation and stride
    (2, 1, 6, 6, 4, 4, 2, 2, 3, 3, 1, 1),        # padding wider than half the kernel
    (1, 2, 4, 4, 4, 4, 5, 5, 0, 0, 1, 1),        # stride > kernel, one output
    (2, 3, 19, 19, 11, 11, 4, 4, 2, 2, 1, 1),    # AlexNet's conv1, small
]
_g = np.random.default_rng(7)
for _ in range(5):                                  # and a few drawn at random
    KH, KW, DH, DW, SH, SW = (int(v) for v in _g.integers(1, 4, 6))
    PH, PW = (int(v) for v in _g.integers(0, 3, 2))
    H, W = (int(v) for v in _g.integers(1, 9, 2))
    H, W = max(H, DH * (KH - 1) + 1 - 2 * PH), max(W, DW * (KW - 1) + 1 - 2 * PW)
    CONV_GEOMETRIES.append((int(_g.integers(1, 3)), int(_g.integers(1, 4)), H, W, KH, KW, SH, SW, PH, PW, DH, DW))


def conv_out(H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    return (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1, (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1


# (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, ceil_mode); padding <= kernel // 2 as the ops require
POOL_GEOMETRIES = [
    (2, 3, 7, 7, 3, 3, 2, 2, 0, 0, 1, 1, False),   # AlexNet's overlapping 3/2
    (2, 3, 8, 8, 3, 3, 2, 2, 0, 0, 1, 1, True),    # ceil_mode: the last window hangs past the edge
    (1, 2, 6, 9, 2, 3, 2, 2, 1, 1, 1, 1, True),
    (1, 2, 10, 11, 3, 2, 3, 1, 1, 1, 2, 3, True),  # dilation
    (2, 1, 5, 5, 5, 5, 1, 1, 2, 2, 1, 1, False),
    (1, 1, 7, 6, 4, 3, 3, 2, 2, 1, 1, 1, True),
    (1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 2, False),   # a dilated window that misses the only pixel
    (2, 2, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, True),    # ceil_mode adds nothing
    (2, 2, 9, 8, 3, 3, 2, 1, 1, 1, 1, 1, True),    # 3x3 with padding: border and inner windows
]
for _ in range(6):                                  # and a few drawn at random
    KH, KW, SH, SW = (int(v) for v in _g.integers(1, 5, 4))
    DH, DW = (int(v) for v in _g.integers(1, 3, 2))
    PH, PW = int(_g.integers(0, KH // 2 + 1)), int(_g.integers(0, KW // 2 + 1))
    H, W = (int(v) for v in _g.integers(1, 10, 2))
    H, W = max(H, DH * (KH - 1) + 1 - 2 * PH), max(W, DW * (KW - 1) + 1 - 2 * PW)
    POOL_GEOMETRIES.append((int(_g.integers(1, 3)), int(_g.integers(1, 4)), H, W, KH, KW, SH, SW, PH, PW,
                            DH, DW, bool(_g.integers(0, 2))))


def pool_out(H, W, KH, KW, SH, SW, PH, PW, DH, DW, ceil_mode):
    """OH, OW as the ops compute them (minialex/ops/_args.py)."""
    return (output_size(H, KH, SH, PH, DH, ceil_mode, "test", "H"),
            output_size(W, KW, SW, PW, DW, ceil_mode, "test", "W"))


def ids(cases):
    return ["-".join(str(int(v)) for v in case) for case in cases]


# ---------------------------------------------------------------------------------------------
# Signatures and Philox
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", LOADABLE)
def test_backend_defines_every_kernel_with_reference_signature(backend_name):
    module = B.get(backend_name).kernels
    assert module.DEVICE in ("cpu", "cuda") and module.xp is B.get(backend_name).xp
    assert tuple(module.KERNELS) == R.KERNELS
    for name in R.KERNELS:
        kernel = getattr(module, name, None)
        assert callable(kernel), f"{backend_name} backend lacks kernel {name}"
        want = list(inspect.signature(getattr(R, name)).parameters)
        got = list(inspect.signature(kernel).parameters)
        assert got == want, f"{backend_name}.{name}{tuple(got)} != numpy_ref.{name}{tuple(want)}"


def _philox4x32_10(counter, key):
    """Plain-Python Philox-4x32-10 on four counter words and two key words (Salmon et al. 2011)."""
    c, (k0, k1) = list(counter), key
    for _ in range(10):
        p0, p1 = c[0] * R.PHILOX_M0, c[2] * R.PHILOX_M1
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & R.MASK32, (p0 >> 32) ^ c[3] ^ k1, p0 & R.MASK32]
        k0, k1 = (k0 + R.PHILOX_W0) & R.MASK32, (k1 + R.PHILOX_W1) & R.MASK32
    return c


def test_philox_known_answer():
    # Random123's kat_vectors: philox4x32_10, counter (0, 0, 0, 0), key (0, 0)
    assert _philox4x32_10((0, 0, 0, 0), (0, 0))[0] == 0x6627E8D5
    assert int(R.philox_uint32(np.array([0], dtype=np.uint64), 0)[0]) == 0x6627E8D5
    # the reference on counters and seeds that use both 32-bit words, against the plain version
    rng = np.random.default_rng(3)
    counters = [0, 1, 2**32 - 1, 2**32, 2**64 - 1] + [int(v) for v in rng.integers(0, 2**63, 5)]
    for seed in (0, 1, 2**32 + 5, 2**64 - 1, 0x243F6A8885A308D3):
        got = R.philox_uint32(np.array(counters, dtype=np.uint64), seed)
        want = [_philox4x32_10((c & R.MASK32, c >> 32, 0, 0), (seed & R.MASK32, (seed >> 32) & R.MASK32))[0]
                for c in counters]
        assert [int(v) for v in got] == want


@pytest.mark.skipif(not _loads("numba"), reason="numba not installed")
def test_numba_philox_known_answer():
    from minialex.backend import numba_cpu
    zero = np.uint64(0)
    assert int(numba_cpu._philox_uint32(zero, zero, zero)) == 0x6627E8D5
    for counter, seed in ((2**64 - 1, 2**64 - 1), (2**32 + 3, 0x243F6A8885A308D3)):
        want = int(R.philox_uint32(np.array([counter], dtype=np.uint64), seed)[0])
        got = numba_cpu._philox_uint32(np.uint64(counter), np.uint64(seed & R.MASK32), np.uint64(seed >> 32))
        assert int(got) == want


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=ids(CONV_GEOMETRIES))
def test_im2col(backend_name, dtype, geometry):
    N, C, H, W, *g = geometry
    OH, OW = conv_out(H, W, *g)
    x = np.random.default_rng(0).standard_normal((N, C, H, W)).astype(dtype)
    cols = nan_like((C * g[0] * g[1], N * OH * OW), dtype)
    [(got, want)] = run_both(backend_name, "im2col", [x, *g, cols], [9])
    assert_matches(got, want, what="cols")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=ids(CONV_GEOMETRIES))
def test_col2im(backend_name, dtype, geometry):
    N, C, H, W, *g = geometry
    OH, OW = conv_out(H, W, *g)
    cols = np.random.default_rng(1).standard_normal((C * g[0] * g[1], N * OH * OW)).astype(dtype)
    [(got, want)] = run_both(backend_name, "col2im", [cols, *g, nan_like((N, C, H, W), dtype)], [9])
    magnitude = np.empty((N, C, H, W))                       # each pixel's sum of |terms|
    R.col2im(np.abs(cols).astype(np.float64), *g, magnitude)
    assert_matches(got, want, scale=magnitude, what="gx")


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def pool_input(shape, dtype, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "ties":                                       # many equal maxima: the first must win
        return rng.integers(-1, 2, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "nan":                                        # NaN wins, the last NaN in window order
        x.reshape(-1)[rng.integers(0, x.size, max(1, x.size // 8))] = np.nan
        x.reshape(-1)[rng.integers(0, x.size, max(1, x.size // 8))] = -np.inf
    return x


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES, ids=ids(POOL_GEOMETRIES))
def test_maxpool2d_forward(backend_name, dtype, kind, geometry):
    N, C, H, W, *g, ceil_mode = geometry
    OH, OW = pool_out(H, W, *g, ceil_mode)
    x = pool_input((N, C, H, W), dtype, kind, seed=2)
    y, argmax = nan_like((N, C, OH, OW), dtype), np.full((N, C, OH, OW), -7, dtype=np.int32)
    (y_got, y_want), (a_got, a_want) = run_both(backend_name, "maxpool2d_forward", [x, *g, y, argmax], [9, 10])
    assert_matches(y_got, y_want, what="y")
    assert_matches(a_got, a_want, what="argmax")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES, ids=ids(POOL_GEOMETRIES))
def test_maxpool2d_backward(backend_name, dtype, geometry):
    N, C, H, W, *g, ceil_mode = geometry
    OH, OW = pool_out(H, W, *g, ceil_mode)
    x = pool_input((N, C, H, W), dtype, "ties", seed=3)      # ties: windows share winners
    y, argmax = np.empty((N, C, OH, OW), dtype), np.empty((N, C, OH, OW), np.int32)
    R.maxpool2d_forward(x, *g, y, argmax)
    gy = np.random.default_rng(4).standard_normal((N, C, OH, OW)).astype(dtype)
    [(got, want)] = run_both(backend_name, "maxpool2d_backward", [gy, argmax, *g, nan_like(x.shape, dtype)], [10])
    magnitude = np.empty(x.shape)
    R.maxpool2d_backward(np.abs(gy).astype(np.float64), argmax, *g, magnitude)
    assert_matches(got, want, scale=magnitude, what="gx")


AVG_GEOMETRIES = [g for g in POOL_GEOMETRIES if g[10] == g[11] == 1]   # average pooling has no dilation


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("geometry", AVG_GEOMETRIES, ids=ids(AVG_GEOMETRIES))
def test_avgpool2d_forward(backend_name, dtype, count_include_pad, geometry):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, ceil_mode = geometry
    OH, OW = pool_out(H, W, KH, KW, SH, SW, PH, PW, 1, 1, ceil_mode)
    x = pool_input((N, C, H, W), dtype, "random", seed=5)
    [(got, want)] = run_both(backend_name, "avgpool2d_forward",
                             [x, KH, KW, SH, SW, PH, PW, count_include_pad, nan_like((N, C, OH, OW), dtype)], [8])
    assert_matches(got, want, what="y")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("geometry", AVG_GEOMETRIES, ids=ids(AVG_GEOMETRIES))
def test_avgpool2d_backward(backend_name, dtype, count_include_pad, geometry):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, ceil_mode = geometry
    OH, OW = pool_out(H, W, KH, KW, SH, SW, PH, PW, 1, 1, ceil_mode)
    gy = np.random.default_rng(6).standard_normal((N, C, OH, OW)).astype(dtype)
    geometry = [KH, KW, SH, SW, PH, PW, count_include_pad]
    [(got, want)] = run_both(backend_name, "avgpool2d_backward", [gy, *geometry, nan_like((N, C, H, W), dtype)], [8])
    magnitude = np.empty((N, C, H, W))
    R.avgpool2d_backward(np.abs(gy).astype(np.float64), *geometry, magnitude)
    assert_matches(got, want, scale=magnitude, what="gx")


# ---------------------------------------------------------------------------------------------
# Local response normalization
# ---------------------------------------------------------------------------------------------

# (N, C, L, size, alpha, beta, k, x scale)
LRN_CASES = [
    (2, 7, 10, 5, 1e-4, 0.75, 2.0, 1.0),     # the paper's layer (PyTorch's alpha)
    (2, 7, 10, 5, 5e-4, 0.75, 2.0, 30.0),    # large activations: scale well above k
    (1, 6, 5, 4, 1e-2, 0.75, 1.0, 3.0),      # even size: window [c-2, c+1]
    (2, 3, 4, 7, 0.1, 0.5, 1.0, 2.0),        # size > C: every channel in every window
    (1, 5, 3, 1, 1.0, 1.3, 0.5, 1.0),        # size 1: each channel alone
    (3, 9, 6, 3, 1.0, 0.75, 1.0, 3.0),       # alpha 1: the sum dominates k
    (1, 16, 7, 6, 2e-2, 0.25, 2.0, 5.0),
]


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LRN_CASES, ids=ids([c[:4] for c in LRN_CASES]))
def test_lrn_forward(backend_name, dtype, case):
    N, C, L, size, alpha, beta, k, amplitude = case
    x = (amplitude * np.random.default_rng(8).standard_normal((N, C, L))).astype(dtype)
    (y_got, y_want), (s_got, s_want) = run_both(
        backend_name, "lrn_forward", [x, size, alpha, beta, k, nan_like(x.shape, dtype), nan_like(x.shape, dtype)], [5, 6])
    assert_matches(y_got, y_want, what="y")
    assert_matches(s_got, s_want, what="scale")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LRN_CASES, ids=ids([c[:4] for c in LRN_CASES]))
def test_lrn_backward(backend_name, dtype, case):
    N, C, L, size, alpha, beta, k, amplitude = case
    rng = np.random.default_rng(9)
    x = (amplitude * rng.standard_normal((N, C, L))).astype(dtype)
    y, scale = np.empty_like(x), np.empty_like(x)
    R.lrn_forward(x, size, alpha, beta, k, y, scale)
    gy = rng.standard_normal(x.shape).astype(dtype)
    [(got, want)] = run_both(backend_name, "lrn_backward",
                             [x, y, scale, gy, size, alpha, beta, nan_like(x.shape, dtype)], [7])
    assert_matches(got, want, what="gx")


# ---------------------------------------------------------------------------------------------
# ReLU, dropout
# ---------------------------------------------------------------------------------------------


def relu_input(shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30]
    return x


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4, 5), (3, 1000)], ids=["7", "2x3x4x5", "3x1000"])
def test_relu_forward(backend_name, dtype, shape):
    x = relu_input(shape, dtype, seed=10)
    [(got, want)] = run_both(backend_name, "relu_forward", [x, nan_like(shape, dtype)], [1])
    assert_matches(got, want, what="y")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4, 5), (3, 1000)], ids=["7", "2x3x4x5", "3x1000"])
def test_relu_backward(backend_name, dtype, shape):
    y = np.maximum(relu_input(shape, dtype, seed=11), 0)
    gy = np.random.default_rng(12).standard_normal(shape).astype(dtype)
    [(got, want)] = run_both(backend_name, "relu_backward", [gy, y, nan_like(shape, dtype)], [2])
    assert_matches(got, want, what="gx")


DROPOUT_SEEDS = [0, 1, 2**32 + 5, 2**64 - 1, 12345678901234567890]
DROPOUT_OFFSETS = [0, 7, 2**32 - 3, 2**64 - 5]               # across a 32-bit word; wrapping at 2^64


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("seed", DROPOUT_SEEDS)
def test_dropout_mask(backend_name, p, seed):
    for offset in DROPOUT_OFFSETS:
        for n in (1, 17, 1000):
            mask = np.full(n, 77, dtype=np.uint8)
            [(got, want)] = run_both(backend_name, "dropout_mask", [seed, offset, p, mask], [3])
            assert_matches(got, want, what=f"mask offset={offset} n={n}")
    if 0 < p < 1:                                            # the mask keeps about 1 - p of 1000
        assert abs(got.mean() - (1 - p)) < 0.06


@pytest.mark.parametrize("backend_name", COMPARED)
def test_dropout_mask_depends_on_element_index_only(backend_name):
    with _kernels(backend_name) as (K, xp):
        whole = xp.zeros(1000, dtype=np.uint8)
        K.dropout_mask(2**40 + 3, 5, 0.5, whole)
        parts = [xp.zeros(n, dtype=np.uint8) for n in (1, 300, 699)]
        for start, part in zip((5, 6, 306), parts):
            K.dropout_mask(2**40 + 3, start, 0.5, part)
    np.testing.assert_array_equal(B.to_numpy(whole), np.concatenate([B.to_numpy(p) for p in parts]))


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_apply(backend_name, dtype, p):
    rng = np.random.default_rng(13)
    x = relu_input((3, 4, 5), dtype, seed=14)
    mask = (rng.random(x.shape) >= p).astype(np.uint8)
    scale = dtype(0.0 if p == 1.0 else 1.0 / (1.0 - p))     # as the Dropout op passes it
    [(got, want)] = run_both(backend_name, "dropout_apply", [x, mask, scale, nan_like(x.shape, dtype)], [3])
    assert_matches(got, want, what="y")


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy, bias
# ---------------------------------------------------------------------------------------------

# (N, K, logit scale, logit offset)
XENT_CASES = [(4, 10, 1.0, 0.0), (3, 1, 1.0, 0.0), (5, 2, 3.0, 0.0), (2, 100, 30.0, 0.0),
              (3, 50, 1e4, 0.0), (4, 20, 1.0, 1e4), (2, 1000, 1e3, -5e3)]


def xent_problem(case, dtype, seed):
    N, K, amplitude, offset = case
    rng = np.random.default_rng(seed)
    logits = (offset + amplitude * rng.standard_normal((N, K))).astype(dtype)
    return logits, rng.integers(0, K, N).astype(np.int64)


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", XENT_CASES, ids=ids(XENT_CASES))
def test_softmax_xent_forward(backend_name, dtype, case):
    logits, target = xent_problem(case, dtype, seed=15)
    N, K = logits.shape
    (l_got, l_want), (p_got, p_want) = run_both(
        backend_name, "softmax_xent_forward", [logits, target, nan_like((N,), dtype), nan_like((N, K), dtype)], [2, 3])
    assert_matches(l_got, l_want, what="loss")
    assert_matches(p_got, p_want, what="probs")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", XENT_CASES, ids=ids(XENT_CASES))
def test_softmax_xent_backward(backend_name, dtype, case):
    logits, target = xent_problem(case, dtype, seed=16)
    N, K = logits.shape
    probs = np.empty_like(logits)
    R.softmax_xent_forward(logits, target, np.empty(N, dtype), probs)
    gloss = np.random.default_rng(17).standard_normal(N).astype(dtype)
    [(got, want)] = run_both(backend_name, "softmax_xent_backward", [probs, target, gloss, nan_like((N, K), dtype)], [3])
    assert_matches(got, want, what="glogits")


BIAS_SHAPES = [(2, 3, 5), (4, 7, 1), (1, 1, 1), (3, 16, 50)]   # (N, C, L): conv output, linear (L = 1)


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=ids(BIAS_SHAPES))
def test_bias_add(backend_name, dtype, shape):
    rng = np.random.default_rng(18)
    y, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    [(got, want)] = run_both(backend_name, "bias_add", [y, b], [0])
    assert_matches(got, want, what="y")


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=ids(BIAS_SHAPES))
def test_bias_grad(backend_name, dtype, shape):
    gy = (100 * np.random.default_rng(19).standard_normal(shape)).astype(dtype)
    [(got, want)] = run_both(backend_name, "bias_grad", [gy, nan_like((shape[1],), dtype)], [1])
    assert_matches(got, want, scale=np.abs(gy).astype(np.float64).sum(axis=(0, 2)), what="gb")


# (momentum, weight_decay, nesterov): without momentum (v is None), with, with weight decay, Nesterov
SGD_CASES = [(0.0, 0.0, False), (0.0, 0.01, False), (0.9, 0.0, False), (0.9, 5e-4, False), (0.9, 0.01, True)]


@pytest.mark.parametrize("backend_name", COMPARED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SGD_CASES, ids=["plain", "decay", "momentum", "momentum-decay", "nesterov"])
def test_sgd_update(backend_name, dtype, case):
    momentum, weight_decay, nesterov = case
    rng = np.random.default_rng(20)
    p, g = rng.standard_normal((2, 3, 37)).astype(dtype), rng.standard_normal((2, 3, 37)).astype(dtype)
    p.reshape(-1)[0] = np.inf                 # an infinite weight: inf * 0 must not appear without decay
    v = rng.standard_normal((2, 3, 37)).astype(dtype) if momentum else None
    pairs = run_both(backend_name, "sgd_update", [p, g, v, 0.1, momentum, weight_decay, nesterov],
                     [0, 2] if momentum else [0])
    for (got, want), what in zip(pairs, ["p", "v"]):
        assert_matches(got, want, what=what)
    assert not np.isnan(pairs[0][1]).any() or weight_decay


# ---------------------------------------------------------------------------------------------
# Layouts the ops may pass: non-contiguous inputs (a transposed gradient) and outputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", [p for p in COMPARED if p.values[0] == "numba"])
def test_non_contiguous_arguments(backend_name):
    """The interface asks for C-contiguous arrays; the CPU backends' wrappers accept any layout."""
    K = B.get(backend_name).kernels
    rng = np.random.default_rng(20)
    x = rng.standard_normal((4, 3, 9, 8)).transpose(0, 1, 3, 2)          # (4, 3, 8, 9), not contiguous
    y_ref, y = np.empty((4, 3, 3, 4)), np.empty((4, 3, 4, 3)).transpose(0, 1, 3, 2)
    a_ref, a = np.empty((4, 3, 3, 4), np.int32), np.empty((4, 3, 4, 3), np.int32).transpose(0, 1, 3, 2)
    R.maxpool2d_forward(x, 3, 2, 2, 2, 0, 0, 1, 1, y_ref, a_ref)
    K.maxpool2d_forward(x, 3, 2, 2, 2, 0, 0, 1, 1, y, a)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(a, a_ref)
    gx_ref, gx = np.empty(x.shape), np.empty(x.shape[::-1]).T
    R.relu_backward(x, x, gx_ref)
    K.relu_backward(x, x, gx)
    np.testing.assert_array_equal(gx, gx_ref)
    y = np.zeros((2, 5, 6))[:, :, ::2]                                  # bias_add adds into a strided view
    y_ref = y.copy()
    R.bias_add(y_ref, np.arange(5.0))
    K.bias_add(y, np.arange(5.0))
    np.testing.assert_array_equal(y, y_ref)


# ---------------------------------------------------------------------------------------------
# The default backend
# ---------------------------------------------------------------------------------------------


def test_default_backend(monkeypatch):
    monkeypatch.setenv("MINIALEX_BACKEND", "numpy")
    assert B.default_name() == "numpy"
    monkeypatch.delenv("MINIALEX_BACKEND")
    assert B.default_name() == ("numba" if _loads("numba") else "numpy")
