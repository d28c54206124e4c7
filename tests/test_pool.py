"""Max, average and adaptive average pooling: PyTorch's outputs and gradients, gradcheck with
overlapping windows, tie handling, and bad input."""

import numpy as np
import pytest
from conftest import check_golden, golden_cases, to_tensor
from hypothesis import given, settings
from hypothesis import strategies as st

import minialex
from minialex import gradcheck, nn
from minialex.nn import functional as F
from minialex.ops.pool import adaptive_bins


@pytest.mark.parametrize("case, arrays", golden_cases("max_pool2d"))
def test_max_pool_matches_pytorch(backend_name, case, arrays):
    check_golden(F.max_pool2d, case, arrays)


@pytest.mark.parametrize("case, arrays", golden_cases("avg_pool2d"))
def test_avg_pool_matches_pytorch(backend_name, case, arrays):
    check_golden(F.avg_pool2d, case, arrays)


@pytest.mark.parametrize("case, arrays", golden_cases("adaptive_avg_pool2d"))
def test_adaptive_avg_pool_matches_pytorch(backend_name, case, arrays):
    check_golden(F.adaptive_avg_pool2d, case, arrays)


@st.composite
def pool_problems(draw):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))  # stride < kernel: overlapping windows
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    H, W = draw(st.integers(KH, 9)), draw(st.integers(KW, 9))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kernel_size=(KH, KW),
                stride=(SH, SW), padding=(PH, PW), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


@settings(max_examples=25, deadline=None)
@given(pool_problems())
def test_gradcheck_generated(p):
    # distinct values (a permutation) so that no window has a tie: max is differentiable everywhere
    rng = np.random.default_rng(p["seed"])
    x = to_tensor(rng.permutation(np.prod(p["shape"])).reshape(p["shape"]) / 7.0, True)
    common = dict(kernel_size=p["kernel_size"], stride=p["stride"], padding=p["padding"], ceil_mode=p["ceil_mode"])
    gradcheck(lambda x: F.max_pool2d(x, **common), [x])
    gradcheck(lambda x: F.avg_pool2d(x, count_include_pad=p["count_include_pad"], **common), [x])


def test_gradcheck_alexnet_pooling_on_each_backend(backend_name, rng):
    x = to_tensor(rng.permutation(2 * 3 * 13 * 13).reshape(2, 3, 13, 13) / 10.0, True)
    gradcheck(lambda x: F.max_pool2d(x, 3, 2), [x])           # overlapping 3x3, stride 2
    gradcheck(lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False), [x])
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, (6, 5)), [x])


def test_overlapping_windows_sum_gradients():
    # 1x5 row, windows [0:3] and [2:5]: the centre element 9 wins both and receives both gradients
    x = minialex.tensor(np.array([[[[1.0, 2.0, 9.0, 3.0, 4.0]]]]), requires_grad=True)
    y = F.max_pool2d(x, (1, 3), (1, 2))
    np.testing.assert_array_equal(y.numpy(), [[[[9.0, 9.0]]]])
    y.backward(minialex.tensor(np.array([[[[1.0, 10.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 0, 11.0, 0, 0]]]])


def test_tie_goes_to_first_maximum_in_row_major_order(backend_name):
    x = to_tensor(np.array([[[[5.0, 1.0], [5.0, 5.0]]]]), True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_gradcheck_skips_ties_without_failing():
    x = minialex.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)  # every window is a tie
    report = gradcheck(lambda x: F.max_pool2d(x, 2), [x])
    assert report.passed and report.skipped_kinks > 0


def test_adaptive_bins_are_pytorchs():
    assert adaptive_bins(13, 6) == [(0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (10, 13)]  # overlapping
    assert adaptive_bins(12, 6) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12)]  # exact
    assert adaptive_bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]                       # repeated


def test_adaptive_identity_when_sizes_match(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(minialex.tensor(x), 6).numpy(), x)


def test_modules_and_reprs():
    assert repr(nn.MaxPool2d(3, 2)) == "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert nn.MaxPool2d(2).stride == 2
    x = minialex.tensor(np.zeros((1, 1, 13, 13), dtype=np.float32))
    assert nn.MaxPool2d(3, 2)(x).shape == (1, 1, 6, 6)
    assert nn.AvgPool2d(3, 2, ceil_mode=True)(x).shape == (1, 1, 6, 6)
    assert nn.AdaptiveAvgPool2d((6, 6))(x).shape == (1, 1, 6, 6)


@pytest.mark.parametrize("call, message", [
    (lambda x: F.max_pool2d(x, 3, 2, padding=2), r"padding \(2, 2\) must be at most half the kernel size"),
    (lambda x: F.max_pool2d(x, 0), "kernel_size must be an int >= 1"),
    (lambda x: F.max_pool2d(x[0], 2), r"expected input \(N, C, H, W\), got \(3, 5, 5\)"),
    (lambda x: F.max_pool2d(x, 7), r"input H=5 \(padded 5\) is smaller than the kernel's extent 7"),
    (lambda x: F.avg_pool2d(x, 3, stride=(1, 0)), "stride must be an int >= 1"),
    (lambda x: F.adaptive_avg_pool2d(x, 0), "output_size must be an int >= 1"),
    (lambda x: nn.MaxPool2d(3, 2)(x[:, :, :2]), r"^MaxPool2d\(kernel_size=3, stride=2.*\): input H=2"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(minialex.tensor(np.zeros((2, 3, 5, 5))))
