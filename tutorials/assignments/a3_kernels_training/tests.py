"""A3's checks. The kernels are compared with the reference exactly (copies and maxima have no
rounding); the CUDA kernel runs on the GPU when there is one, else on the CPU by emulation
(minialex/assignments/cuda_tools.py); the training check measures the returned model's accuracy.
See minialex/assignments/checks.py for m, ref, rng, task, secret and submission_dir."""

import re
import time

import numpy as np

from minialex.assignments import cuda_tools
from minialex.assignments.checks import Skip, check, check_close, task


def _out(H, K, S, P):
    return (H + 2 * P - K) // S + 1


def _im2col_loops(x, KH, KW, SH, SW, PH, PW):
    """The definition, as slow Python loops (for small inputs)."""
    N, C, H, W = x.shape
    OH, OW = _out(H, KH, SH, PH), _out(W, KW, SW, PW)
    cols = np.zeros((C * KH * KW, N * OH * OW), dtype=x.dtype)
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                for n in range(N):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * SH - PH + kh, ow * SW - PW + kw
                            if 0 <= h < H and 0 <= w < W:
                                cols[(c * KH + kh) * KW + kw, (n * OH + oh) * OW + ow] = x[n, c, h, w]
    return cols


def _check_written(array, what):
    """The output buffers start as NaN (or -7 for indices): entries still holding it were never written."""
    unwritten = np.isnan(array) if array.dtype.kind == "f" else array == -7
    if unwritten.any():
        first = tuple(int(i) for i in np.argwhere(unwritten)[0])
        check(False, f"{what}: {int(unwritten.sum())} of {array.size} entries were never written (first at {first}); "
                     "every entry of the output must be set, padding included")


def _run_im2col(module, x, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    cols = np.full((C * KH * KW, N * _out(H, KH, SH, PH) * _out(W, KW, SW, PW)), np.nan, dtype=x.dtype)
    module.im2col_numba(x, KH, KW, SH, SW, PH, PW, cols)
    _check_written(cols, f"im2col_numba(x {x.shape}, kernel {KH}x{KW}, stride ({SH}, {SW}), padding ({PH}, {PW}))")
    return cols


# =============================================================================================
# numba_im2col
# =============================================================================================


@task("numba_im2col")
def im2col_is_a_numba_kernel(m):
    fn = m.im2col_numba
    check(hasattr(fn, "py_func") and type(fn).__module__.startswith("numba"),
          f"im2col_numba is a {type(fn).__name__}, not a Numba-compiled function: decorate it with @njit")


@task("numba_im2col")
def im2col_small_cases(m):
    rng = np.random.default_rng(1)
    for shape, geometry in [((1, 1, 3, 3), (2, 2, 1, 1, 0, 0)), ((2, 3, 5, 6), (3, 3, 2, 2, 1, 1)),
                            ((1, 2, 4, 7), (1, 3, 1, 2, 0, 1))]:
        for dtype in (np.float64, np.float32):
            x = rng.standard_normal(shape).astype(dtype)
            what = f"im2col_numba(x {shape} {np.dtype(dtype)}, kernel {geometry[:2]}, stride {geometry[2:4]}, padding {geometry[4:]})"
            check_close(_run_im2col(m, x, *geometry), _im2col_loops(x, *geometry), what, rtol=0.0, atol=0.0)


# BEGIN HIDDEN TESTS
def _expected_im2col(module, x, geometry):
    """The oracle: minialex's NumPy reference kernel (run in the reference process only)."""
    from minialex.backend import numpy_ref

    KH, KW, SH, SW, PH, PW = geometry
    N, C, H, W = x.shape
    cols = np.empty((C * KH * KW, N * _out(H, KH, SH, PH) * _out(W, KW, SW, PW)), dtype=x.dtype)
    numpy_ref.im2col(x, KH, KW, SH, SW, PH, PW, 1, 1, cols)
    return cols


@task("numba_im2col")
def im2col_hidden_shapes(m, ref, rng):
    for shape, geometry in [((2, 3, 27, 27), (11, 11, 4, 4, 2, 2)), ((3, 5, 13, 9), (3, 3, 1, 1, 1, 1)),
                            ((1, 4, 8, 10), (5, 2, 3, 1, 2, 0)), ((4, 2, 7, 7), (7, 7, 1, 1, 0, 0))]:
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            expected = ref(_expected_im2col, x, geometry)
            check_close(_run_im2col(m, x, *geometry), expected,
                        f"im2col_numba(x {shape} {np.dtype(dtype)}, kernel {geometry[:2]}, stride {geometry[2:4]}, "
                        f"padding {geometry[4:]})", rtol=0.0, atol=0.0, dtype=dtype)
# END HIDDEN TESTS


# =============================================================================================
# cuda_maxpool
# =============================================================================================

_NAMES = ["maxpool2d_forward<float>", "maxpool2d_forward<double>"]


def _source(submission_dir):
    path = submission_dir / "maxpool.cu"
    check(path.is_file(), f"maxpool.cu is not in {submission_dir}")
    source = path.read_text()
    check(not re.search(r"^\s*#\s*include", source, re.M), "maxpool.cu has an #include: CuPy's NVRTC compile rejects header includes, and "
                                    "the kernel needs none")
    return source


def run_maxpool(source, x, K, S):
    """(y, argmax) from the kernel in ``source``: on the GPU if there is one, else on the CPU by
    emulation; Skip when neither can run here. A small launch: the kernel must loop (grid-stride)."""
    N, C, H, W = x.shape
    OH, OW = _out(H, K, S, 0), _out(W, K, S, 0)
    scalars = tuple(np.int64(v) for v in (N, C, H, W, K, S, OH, OW))
    name = "maxpool2d_forward<float>" if x.dtype == np.float32 else "maxpool2d_forward<double>"
    if cuda_tools.gpu_available():
        import cupy

        module = cupy.RawModule(code=source, options=("-std=c++17",), name_expressions=_NAMES)
        xd = cupy.asarray(x)
        y = cupy.empty((N, C, OH, OW), dtype=x.dtype)
        argmax = cupy.empty((N, C, OH, OW), dtype=np.int32)
        y.fill(np.nan)
        argmax.fill(-7)
        module.get_function(name)((4,), (64,), (xd, y, argmax) + scalars)
        cupy.cuda.runtime.deviceSynchronize()
        what = f"{name} on x {x.shape} launched with 4 blocks of 64 threads (a grid-stride loop must cover the rest)"
        y, argmax = y.get(), argmax.get()
        _check_written(y, f"{what}: y")
        _check_written(argmax, f"{what}: argmax")
        return y, argmax
    if cuda_tools.host_compiler() is None:
        raise Skip("no GPU and no C++ compiler here: the kernel's values cannot be checked on this machine")
    try:
        module = cuda_tools.load_emulated(source, "maxpool")
    except cuda_tools.CompileError as err:
        raise AssertionError(f"maxpool.cu does not compile for the CPU emulation:\n{err}") from None
    y = np.full((N, C, OH, OW), np.nan, dtype=x.dtype)
    argmax = np.full((N, C, OH, OW), -7, dtype=np.int32)
    module.get_function(name)((3,), (5,), (np.ascontiguousarray(x), y, argmax) + scalars)
    what = f"{name} on x {x.shape} launched with 3 blocks of 5 threads (a grid-stride loop must cover the rest)"
    _check_written(y, f"{what}: y")
    _check_written(argmax, f"{what}: argmax")
    return y, argmax


def _maxpool_loops(x, K, S):
    N, C, H, W = x.shape
    OH, OW = _out(H, K, S, 0), _out(W, K, S, 0)
    y, argmax = np.empty((N, C, OH, OW), dtype=x.dtype), np.empty((N, C, OH, OW), dtype=np.int32)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    window = x[n, c, oh * S:oh * S + K, ow * S:ow * S + K]
                    kh, kw = np.unravel_index(int(np.argmax(window)), window.shape)   # the first maximum
                    y[n, c, oh, ow] = window[kh, kw]
                    argmax[n, c, oh, ow] = (oh * S + kh) * W + ow * S + kw
    return y, argmax


@task("cuda_maxpool")
def maxpool_kernel_compiles(submission_dir):
    source = _source(submission_dir)
    try:
        size = cuda_tools.nvrtc_compile(source, "maxpool.cu", _NAMES, arch="sm_75")
    except cuda_tools.CompileError as err:
        raise AssertionError(f"maxpool.cu does not compile with NVRTC (as CuPy compiles it):\n{err}") from None
    except cuda_tools.NvrtcUnavailable as err:
        if cuda_tools.host_compiler() is None and not cuda_tools.gpu_available():
            raise Skip(f"compile check unavailable: {err}; and no C++ compiler for the CPU emulation") from None
        return f"NVRTC unavailable ({err}); checked with the CPU emulation's compiler only"
    return f"compiled with NVRTC for sm_75 ({size} bytes)"


@task("cuda_maxpool")
def maxpool_kernel_small_cases(submission_dir):
    source = _source(submission_dir)
    rng = np.random.default_rng(2)
    for shape, K, S in [((1, 1, 5, 5), 3, 2), ((2, 3, 7, 9), 3, 2), ((1, 2, 6, 6), 2, 2)]:
        for dtype in (np.float64, np.float32):
            x = rng.standard_normal(shape).astype(dtype)
            y, argmax = run_maxpool(source, x, K, S)
            ey, ea = _maxpool_loops(x, K, S)
            what = f"maxpool2d_forward<{'float' if dtype == np.float32 else 'double'}>, x {shape}, {K}x{K}, stride {S}"
            check_close(y, ey, f"{what}: y", rtol=0.0)
            check_close(argmax, ea, f"{what}: argmax (h*W + w of the first maximum)")


# BEGIN HIDDEN TESTS
def _expected_maxpool(module, x, K, S):
    """The oracle: minialex's NumPy reference (run in the reference process only)."""
    from minialex.backend import numpy_ref

    N, C, H, W = x.shape
    y = np.empty((N, C, _out(H, K, S, 0), _out(W, K, S, 0)), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int32)
    numpy_ref.maxpool2d_forward(x, K, K, S, S, 0, 0, 1, 1, y, argmax)
    return y, argmax


@task("cuda_maxpool")
def maxpool_kernel_hidden_shapes(m, ref, rng, submission_dir):
    source = _source(submission_dir)
    for shape, K, S in [((2, 4, 13, 13), 3, 2), ((3, 2, 27, 20), 3, 2), ((1, 3, 9, 9), 5, 1), ((2, 1, 8, 12), 4, 4)]:
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            x[0, 0, :4, :4] = 1.0                               # ties: the first maximum wins
            ey, ea = ref(_expected_maxpool, x, K, S)
            y, argmax = run_maxpool(source, x, K, S)
            what = f"maxpool2d_forward, x {shape} {np.dtype(dtype)}, {K}x{K}, stride {S}"
            check_close(y, ey, f"{what}: y", rtol=0.0)
            check_close(argmax, ea, f"{what}: argmax")
# END HIDDEN TESTS


# =============================================================================================
# train
# =============================================================================================


def _accuracy(model, images, labels):
    import minialex

    model.eval()
    with minialex.no_grad():
        scores = np.concatenate([model(minialex.tensor(images[i:i + 256])).numpy() for i in range(0, len(images), 256)])
    check(scores.shape == (len(images), 10), f"the model gives scores of shape {scores.shape} for {len(images)} images; "
                                             "expected (N, 10)")
    return float((scores.argmax(axis=1) == labels).mean())


def _warm_up(size):
    """One step of a throwaway model first, so that compiling (or loading) minialex's Numba kernels
    is not charged to the student's time budget."""
    import minialex
    import minialex.nn.functional as F
    from minialex.models import alexnet

    model = alexnet("small", num_classes=10, image_size=size)
    F.cross_entropy(model(minialex.tensor(np.zeros((2, 3, size, size), dtype=np.float32))), np.array([0, 1])).backward()


@task("train")
def reaches_target_accuracy(m, task, secret):
    """Train on images drawn with a secret seed (the instructor's) or the public one (a self-check);
    the accuracy is measured on those images, and on as many new ones for information."""
    from minialex.data import make_shapes
    from minialex.data.loader import channel_stats

    o = task.options
    size, n, target, budget = o["image_size"], o["train_images"], o["target_accuracy"], o["time_budget_s"]
    images, labels = make_shapes(2 * n, seed=secret, image_size=size)
    mean, std = channel_stats(images[:n])
    x = ((images / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)
    _warm_up(size)
    start = time.perf_counter()
    model = m.train_small_alexnet(x[:n].copy(), labels[:n].copy(), budget)
    elapsed = time.perf_counter() - start
    check(model is not None and callable(model) and hasattr(model, "eval"),
          f"train_small_alexnet returned {type(model).__name__}, not the trained model")
    accuracy = _accuracy(model, x[:n], labels[:n])
    held_out = _accuracy(model, x[n:], labels[n:])
    summary = (f"training accuracy {100 * accuracy:.1f}% on the {n} images (target {100 * target:.0f}%) after "
               f"{elapsed:.0f} s; on {n} new images {100 * held_out:.1f}% (not graded)")
    check(elapsed <= budget * 1.1, f"train_small_alexnet took {elapsed:.0f} s, more than the budget of {budget} s: "
                                   "check the clock inside your loop")
    check(accuracy >= target, summary, "the target is the accuracy of the returned model in eval mode on the "
                                       "training images; a loop that learns gets there in a few dozen epochs")
    return summary
