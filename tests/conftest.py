"""Shared fixtures. ``backend_name`` runs a test once per backend that can run here: numpy always,
numba when installed, cupy when a GPU is present (skipped cleanly otherwise)."""

import numpy as np
import pytest

import minialex
from minialex import backend as B


def _available(name):
    try:
        B.get(name)
    except Exception:
        return False
    return True


BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(not _available(name), reason=f"{name} backend not available"))
            for name in B.NAMES]


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """Run the test on one backend; the active backend is restored afterwards."""
    with B.backend_scope(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def to_tensor(array, requires_grad=False):
    """A tensor on the active backend's device from a NumPy array (dtype kept)."""
    return minialex.tensor(np.asarray(array), requires_grad=requires_grad)


def assert_close(actual, expected, rtol, what=""):
    """max |actual - expected| <= rtol * max |expected| (tolerance relative to the reference's scale)."""
    actual = actual.numpy() if hasattr(actual, "numpy") else B.to_numpy(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1e-30)
    error = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert error <= rtol * scale, f"{what}: max abs error {error:.3g} > {rtol:g} * {scale:.3g}"


GOLDEN_DIR = __import__("pathlib").Path(__file__).parent / "golden"


def golden_cases(op):
    """[(case name, inputs dict, kwargs, arrays dict)] from tests/golden/<op>.npz (written by
    scripts/make_golden.py from PyTorch), as pytest params with readable ids."""
    import json

    with np.load(GOLDEN_DIR / f"{op}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    cases = json.loads(str(arrays["meta"]))
    return [pytest.param(case, arrays, id=f"{case['name']}-{json.dumps(case['kwargs'], separators=(',', ':'))}")
            for case in cases]


def check_golden(fn, case, arrays, rtol=1e-8):
    """Run ``fn(*args, **kwargs)`` on the golden inputs and compare output and gradients with PyTorch's."""
    name = case["name"]
    inputs = [to_tensor(arrays[f"{name}/{a}"], requires_grad=a in case["grads"]) for a in case["args"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
    out = fn(*inputs, **kwargs)
    assert_close(out, arrays[f"{name}/out"], rtol, "output")
    out.backward(to_tensor(arrays[f"{name}/grad_out"]))
    for arg, tensor in zip(case["args"], inputs):
        if arg in case["grads"]:
            assert_close(tensor.grad, arrays[f"{name}/grad_{arg}"], rtol, f"grad wrt {arg}")
