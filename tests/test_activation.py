"""ReLU and dropout: PyTorch's semantics, gradcheck, and the counter-based dropout mask."""

import numpy as np
import pytest
from conftest import check_golden, golden_cases, to_tensor

import minialex
from minialex import gradcheck, nn
from minialex.backend import numpy_ref
from minialex.nn import functional as F


@pytest.mark.parametrize("case, arrays", golden_cases("relu"))
def test_relu_matches_pytorch(backend_name, case, arrays):
    check_golden(F.relu, case, arrays)


@pytest.mark.parametrize("case, arrays", golden_cases("dropout_eval"))
def test_dropout_identity_cases_match_pytorch(backend_name, case, arrays):
    check_golden(F.dropout, case, arrays)


def test_relu_gradcheck_and_kink(backend_name, rng):
    x = to_tensor(rng.standard_normal((3, 4, 5)), True)
    gradcheck(F.relu, [x])
    zero = to_tensor(np.zeros((2, 2)), True)  # at the kink the gradient is 0, as in PyTorch
    F.relu(zero).sum().backward()
    np.testing.assert_array_equal(zero.grad.numpy(), 0)
    assert gradcheck(F.relu, [to_tensor(np.zeros((2, 2)), True)]).skipped_kinks == 4


def test_philox_known_answer():
    # Random123's philox4x32_10 known-answer vector: counter 0, key 0 -> first word 0x6627e8d5
    assert int(numpy_ref.philox_uint32(np.array([0], dtype=np.uint64), 0)[0]) == 0x6627E8D5


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_one_minus_p_and_scales(backend_name, p):
    x = to_tensor(np.ones((200, 500)))
    y = F.dropout(x, p, seed=7).numpy()
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / y.size)  # within 4 standard errors
    np.testing.assert_allclose(y[kept], 1 / (1 - p))


def test_dropout_same_seed_same_mask_on_every_backend(backend_name):
    x = to_tensor(np.arange(1, 1001, dtype=np.float64))
    with minialex.backend_scope("numpy"):
        reference = F.dropout(minialex.tensor(np.arange(1, 1001, dtype=np.float64)), 0.5, seed=2**40 + 3).numpy()
    np.testing.assert_array_equal(F.dropout(x, 0.5, seed=2**40 + 3).numpy(), reference)


def test_dropout_gradient_uses_the_same_mask(backend_name, rng):
    x = to_tensor(rng.standard_normal((4, 6)), True)
    gradcheck(lambda x: F.dropout(x, 0.4, seed=11), [x])
    y = F.dropout(x, 0.4, seed=11)
    x.grad = None
    y.backward(to_tensor(np.ones((4, 6))))
    np.testing.assert_array_equal(x.grad.numpy(), (y.numpy() != 0) / 0.6)


def test_dropout_edge_cases():
    x = minialex.tensor(np.ones((10, 10)))
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)  # PyTorch: p=1 gives zeros
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


def test_dropout_module_follows_train_and_eval():
    minialex.manual_seed(0)
    layer = nn.Dropout(0.5)
    x = minialex.tensor(np.ones((50, 50)))
    first, second = layer(x).numpy(), layer(x).numpy()
    assert not np.array_equal(first, second)  # a fresh mask per call
    minialex.manual_seed(0)
    np.testing.assert_array_equal(layer(x).numpy(), first)  # reproducible from the global seed
    layer.eval()
    assert layer(x) is x
