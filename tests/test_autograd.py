"""The autograd engine: operators, broadcasting, reuse, long chains, no_grad, detach, dtypes."""

import numpy as np
import pytest
from conftest import to_tensor

import minialex
from minialex import Tensor, gradcheck, no_grad


def t(array, grad=True):
    return minialex.tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def test_scalar_chain_rule():
    x = t(3.0)
    y = x * x + 2 * x + 1  # dy/dx = 2x + 2 = 8
    y.backward()
    assert x.grad.item() == 8.0


def test_gradient_accumulates_when_tensor_used_twice():
    x = t([1.0, 2.0])
    y = (x * x).sum() + (x * 3).sum()  # x feeds two branches: 2x + 3
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])
    (x * 1).sum().backward()  # leaf gradients add up across backward calls, as in PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 8.0])


def test_shared_subexpression_is_differentiated_once():
    x = t(2.0)
    a = x * x          # used twice below
    y = a * a          # x^4: dy/dx = 4 x^3 = 32
    y.backward()
    assert x.grad.item() == 32.0


@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (2, 2))])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcasting_gradients(backend_name, rng, a_shape, b_shape, op):
    a = to_tensor(rng.uniform(1, 2, a_shape), True)
    b = to_tensor(rng.uniform(1, 2, b_shape), True)
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b}[op]
    gradcheck(fn, [a, b])


@pytest.mark.parametrize("name, fn, shapes", [
    ("matmul", lambda a, b: a @ b, [(3, 4), (4, 5)]),
    ("batched matmul broadcast", lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    ("matrix-vector", lambda a, b: a @ b, [(3, 4), (4,)]),
    ("vector-matrix", lambda a, b: a @ b, [(4,), (4, 2)]),
    ("exp log", lambda a: (a.exp() + 1).log(), [(3, 2)]),
    ("pow", lambda a: a ** 3 - a ** 0.5, [(3,)]),
    ("neg rsub rdiv", lambda a: 2.0 - (-a) + 1.0 / a, [(2, 2)]),
    ("sum axis", lambda a: a.sum(axis=1), [(3, 4)]),
    ("sum keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    ("mean", lambda a: a.mean(axis=0), [(3, 4)]),
    ("max axis", lambda a: a.max(axis=1), [(3, 4)]),
    ("max all", lambda a: a.max(), [(3, 4)]),
    ("reshape transpose", lambda a: a.reshape(4, 3).transpose() * 1.0, [(3, 4)]),
    ("transpose two axes", lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("T", lambda a: a.T, [(2, 3)]),
    ("getitem", lambda a: a[1:, ::2] * a[0, 0], [(3, 4)]),
    ("getitem repeated", lambda a: a[np.array([0, 0, 2])], [(3, 2)]),
    ("flatten", lambda a: a.flatten(1), [(2, 3, 4)]),
])
def test_operator_gradients(rng, name, fn, shapes):
    inputs = [t(rng.uniform(0.5, 2.0, s)) for s in shapes]
    gradcheck(fn, inputs)


def test_max_ties_share_gradient_like_amax():
    x = t([1.0, 3.0, 3.0])
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5])


def test_chain_of_100000_ops_does_not_recurse():
    x = t(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_graph_freed_after_backward_unless_retained():
    x = t([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="graph was already freed"):
        y.backward()


def test_no_grad_and_detach():
    x = t([1.0, 2.0])
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    z = x.detach() * 2
    assert not z.requires_grad
    assert minialex.is_grad_enabled()


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        t([1.0], grad=False).backward()
    with pytest.raises(RuntimeError, match="implicit only for a one-element tensor"):
        (t([1.0, 2.0]) * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), expected \(2,\)"):
        (t([1.0, 2.0]) * 2).backward(np.ones(3))


def test_tensor_factory_dtypes():
    assert minialex.tensor([1.0, 2.0]).dtype == np.float32          # Python floats: float32 (PyTorch's default)
    assert minialex.tensor(np.zeros(2)).dtype == np.float64          # a float64 array stays float64
    assert minialex.tensor([1, 2]).dtype == np.int64
    assert minialex.tensor([1, 2], dtype=np.float64).dtype == np.float64
    x = minialex.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert (x * 2.5 + 1).dtype == np.float32                          # Python scalars do not promote
    with pytest.raises(ValueError, match="only floating-point tensors can require grad"):
        minialex.tensor([1, 2], requires_grad=True)


def test_properties_and_conversions():
    x = minialex.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float64
    assert isinstance(x.numpy(), np.ndarray) and x.device == "cpu"
    assert x.sum().item() == 15.0
    with pytest.raises(ValueError, match="expected a tensor with one element"):
        x.item()
    y = x.float()
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64  # the cast's gradient is cast back
    assert "requires_grad=True" in repr(x)
    assert isinstance(x * np.ones((2, 3)), Tensor) and isinstance(np.ones((2, 3)) * x, Tensor)
