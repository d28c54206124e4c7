"""Linear layer: PyTorch's semantics, gradcheck, initialisation and bad input."""

import numpy as np
import pytest
from conftest import check_golden, golden_cases, to_tensor

import minialex
from minialex import gradcheck, nn
from minialex.nn import functional as F


@pytest.mark.parametrize("case, arrays", golden_cases("linear"))
def test_matches_pytorch(backend_name, case, arrays):
    check_golden(F.linear, case, arrays)


@pytest.mark.parametrize("x_shape", [(4, 5), (2, 3, 5)])
def test_gradcheck(backend_name, rng, x_shape):
    x = to_tensor(rng.standard_normal(x_shape), True)
    w = to_tensor(rng.standard_normal((3, 5)), True)
    b = to_tensor(rng.standard_normal(3), True)
    gradcheck(F.linear, [x, w, b])
    gradcheck(F.linear, [x, w])


def test_module():
    layer = nn.Linear(9216, 4096)
    assert layer.weight.shape == (4096, 9216) and layer.bias.shape == (4096,)
    assert repr(layer) == "Linear(in_features=9216, out_features=4096, bias=True)"
    bound = 1 / np.sqrt(9216) * (1 + 1e-6)  # float32 rounding
    assert np.abs(layer.weight.numpy()).max() <= bound


def test_wrong_features():
    layer = nn.Linear(9216, 4096)
    with pytest.raises(ValueError, match=r"^Linear\(in_features=9216, out_features=4096, bias=True\): "
                                         r"expected input \(N, 9216\), got \(2, 6400\)$"):
        layer(minialex.tensor(np.zeros((2, 6400), dtype=np.float32)))
