"""A2's checks: every backward is gradient-checked (float64, finite differences), every result is
compared with the reference solution on hidden shapes (between the HIDDEN TESTS markers, removed
from the student version). See minialex/assignments/checks.py for m, ref and rng."""

import numpy as np

from minialex.assignments.checks import check, check_close, check_gradients, task
from minialex.tensor import Function, Tensor


def t(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def as_function(forward, backward, **params):
    """A minialex Function from a forward returning (y, cache) and a backward(gy, cache)."""

    class Wrapped(Function):
        def forward(self, *arrays):
            y, self.cache = forward(*arrays, **params)
            return y

        def backward(self, gy):
            grads = backward(gy, self.cache)
            return grads if isinstance(grads, tuple) else (grads,)

    return Wrapped


def _out(H, K, S, P):
    return (H + 2 * P - K) // S + 1


# =============================================================================================
# im2col
# =============================================================================================


@task("im2col")
def im2col_small_example(m):
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    cols = m.im2col(x, 2, 2, 1, 1, 0, 0)
    expected = np.array([[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]], dtype=float)
    check_close(cols, expected, "im2col of a 3x3 image 1..9 with a 2x2 kernel, stride 1 (rows (kh, kw), "
                                "columns (oh, ow))")
    padded = m.im2col(x, 3, 3, 2, 2, 1, 1)
    check(padded.shape == (9, 4), f"im2col(x (1, 1, 3, 3), 3x3, stride 2, padding 1) has shape {padded.shape}, expected (9, 4)")
    check_close(padded[:, 0], [0, 0, 0, 0, 1, 2, 0, 4, 5], "the first column (window at the top-left, in the padding)")


@task("im2col")
def col2im_is_the_transpose_of_im2col(m):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im is im2col's adjoint (its gradient)."""
    rng = np.random.default_rng(1)
    for (N, C, H, W), (K, S, P) in [((2, 3, 5, 6), (3, 1, 1)), ((1, 2, 7, 7), (3, 2, 0)), ((2, 1, 6, 5), (2, 2, 1))]:
        x = rng.standard_normal((N, C, H, W))
        OH, OW = _out(H, K, S, P), _out(W, K, S, P)
        c = rng.standard_normal((C * K * K, N * OH * OW))
        cols = m.im2col(x, K, K, S, S, P, P)
        check(np.shape(cols) == c.shape, f"im2col(x {x.shape}, {K}x{K}, stride {S}, padding {P}) has shape "
                                         f"{np.shape(cols)}, expected {c.shape}")
        gx = m.col2im(c, x.shape, K, K, S, S, P, P)
        check_close(np.sum(x * gx), np.sum(cols * c), f"<x, col2im(c)> vs <im2col(x), c> for x {x.shape}, {K}x{K}, "
                                                     f"stride {S}, padding {P}")


# BEGIN HIDDEN TESTS
@task("im2col")
def im2col_hidden_shapes(m, ref, rng):
    for (N, C, H, W), (KH, KW, SH, SW, PH, PW) in [((2, 3, 9, 8), (3, 3, 2, 2, 1, 1)), ((1, 4, 6, 11), (2, 5, 1, 3, 0, 2)),
                                                   ((3, 2, 13, 13), (11, 11, 4, 4, 2, 2))]:
        x = rng.standard_normal((N, C, H, W))
        OH, OW = _out(H, KH, SH, PH), _out(W, KW, SW, PW)
        c = rng.standard_normal((C * KH * KW, N * OH * OW))
        geometry = (KH, KW, SH, SW, PH, PW)

        def pair(module, x, c, g):
            return module.im2col(x, *g), module.col2im(c, x.shape, *g)

        expected = ref(pair, x, c, geometry)
        cols, gx = pair(m, x, c, geometry)
        what = f"x {x.shape}, kernel {KH}x{KW}, stride ({SH}, {SW}), padding ({PH}, {PW})"
        check_close(cols, expected[0], f"im2col, {what}")
        check_close(gx, expected[1], f"col2im, {what}")
# END HIDDEN TESTS


# =============================================================================================
# conv_forward and conv_backward
# =============================================================================================


def _conv(m, stride, padding):
    return as_function(m.conv2d_forward, m.conv2d_backward, stride=stride, padding=padding)


@task("conv_forward")
def conv_forward_small_example(m):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.25, 0.25], [0.25, 0.25]]]])
    y, _ = m.conv2d_forward(x, W, np.array([0.5, -1.0]), stride=2, padding=0)
    expected = np.array([[[[-4.5, -4.5], [-4.5, -4.5]], [[1.5, 3.5], [9.5, 11.5]]]])
    check_close(y, expected, "conv2d_forward of a 4x4 image with two 2x2 filters, stride 2")


@task("conv_forward")
def conv_forward_by_loops(m):
    """Against the definition, written as plain loops."""
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y, _ = m.conv2d_forward(x, W, b, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    OH, OW = _out(6, 3, 2, 1), _out(5, 3, 2, 1)
    expected = np.empty((2, 4, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            patch = xp[:, :, 2 * oh:2 * oh + 3, 2 * ow:2 * ow + 3]
            expected[:, :, oh, ow] = np.einsum("nchw,ochw->no", patch, W) + b
    check_close(y, expected, "conv2d_forward(x (2, 3, 6, 5), W (4, 3, 3, 3), stride 2, padding 1)")


@task("conv_backward")
def conv_backward_gradcheck(m):
    rng = np.random.default_rng(3)
    for stride, padding in [(1, 0), (2, 1)]:
        x, W, b = t(rng.standard_normal((2, 2, 5, 5))), t(rng.standard_normal((3, 2, 3, 3))), t(rng.standard_normal(3))
        Conv = _conv(m, stride, padding)
        check_gradients(lambda x, W, b: Conv.apply(x, W, b), [x, W, b],
                        f"conv2d (x (2, 2, 5, 5), W (3, 2, 3, 3), stride {stride}, padding {padding})",
                        names=("x", "W", "b"))


# BEGIN HIDDEN TESTS
def _conv_all(module, x, W, b, gy, stride, padding):
    y, cache = module.conv2d_forward(x, W, b, stride=stride, padding=padding)
    return y, module.conv2d_backward(gy, cache)


_CONV_CASES = [((2, 3, 11, 9), (5, 3, 3, 3), 1, 1), ((3, 2, 15, 15), (4, 2, 5, 5), 2, 2), ((1, 3, 19, 19), (2, 3, 11, 11), 4, 0),
               ((2, 1, 6, 7), (3, 1, 1, 1), 1, 0)]


@task("conv_forward")
def conv_forward_hidden_shapes(m, ref, rng):
    for xs, ws, stride, padding in _CONV_CASES:
        x, W, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        expected = ref(lambda mod, x, W, b: mod.conv2d_forward(x, W, b, stride=stride, padding=padding)[0], x, W, b)
        y, _ = m.conv2d_forward(x, W, b, stride=stride, padding=padding)
        check_close(y, expected, f"conv2d_forward(x {xs}, W {ws}, stride {stride}, padding {padding})")


@task("conv_backward")
def conv_backward_hidden_shapes(m, ref, rng):
    for xs, ws, stride, padding in _CONV_CASES:
        x, W, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        OH, OW = _out(xs[2], ws[2], stride, padding), _out(xs[3], ws[3], stride, padding)
        gy = rng.standard_normal((xs[0], ws[0], OH, OW))
        _, expected = ref(_conv_all, x, W, b, gy, stride, padding)
        _, grads = _conv_all(m, x, W, b, gy, stride, padding)
        check(isinstance(grads, tuple) and len(grads) == 3, "conv2d_backward must return (gx, gW, gb)")
        for name, yours, exp in zip(("x", "W", "b"), grads, expected):
            check_close(yours, exp, f"conv2d_backward: grad wrt {name}, x {xs}, W {ws}, stride {stride}, padding {padding}")
    x, W, b = t(rng.standard_normal((1, 2, 7, 6))), t(rng.standard_normal((2, 2, 3, 2))), t(rng.standard_normal(2))
    Conv = _conv(m, 2, 1)
    check_gradients(lambda x, W, b: Conv.apply(x, W, b), [x, W, b], "conv2d with a 3x2 kernel, stride 2, padding 1")
# END HIDDEN TESTS


# =============================================================================================
# maxpool_backward
# =============================================================================================


@task("maxpool_backward")
def maxpool_overlap_example(m):
    """A 5x5 input whose centre (2, 2) is the largest: it wins all four 3x3/2 windows."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0
    x[0, 0, 0, 0] = 1.0
    y, cache = m.maxpool2d_forward(x, 3, 2)
    gx = m.maxpool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 10.0
    check_close(gx, expected, "maxpool2d_backward: the centre wins four overlapping windows, so it gets 1+2+3+4")


@task("maxpool_backward")
def maxpool_gradcheck(m):
    rng = np.random.default_rng(4)
    Pool = as_function(m.maxpool2d_forward, m.maxpool2d_backward, K=3, S=2)
    check_gradients(lambda x: Pool.apply(x), [t(rng.standard_normal((2, 2, 7, 7)))], "max-pool 3x3, stride 2, x (2, 2, 7, 7)")


# BEGIN HIDDEN TESTS
def _pool_all(module, x, gy, K, S):
    y, cache = module.maxpool2d_forward(x, K, S)
    return module.maxpool2d_backward(gy, cache)


@task("maxpool_backward")
def maxpool_hidden_shapes(m, ref, rng):
    for shape, K, S in [((2, 3, 13, 13), 3, 2), ((1, 2, 9, 12), 3, 2), ((3, 1, 8, 8), 2, 2), ((1, 4, 11, 7), 5, 3)]:
        x = rng.standard_normal(shape)
        x[0, 0, :3, :3] = 0.5                       # ties: the first maximum wins
        OH, OW = _out(shape[2], K, S, 0), _out(shape[3], K, S, 0)
        gy = rng.standard_normal((shape[0], shape[1], OH, OW))
        expected = ref(_pool_all, x, gy, K, S)
        check_close(_pool_all(m, x, gy, K, S), expected, f"maxpool2d_backward, x {shape}, {K}x{K} windows, stride {S}")
# END HIDDEN TESTS


# =============================================================================================
# lrn_backward
# =============================================================================================


@task("lrn_backward")
def lrn_gradcheck(m):
    rng = np.random.default_rng(5)
    for size in (5, 2):
        LRN = as_function(m.lrn_forward, m.lrn_backward, size=size, alpha=0.5, beta=0.75, k=2.0)
        check_gradients(lambda x: LRN.apply(x), [t(rng.standard_normal((2, 7, 3, 2)))],
                        f"LRN (size {size}, alpha 0.5 so that the window term matters) on x (2, 7, 3, 2)")


# BEGIN HIDDEN TESTS
def _lrn_all(module, x, gy, size, alpha, beta, k):
    y, cache = module.lrn_forward(x, size, alpha, beta, k)
    return module.lrn_backward(gy, cache)


@task("lrn_backward")
def lrn_hidden_shapes(m, ref, rng):
    for shape, size, alpha, beta, k in [((2, 10, 4, 4), 5, 5e-4, 0.75, 2.0), ((1, 6, 5, 3), 4, 0.3, 0.75, 1.0),
                                        ((3, 3, 2, 2), 7, 1.0, 0.5, 1.5), ((2, 96, 3, 3), 5, 1e-2, 0.75, 2.0)]:
        x = rng.standard_normal(shape) * 3
        gy = rng.standard_normal(shape)
        expected = ref(_lrn_all, x, gy, size, alpha, beta, k)
        check_close(_lrn_all(m, x, gy, size, alpha, beta, k), expected,
                    f"lrn_backward, x {shape}, size {size}, alpha {alpha}, beta {beta}, k {k}")
# END HIDDEN TESTS


# =============================================================================================
# dropout
# =============================================================================================


@task("dropout")
def dropout_example(m):
    x = np.arange(1.0, 7.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    y, cache = m.dropout_forward(x, 0.5, mask)
    check_close(y, [[2.0, 0.0, 6.0], [0.0, 10.0, 12.0]], "dropout_forward(p=0.5): kept values doubled")
    check_close(m.dropout_backward(np.ones((2, 3)), cache), mask * 2.0, "dropout_backward(p=0.5) of ones")
    y, cache = m.dropout_forward(x, 0.5, mask, training=False)
    check_close(y, x, "dropout_forward(training=False) returns x unchanged")
    check_close(m.dropout_backward(np.ones((2, 3)), cache), np.ones((2, 3)), "dropout_backward after training=False")


# BEGIN HIDDEN TESTS
def _dropout_all(module, x, gy, p, mask):
    y, cache = module.dropout_forward(x, p, mask)
    return y, module.dropout_backward(gy, cache)


@task("dropout")
def dropout_hidden_cases(m, ref, rng):
    for shape, p in [((4, 5), 0.2), ((2, 3, 4, 4), 0.9), ((7,), 1.0), ((3, 3), 0.0)]:
        x, gy = rng.standard_normal(shape), rng.standard_normal(shape)
        mask = rng.random(shape) >= p
        expected = ref(_dropout_all, x, gy, p, mask)
        y, gx = _dropout_all(m, x, gy, p, mask)
        check_close(y, expected[0], f"dropout_forward, x {shape}, p {p}")
        check_close(gx, expected[1], f"dropout_backward, x {shape}, p {p}")
    mask = rng.random((3, 4)) >= 0.3
    Drop = as_function(m.dropout_forward, m.dropout_backward, p=0.3, mask=mask)
    check_gradients(lambda x: Drop.apply(x), [t(rng.standard_normal((3, 4)))], "dropout (p=0.3) gradient check")
# END HIDDEN TESTS
