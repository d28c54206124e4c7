"""Softmax cross-entropy: PyTorch's semantics, stability, gradcheck and bad targets."""

import numpy as np
import pytest
from conftest import check_golden, golden_cases, to_tensor

import minialex
from minialex import gradcheck, nn
from minialex.nn import functional as F


@pytest.mark.parametrize("case, arrays", golden_cases("cross_entropy"))
def test_matches_pytorch(backend_name, case, arrays):
    check_golden(lambda input, target, **kw: F.cross_entropy(input, target, **kw), case, arrays)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(backend_name, rng, reduction):
    logits = to_tensor(rng.standard_normal((6, 5)) * 3, True)
    target = np.array([0, 4, 2, 2, 1, 3])
    gradcheck(lambda z: F.cross_entropy(z, target, reduction=reduction), [logits])


def test_hand_computed_and_stable():
    # uniform logits over K classes: loss log K whatever the target
    assert F.cross_entropy(minialex.tensor(np.zeros((3, 10))), np.array([0, 5, 9])).item() == pytest.approx(np.log(10))
    # huge logits: no overflow, loss exactly the margin
    z = minialex.tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([1, 1]))
    assert loss.item() == pytest.approx(500.0)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0.5, -0.5], [0, 0]], atol=1e-12)


def test_module_and_targets_as_tensor():
    loss = nn.CrossEntropyLoss()(minialex.tensor(np.zeros((2, 3))), minialex.tensor(np.array([1, 2])))
    assert loss.item() == pytest.approx(np.log(3))


@pytest.mark.parametrize("target, message", [
    (np.array([0, 3]), r"targets must be class indices in \[0, 3\), got values in \[0, 3\]"),
    (np.array([0.0, 1.0]), r"expected integer targets of shape \(2,\), got float64 \(2,\)"),
    (np.array([0, 1, 2]), r"expected integer targets of shape \(2,\), got int64 \(3,\)"),
])
def test_bad_targets(target, message):
    with pytest.raises(ValueError, match=message):
        F.cross_entropy(minialex.tensor(np.zeros((2, 3))), target)
