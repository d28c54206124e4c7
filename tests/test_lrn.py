"""Local response normalization: PyTorch's semantics, gradcheck, and the paper / Caffe / TensorFlow
conventions converted exactly."""

import numpy as np
import pytest
from conftest import assert_close, check_golden, golden_cases, to_tensor

import minialex
from minialex import gradcheck, nn
from minialex.nn import functional as F


@pytest.mark.parametrize("case, arrays", golden_cases("local_response_norm"))
def test_matches_pytorch(backend_name, case, arrays):
    check_golden(F.local_response_norm, case, arrays)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
def test_gradcheck(backend_name, rng, size):
    x = to_tensor(rng.standard_normal((2, 7, 3, 4)), True)
    gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.8, beta=0.75, k=1.5), [x])


def test_gradcheck_3d_input(rng):
    x = minialex.tensor(rng.standard_normal((2, 5, 6)), requires_grad=True)
    gradcheck(lambda x: F.local_response_norm(x, 3, alpha=1.0, beta=0.5, k=2.0), [x])


def _paper_lrn(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """The paper's formula written out directly (loops, for clarity): alpha not divided by n."""
    C = a.shape[1]
    b = np.empty_like(a)
    for c in range(C):
        window = a[:, max(0, c - n // 2):min(C, c + n // 2 + 1)]
        b[:, c] = a[:, c] / (k + alpha * (window**2).sum(axis=1)) ** beta
    return b


def _tensorflow_lrn(a, depth_radius, bias, alpha, beta):
    """tf.nn.lrn's formula: sqr_sum over [c - r, c + r], alpha not divided."""
    C = a.shape[1]
    b = np.empty_like(a)
    for c in range(C):
        window = a[:, max(0, c - depth_radius):min(C, c + depth_radius + 1)]
        b[:, c] = a[:, c] / (bias + alpha * (window**2).sum(axis=1)) ** beta
    return b


def test_from_paper_is_the_papers_formula(rng):
    a = rng.standard_normal((2, 11, 4, 4)) * 30  # large activations, so normalization matters
    layer = nn.LocalResponseNorm.from_paper()
    assert (layer.size, layer.alpha, layer.k) == (5, 5e-4, 2.0)
    assert_close(layer(minialex.tensor(a)), _paper_lrn(a), 1e-13)
    assert not np.allclose(_paper_lrn(a), a / 2.0**0.75)  # the sum really contributes


def test_from_tensorflow_is_tf_lrn(rng):
    a = rng.standard_normal((2, 16, 3, 3)) * 10
    layer = nn.LocalResponseNorm.from_tensorflow(depth_radius=5, bias=1.0, alpha=0.001 / 9, beta=0.75)
    assert layer.size == 11
    assert_close(layer(minialex.tensor(a)), _tensorflow_lrn(a, 5, 1.0, 0.001 / 9, 0.75), 1e-13)


def test_from_caffe_is_pytorchs_convention(rng):
    a = rng.standard_normal((1, 8, 2, 2)) * 10
    caffe = nn.LocalResponseNorm.from_caffe(local_size=5, alpha=1e-4, beta=0.75, k=1.0)
    assert_close(caffe(minialex.tensor(a)), F.local_response_norm(minialex.tensor(a), 5, 1e-4, 0.75, 1.0).numpy(), 0)
    # bvlc_alexnet's LRN is not the paper's: alpha is divided by n there and k differs
    assert not np.allclose(caffe(minialex.tensor(a)).numpy(), _paper_lrn(a))


def test_repr_and_bad_input():
    assert repr(nn.LocalResponseNorm.from_paper()) == "LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)"
    with pytest.raises(ValueError, match="size must be a positive int"):
        nn.LocalResponseNorm(0)
    with pytest.raises(ValueError, match=r"expected input \(N, C, \.\.\.\) with at least 3 dimensions, got \(4, 5\)"):
        F.local_response_norm(minialex.tensor(np.zeros((4, 5))), 3)
