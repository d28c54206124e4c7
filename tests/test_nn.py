"""Modules: registration, PyTorch's state_dict keys, loading, modes, dtype conversion, repr."""

import numpy as np
import pytest

import minialex
from minialex import nn


def small_net():
    minialex.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(3), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 5))


def test_state_dict_keys_are_pytorchs():
    net = small_net()
    assert list(net.state_dict()) == ["0.weight", "0.bias", "6.weight", "6.bias"]
    outer = nn.Sequential()
    outer.features = net
    assert list(outer.state_dict())[0] == "features.0.weight"
    assert net.num_parameters() == 4 * 3 * 9 + 4 + 5 * 64 + 5


def test_load_state_dict_round_trip_and_strict():
    a, b = small_net(), small_net()
    minialex.manual_seed(1)
    b = nn.Sequential(*[m for m in small_net()])
    state = a.state_dict()
    b.load_state_dict(state)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    with pytest.raises(KeyError, match=r"missing keys \['6.bias'\], unexpected keys \['6.b'\]"):
        b.load_state_dict({**{k: v for k, v in state.items() if k != "6.bias"}, "6.b": state["6.bias"]})
    with pytest.raises(ValueError, match=r"0.weight has shape \(4, 3, 2, 2\) in the state but \(4, 3, 3, 3\)"):
        b.load_state_dict({**state, "0.weight": np.zeros((4, 3, 2, 2))})
    missing, unexpected = b.load_state_dict({"0.bias": state["0.bias"]}, strict=False)
    assert missing == ["0.weight", "6.weight", "6.bias"] and unexpected == []


def test_train_eval_and_dropout():
    net = small_net()
    x = minialex.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    net.eval()
    assert all(not m.training for m in net.modules())
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())
    net.train()
    assert not np.array_equal(net(x).numpy(), net(x).numpy())


def test_double_and_float():
    net = small_net().double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.float().parameters()[0].dtype == np.float32


def test_zero_grad_and_backward_through_a_net():
    net = small_net()
    x = minialex.tensor(np.ones((2, 3, 8, 8), dtype=np.float32))
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_reads_like_pytorch():
    text = repr(small_net())
    assert text.startswith("Sequential(\n  (0): Conv2d(3, 4, kernel_size=3, padding=1)\n  (1): ReLU()")
    assert "(6): Linear(in_features=64, out_features=5, bias=True)" in text


def test_sequential_indexing():
    net = small_net()
    assert isinstance(net[0], nn.Conv2d) and len(net) == 7 and isinstance(net[:2], nn.Sequential)
    with pytest.raises(TypeError, match="argument 0 is a int, expected a Module"):
        nn.Sequential(3)
