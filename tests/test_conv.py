"""Convolution: PyTorch's outputs and gradients, gradcheck over generated shapes, the composed twin,
chunking, hand-computed cases and bad input."""

import numpy as np
import pytest
from conftest import assert_close, check_golden, golden_cases, to_tensor
from hypothesis import given, settings
from hypothesis import strategies as st

import minialex
from minialex import gradcheck, nn
from minialex.nn import functional as F
from minialex.ops import conv as conv_ops


@pytest.mark.parametrize("case, arrays", golden_cases("conv2d"))
def test_matches_pytorch(backend_name, case, arrays):
    check_golden(F.conv2d, case, arrays)


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    C = groups * draw(st.integers(1, 2))
    OC = groups * draw(st.integers(1, 2))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), 7))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), 7))
    N = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    return dict(N=N, C=C, H=H, W=W, OC=OC, kernel=(KH, KW), stride=(SH, SW), padding=(PH, PW),
                dilation=(DH, DW), groups=groups, bias=bias, seed=draw(st.integers(0, 2**31)))


@settings(max_examples=25, deadline=None)
@given(conv_problems())
def test_gradcheck_generated_shapes(p):
    rng = np.random.default_rng(p["seed"])
    x = to_tensor(rng.standard_normal((p["N"], p["C"], p["H"], p["W"])), True)
    w = to_tensor(rng.standard_normal((p["OC"], p["C"] // p["groups"]) + p["kernel"]), True)
    b = to_tensor(rng.standard_normal(p["OC"]), True) if p["bias"] else None
    inputs = [x, w] + ([b] if b is not None else [])

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                        groups=p["groups"])

    gradcheck(fn, inputs)


def test_gradcheck_on_each_backend(backend_name, rng):
    x = to_tensor(rng.standard_normal((2, 4, 9, 8)), True)
    w = to_tensor(rng.standard_normal((6, 2, 3, 3)), True)
    b = to_tensor(rng.standard_normal(6), True)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), [x, w, b])


def test_composed_twin_agrees_with_fused(backend_name, rng):
    x = rng.standard_normal((2, 4, 11, 10))
    w = rng.standard_normal((6, 2, 3, 5))
    b = rng.standard_normal(6)
    results = []
    for conv in (F.conv2d, F.conv2d_composed):
        tx, tw, tb = to_tensor(x, True), to_tensor(w, True), to_tensor(b, True)
        y = conv(tx, tw, tb, stride=2, padding=(1, 2), dilation=(1, 2), groups=2)
        y.backward(to_tensor(np.cos(np.arange(y.size)).reshape(y.shape)))
        results.append([y.numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()])
    for fused, composed in zip(*results):
        assert_close(composed, fused, 1e-12)


def test_chunked_batch_equals_one_chunk(backend_name, rng):
    x = rng.standard_normal((5, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    grad_out = rng.standard_normal((5, 4, 8, 8))

    def run():
        tx, tw, tb = to_tensor(x, True), to_tensor(w, True), to_tensor(b, True)
        y = F.conv2d(tx, tw, tb, padding=1)
        y.backward(to_tensor(grad_out))
        return [y.numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()]

    whole = run()
    budget = conv_ops.get_im2col_budget()
    one_image = 3 * 3 * 3 * 8 * 8 * 8  # C*KH*KW*OH*OW float64 bytes
    try:
        conv_ops.set_im2col_budget(2 * one_image)  # chunks of 2, 2, 1 images, columns recomputed
        chunked = run()
    finally:
        conv_ops.set_im2col_budget(budget)
    for a, b_ in zip(whole, chunked):
        assert_close(a, b_, 1e-13)


# Columns per image, float64: 23,328 bytes for the first layer below, 30,000 for the second. A budget
# of 60,000 bytes chunks both; 117,000 keeps the first layer's columns whole and chunks the second,
# whose smaller chunks reuse (overwrite) the scratch buffer that the first layer grew.
@pytest.mark.parametrize("budget_bytes", [60_000, 117_000])
def test_layers_sharing_scratch_buffers_equal_one_chunk(backend_name, rng, budget_bytes):
    # Two convs in a row, as in a network: the second layer's forward overwrites the scratch
    # buffers (columns, GEMM output) between the first layer's forward and backward, and grouped
    # and plain convs share them. Every output and gradient must equal the one-chunk run.
    x = rng.standard_normal((5, 4, 9, 9))
    w1, b1 = rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)   # groups=2
    w2, b2 = rng.standard_normal((3, 6, 5, 5)), rng.standard_normal(3)

    def run():
        tx = to_tensor(x, True)
        params = [to_tensor(a, True) for a in (w1, b1, w2, b2)]
        h = F.conv2d(tx, params[0], params[1], padding=1, groups=2)
        y = F.conv2d(h * h, params[2], params[3], stride=2, padding=2)
        (y * y).sum().backward()
        return [y.numpy(), tx.grad.numpy()] + [p.grad.numpy() for p in params]

    whole = run()
    budget = conv_ops.get_im2col_budget()
    try:
        conv_ops.set_im2col_budget(budget_bytes)
        chunked = run()
    finally:
        conv_ops.set_im2col_budget(budget)
    for a, b_ in zip(whole, chunked):
        assert_close(a, b_, 1e-12)


def test_hand_computed():
    # 1 image, 1 channel 3x3, a 2x2 kernel of ones: each output is the sum of a 2x2 block
    x = minialex.tensor(np.arange(9.0).reshape(1, 1, 3, 3), requires_grad=True)
    w = minialex.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    y = F.conv2d(x, w, minialex.tensor(np.array([10.0])))
    np.testing.assert_array_equal(y.numpy()[0, 0], [[18.0, 22.0], [30.0, 34.0]])
    y.sum().backward()
    # each input pixel is counted once per output window that covers it
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(w.grad.numpy()[0, 0], [[8, 12], [20, 24]])


def test_module_state_and_defaults():
    conv = nn.Conv2d(3, 96, kernel_size=11, stride=4, groups=1)
    assert conv.weight.shape == (96, 3, 11, 11) and conv.bias.shape == (96,)
    bound = 1 / np.sqrt(3 * 11 * 11) * (1 + 1e-6)  # (float32 rounding) PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.weight.numpy()).max() > 0.9 * bound
    assert repr(conv) == "Conv2d(3, 96, kernel_size=11, stride=4)"
    grouped = nn.Conv2d(96, 256, 5, padding=2, groups=2, bias=False)
    assert grouped.weight.shape == (256, 48, 5, 5) and grouped.bias is None
    assert [name for name, _ in grouped.named_parameters()] == ["weight"]


def test_wrong_channel_count_names_the_layer():
    conv = nn.Conv2d(3, 96, kernel_size=11, stride=4)
    x = minialex.tensor(np.zeros((8, 1, 224, 224), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^Conv2d\(3, 96, kernel_size=11, stride=4\): expected input "
                                         r"\(N, 3, H, W\), got \(8, 1, 224, 224\)$"):
        conv(x)


@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 1, 3, 224, 224)])
def test_wrong_rank(shape):
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        conv(minialex.tensor(np.zeros(shape, dtype=np.float32)))


def test_input_smaller_than_kernel():
    conv = nn.Conv2d(1, 2, kernel_size=11, stride=4)
    with pytest.raises(ValueError, match=r"input H=5 \(padded 5\) is smaller than the kernel's extent 11"):
        conv(minialex.tensor(np.zeros((1, 1, 5, 20), dtype=np.float32)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride=0), "stride must be an int >= 1"),
    (dict(padding=-1), "padding must be an int >= 0"),
    (dict(padding=(1, 2, 3)), "padding must be an int or a pair"),
    (dict(groups=4), "groups=4 must divide in_channels=6 and out_channels=6"),
    (dict(groups=0), "groups=0 must divide"),
    (dict(padding="full"), "padding must be an int, a pair, 'valid' or 'same'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layer = nn.Conv2d(6, 6, 3, **kwargs)
        layer(minialex.tensor(np.zeros((1, 6, 8, 8), dtype=np.float32)))


def test_same_padding_needs_stride_one():
    x = minialex.tensor(np.zeros((1, 2, 8, 8)))
    w = minialex.tensor(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        F.conv2d(x, w, stride=2, padding="same")


def test_float32_stays_float32(backend_name, rng):
    x = to_tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), True)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    y = conv(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and conv.weight.grad.dtype == np.float32
