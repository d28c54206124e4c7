"""A1's checks. Each check takes the submission's module as ``m``; hidden checks (between the
BEGIN/END HIDDEN TESTS markers, removed from the student version) also take ``ref`` (values from
the reference solution, computed in another process) and ``rng`` (seeded from the manifest's
secret). See minialex/assignments/checks.py."""

import numpy as np

from minialex.assignments.checks import check, check_close, check_gradients, task
from minialex.tensor import Function, Tensor


def t(array, grad=True):
    """A float64 Tensor that requires grad."""
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def forward_and_grads(module, cls_name, arrays, cotangent, extra=()):
    """(y, grads of each input) for sum(cotangent * cls.apply(*inputs)), as plain arrays."""
    inputs = [t(a) for a in arrays]
    y = getattr(module, cls_name).apply(*inputs, *extra)
    y.backward(Tensor(np.asarray(cotangent, dtype=np.float64).reshape(y.shape)))
    return y.numpy(), tuple(x.grad.numpy() if x.grad is not None else None for x in inputs)


# =============================================================================================
# autograd_basics
# =============================================================================================


@task("autograd_basics")
def mul_small_example(m):
    a, b = np.array([[1.0, -2.0], [3.0, 0.5]]), np.array([[4.0, 5.0], [-1.0, 2.0]])
    y, (ga, gb) = forward_and_grads(m, "Mul", [a, b], np.ones((2, 2)))
    check_close(y, a * b, "Mul.apply(a, b) on a 2x2 example")
    check_close(ga, b, "Mul: grad wrt a (with gy = 1 everywhere)")
    check_close(gb, a, "Mul: grad wrt b (with gy = 1 everywhere)")


@task("autograd_basics")
def tanh_and_mean_gradcheck(m):
    rng = np.random.default_rng(1)
    x = t(rng.standard_normal((3, 4)))
    check_gradients(lambda x: m.Tanh.apply(x), [x], "Tanh.apply(x (3, 4))")
    check_gradients(lambda x: m.Mean.apply(x), [t(rng.standard_normal((2, 5)))], "Mean.apply(x (2, 5))")
    y = m.Mean.apply(t([[1.0, 2.0], [3.0, 6.0]]))
    check(np.shape(y.numpy()) == (), f"Mean must return a 0-d array (shape ()), got shape {np.shape(y.numpy())}")
    check_close(y, 3.0, "Mean of [[1, 2], [3, 6]]")


@task("autograd_basics")
def composed_graph(m):
    """The three Functions together: backward through a small graph, a tensor used twice."""
    rng = np.random.default_rng(2)
    a, b = t(rng.standard_normal((2, 3))), t(rng.standard_normal((2, 3)))
    check_gradients(lambda a, b: m.Mean.apply(m.Mul.apply(m.Tanh.apply(a), m.Mul.apply(a, b))), [a, b],
                    "Mean(Mul(Tanh(a), Mul(a, b)))", names=("a", "b"))


# BEGIN HIDDEN TESTS
def _basics(module, a, b, cot):
    y1, g1 = forward_and_grads(module, "Mul", [a, b], cot)
    y2, g2 = forward_and_grads(module, "Tanh", [a], cot)
    y3, g3 = forward_and_grads(module, "Mean", [a], 0.7)
    return y1, g1, y2, g2, y3, g3


@task("autograd_basics")
def basics_hidden_shapes(m, ref, rng):
    for shape in [(5,), (3, 1, 4), (2, 7)]:
        a, b = rng.standard_normal(shape) * 3, rng.standard_normal(shape)
        cot = rng.standard_normal(shape)
        expected = ref(_basics, a, b, cot)
        actual = _basics(m, a, b, cot)
        for what, yours, exp in [("Mul output", actual[0], expected[0]), ("Mul grad wrt a", actual[1][0], expected[1][0]),
                                 ("Mul grad wrt b", actual[1][1], expected[1][1]), ("Tanh output", actual[2], expected[2]),
                                 ("Tanh grad", actual[3][0], expected[3][0]), ("Mean output", actual[4], expected[4]),
                                 ("Mean grad", actual[5][0], expected[5][0])]:
            check_close(yours, exp, f"{what}, input shape {shape}")
        check_gradients(lambda a, b: m.Mul.apply(m.Tanh.apply(a), b), [t(a), t(b)], f"Mul(Tanh(a), b), shape {shape}")
# END HIDDEN TESTS


# =============================================================================================
# linear
# =============================================================================================


@task("linear")
def linear_forward_example(m):
    x = np.array([[1.0, 2.0, 3.0]])
    W = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    b = np.array([10.0, -1.0])
    y = m.Linear.apply(t(x), t(W), t(b))
    check_close(y, [[8.0, 2.0]], "Linear.apply(x [[1, 2, 3]], W (2, 3), b [10, -1])")


@task("linear")
def linear_gradcheck(m):
    rng = np.random.default_rng(3)
    x, W, b = t(rng.standard_normal((4, 3))), t(rng.standard_normal((2, 3))), t(rng.standard_normal(2))
    check_gradients(lambda x, W, b: m.Linear.apply(x, W, b), [x, W, b], "Linear.apply(x (4, 3), W (2, 3), b (2,))",
                    names=("x", "W", "b"))


# BEGIN HIDDEN TESTS
def _linear(module, x, W, b, cot):
    return forward_and_grads(module, "Linear", [x, W, b], cot)


@task("linear")
def linear_hidden_shapes(m, ref, rng):
    for N, n_in, n_out in [(1, 1, 1), (7, 5, 3), (16, 33, 10)]:
        x, W, b = rng.standard_normal((N, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
        cot = rng.standard_normal((N, n_out))
        y, grads = ref(_linear, x, W, b, cot)
        y_m, grads_m = _linear(m, x, W, b, cot)
        what = f"Linear with x ({N}, {n_in}), W ({n_out}, {n_in})"
        check_close(y_m, y, f"{what}: output")
        for name, yours, expected in zip(("x", "W", "b"), grads_m, grads):
            check(yours is not None, f"{what}: no gradient reached {name}")
            check_close(yours, expected, f"{what}: grad wrt {name}")
# END HIDDEN TESTS


# =============================================================================================
# softmax_xent
# =============================================================================================


def _xent(module, logits, target):
    z = t(logits)
    loss = module.SoftmaxCrossEntropy.apply(z, np.asarray(target))
    loss.backward()
    return loss.numpy(), z.grad.numpy()


@task("softmax_xent")
def xent_uniform_logits(m):
    loss, grad = _xent(m, np.zeros((2, 4)), [1, 3])
    check(np.shape(loss) == (), f"the loss must be a 0-d array (shape ()), got shape {np.shape(loss)}")
    check_close(loss, np.log(4.0), "loss of all-zero logits over 4 classes (log 4)")
    expected = np.full((2, 4), 0.25 / 2)
    expected[[0, 1], [1, 3]] -= 1 / 2
    check_close(grad, expected, "gradient of the mean loss wrt all-zero logits")


@task("softmax_xent")
def xent_gradcheck(m):
    rng = np.random.default_rng(4)
    target = np.array([0, 2, 1])
    check_gradients(lambda z: m.SoftmaxCrossEntropy.apply(z, target), [t(rng.standard_normal((3, 3)))],
                    "SoftmaxCrossEntropy on logits (3, 3)")


@task("softmax_xent")
def xent_large_logits(m):
    """logits of 1000: a naive exp overflows to inf, and the loss to nan."""
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]])
    loss, grad = _xent(m, logits, [0, 2])
    check(np.isfinite(loss), f"the loss of logits [[1000, 0, -1000], [0, 1000, 999]] is {loss}: subtract each row's "
                             "maximum before exp")
    check_close(loss, (0.0 + (1.0 + np.log1p(np.exp(-1.0)))) / 2, "loss of logits with entries of 1000", rtol=1e-10)
    check(np.all(np.isfinite(grad)), "the gradient of large logits has inf or nan values")


# BEGIN HIDDEN TESTS
@task("softmax_xent")
def xent_hidden_shapes(m, ref, rng):
    for N, K, scale in [(1, 2, 1.0), (9, 10, 3.0), (32, 7, 50.0), (5, 4, 800.0)]:
        logits = rng.standard_normal((N, K)) * scale
        target = rng.integers(0, K, N)
        expected = ref(_xent, logits, target)
        actual = _xent(m, logits, target)
        what = f"SoftmaxCrossEntropy on logits ({N}, {K}) of magnitude about {scale:g}"
        check_close(actual[0], expected[0], f"{what}: loss")
        check_close(actual[1], expected[1], f"{what}: gradient")
# END HIDDEN TESTS


# =============================================================================================
# gradient_checker
# =============================================================================================


class _Square(Function):
    def forward(self, x):
        self.save(x=x)
        return x * x

    def backward(self, gy):
        return 2 * self.saved["x"] * gy


class _WrongSquare(_Square):
    def backward(self, gy):
        return 3 * self.saved["x"] * gy          # the bug the checker must catch


@task("gradient_checker")
def numerical_gradient_of_a_known_function(m):
    x = np.array([[0.3, -1.2, 2.0], [0.0, 0.7, -0.4]])
    before = x.copy()
    g = m.numerical_gradient(lambda a: float(np.sum(np.sin(a) * a ** 2)), x)
    check_close(g, np.cos(before) * before ** 2 + 2 * before * np.sin(before),
                "numerical_gradient of sum(sin(x) * x^2) at a (2, 3) x", rtol=1e-6)
    check(np.array_equal(x, before), "numerical_gradient changed x: put each entry back after perturbing it")


@task("gradient_checker")
def gradient_check_tells_right_from_wrong(m):
    rng = np.random.default_rng(5)
    good = m.gradient_check(lambda x: _Square.apply(x), [t(rng.standard_normal((3, 2)))])
    check(np.ndim(good) == 0 and float(good) < 1e-6,
          f"gradient_check of a correct backward (x^2) returned {good!r}: expected a small number (< 1e-6)")
    bad = m.gradient_check(lambda x: _WrongSquare.apply(x), [t(rng.standard_normal((3, 2)))])
    check(float(bad) > 0.1, f"gradient_check of a wrong backward (3x instead of 2x) returned {bad!r}: "
                            "expected a large error (> 0.1)")


# BEGIN HIDDEN TESTS
class _WrongMatmul(Function):
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved["a"], self.saved["b"]
        return gy @ b.T, a.T @ gy * 1.01          # 1% off: still caught


@task("gradient_checker")
def checker_hidden_cases(m, rng):
    x = rng.standard_normal((4, 3))
    f = lambda a: float(np.sum(np.exp(a[:, :1]) * a) + np.prod(a[0]))  # noqa: E731
    g = m.numerical_gradient(f, x.copy())
    analytic = np.exp(x[:, :1]) * np.ones_like(x)
    analytic[:, 0] += np.exp(x[:, 0]) * x.sum(axis=1)
    analytic[0] += np.prod(x[0]) / x[0]
    check_close(g, analytic, "numerical_gradient of a function with exp and a product", rtol=1e-6)
    a, b = t(rng.standard_normal((3, 4))), t(rng.standard_normal((4, 2)))
    good = m.gradient_check(lambda a, b: (a @ b).exp(), [a, b])
    check(float(good) < 1e-6, f"gradient_check of exp(a @ b) (minialex's own, correct) returned {good!r}")
    bad = m.gradient_check(lambda a, b: _WrongMatmul.apply(a, b), [a, b])
    check(float(bad) > 1e-3, f"gradient_check of a matmul whose grad wrt b is 1% off returned {bad!r}: too small")
    frozen = t(rng.standard_normal((2, 2)), grad=False)
    err = m.gradient_check(lambda x, c: _Square.apply(x) * c, [t(rng.standard_normal((2, 2))), frozen])
    check(float(err) < 1e-6, "gradient_check must skip inputs that do not require grad (a constant input)")
# END HIDDEN TESTS
