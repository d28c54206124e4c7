"""The gradient checker itself: it must fail on a wrong backward, pass on a right one, skip only
true kinks, and say clearly what went wrong."""

import numpy as np
import pytest

import minialex
from minialex import Function, GradcheckError, gradcheck
from minialex.nn import functional as F


class Cube(Function):
    """x^3 with a selectable bug in backward."""

    def forward(self, x, bug):
        self.save(x=x)
        self.bug = bug
        return x ** 3

    def backward(self, gy):
        x = self.saved["x"]
        if self.bug == "factor":
            return gy * 3.03 * x ** 2, None   # 1% off
        if self.bug == "one-element":
            g = gy * 3 * x ** 2
            g.reshape(-1)[4] += 1e-3          # a single wrong element
            return g, None
        return gy * 3 * x ** 2, None


def x_input():
    return minialex.tensor(np.linspace(-1.5, 1.7, 12).reshape(3, 4), requires_grad=True)


def test_passes_a_right_backward():
    report = gradcheck(lambda x: Cube.apply(x, bug=None), [x_input()])
    assert report.passed and report.checked == 12 and report.skipped_kinks == 0


@pytest.mark.parametrize("bug", ["factor", "one-element"])
def test_fails_a_wrong_backward(bug):
    with pytest.raises(GradcheckError, match=r"FAILED.*worst: input 0 at \(\d, \d\): analytic .* numeric .* relative error"):
        gradcheck(lambda x: Cube.apply(x, bug=bug), [x_input()])


def test_names_the_wrong_element():
    report = gradcheck(lambda x: Cube.apply(x, bug="one-element"), [x_input()], raise_exception=False)
    assert not report.passed and report.worst["index"] == (1, 0) and len(report.failures) == 1


def test_a_kink_never_hides_a_wrong_gradient():
    class BadRelu(Function):
        def forward(self, x):
            self.save(x=x)
            return np.maximum(x, 0)

        def backward(self, gy):
            return gy * 5.0 * (self.saved["x"] >= 0)  # wrong slope, also at the kink

    x = minialex.tensor(np.array([0.0, 1.0, -1.0]), requires_grad=True)
    report = gradcheck(lambda x: BadRelu.apply(x), [x], raise_exception=False)
    assert not report.passed and len(report.failures) == 2  # at 0 (outside [0, 1]) and at 1


def test_samples_checks_only_k_entries():
    x = minialex.tensor(np.random.default_rng(0).standard_normal((50, 50)), requires_grad=True)
    report = gradcheck(lambda x: F.relu(x) * x, [x], samples=7)
    assert report.checked == 7


def test_warns_on_float32():
    x = minialex.tensor(np.ones(3, dtype=np.float32) * 0.5, requires_grad=True)
    with pytest.warns(UserWarning, match="finite differences need float64"):
        gradcheck(lambda x: x * x, [x], atol=1e-2, rtol=1e-2)


def test_checks_closed_over_parameters():
    w = minialex.tensor(np.array([2.0, -1.0]), requires_grad=True)
    x = minialex.tensor(np.array([0.5, 3.0]), requires_grad=True)
    report = gradcheck(lambda x, w: (x * w).exp(), [x, w])
    assert report.checked == 4


def test_needs_an_input_with_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda x: x * 2, [minialex.tensor(np.ones(2))])
