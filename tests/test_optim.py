"""Optimizers and schedules: PyTorch's update rules, the paper's momentum form, state round trips."""

import math

import numpy as np
import pytest

import minialex
from minialex import optim

W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
GRADS = [np.array([[0.1, 0.2], [-0.3, 0.4]]) * (k + 1) for k in range(4)]


def run(make, grads=GRADS, lrs=None):
    w = minialex.tensor(W0.copy(), requires_grad=True)
    opt = make([w])
    for k, g in enumerate(grads):
        if lrs is not None:
            opt.lr = lrs[k]
        w.grad = minialex.tensor(g)
        opt.step()
    return w.numpy(), opt


def test_sgd_momentum_by_hand():
    lr, mu, wd = 0.1, 0.9, 0.01
    w, v = W0.copy(), None
    for g in GRADS:
        g = g + wd * w
        v = g.copy() if v is None else mu * v + g
        w = w - lr * v
    np.testing.assert_allclose(run(lambda p: optim.SGD(p, lr, momentum=mu, weight_decay=wd))[0], w, rtol=1e-14)


def test_adam_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w, m, s = W0.copy(), 0.0, 0.0
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps)
    np.testing.assert_allclose(run(lambda p: optim.Adam(p, lr))[0], w, rtol=1e-14)


def test_paper_sgd_equals_pytorch_sgd_at_constant_lr_and_differs_after_a_change():
    paper = lambda p: optim.PaperSGD(p, 0.1, momentum=0.9, weight_decay=0.0005)  # noqa: E731
    torch_form = lambda p: optim.SGD(p, 0.1, momentum=0.9, weight_decay=0.0005)  # noqa: E731
    np.testing.assert_allclose(run(paper)[0], run(torch_form)[0], rtol=1e-13)
    lrs = [0.1, 0.1, 0.01, 0.01]  # divide by 10 after two steps
    assert not np.allclose(run(paper, lrs=lrs)[0], run(torch_form, lrs=lrs)[0])


def test_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    for make, make_torch in [
        (lambda p: optim.SGD(p, 0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
         lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
        (lambda p: optim.Adam(p, 0.01, weight_decay=0.01), lambda p: torch.optim.Adam(p, 0.01, weight_decay=0.01)),
    ]:
        tw = torch.tensor(W0.copy(), requires_grad=True)
        topt = make_torch([tw])
        for g in GRADS:
            tw.grad = torch.tensor(g)
            topt.step()
        np.testing.assert_allclose(run(make)[0], tw.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, 0.1, momentum=0.9), lambda p: optim.Adam(p, 0.01),
                                  lambda p: optim.PaperSGD(p, 0.1)])
def test_state_dict_round_trip_resumes_exactly(make):
    whole, _ = run(make)
    half_w, opt = run(make, grads=GRADS[:2])
    state = opt.state_dict()
    w = minialex.tensor(half_w.copy(), requires_grad=True)
    resumed = make([w])
    resumed.load_state_dict(state)
    for g in GRADS[2:]:
        w.grad = minialex.tensor(g)
        resumed.step()
    np.testing.assert_array_equal(w.numpy(), whole)


def test_schedules():
    w = [minialex.tensor(np.zeros(1), requires_grad=True)]
    opt = optim.SGD(w, 1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(5):
        step.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [1.0, 0.1, 0.1, 0.01, 0.01])
    opt.lr = 1.0
    cosine = optim.CosineAnnealingLR(opt, T_max=4)
    cosine.step(), cosine.step()
    assert opt.lr == pytest.approx(0.5)
    opt.lr = 1.0
    plateau = optim.ReduceLROnPlateau(opt, factor=0.1, patience=1)
    for error in [0.5, 0.4, 0.4, 0.4, 0.3]:  # two epochs without improvement -> divide by 10
        plateau.step(error)
    assert opt.lr == pytest.approx(0.1)
    assert math.isinf(optim.ReduceLROnPlateau(opt).best)


def test_bad_arguments():
    w = [minialex.tensor(np.zeros(1), requires_grad=True)]
    with pytest.raises(ValueError, match="lr must be > 0"):
        optim.SGD(w, 0.0)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], 0.1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.SGD(w, 0.1, nesterov=True)
