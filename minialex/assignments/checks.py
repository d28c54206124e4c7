"""What a tests file uses: ``@task``, the checks, and the feedback they give.

A check is a function of a tests file decorated with ``@task("name")``; the grader calls it with
the arguments it names:

    m               the submission's module (the student's ``assignment.py``)
    ref             the reference oracle: ``ref(fn, *args)`` returns ``fn(reference_module, *args)``,
                    computed in another process (the reference solution is never imported into the
                    student's process); hidden checks only
    rng             a ``numpy.random.Generator``: hidden checks get a seed from the manifest's
                    ``[hidden]`` table, which students never see; public checks a fixed public one
    task            the task's manifest entry (``task.rtol``, ``task.options["target_accuracy"]``)
    secret          an int: the manifest's hidden seed when the instructor grades, 0 in a student's
                    self-check (for a public check whose data should differ when graded for real)
    submission_dir  the folder being graded (``pathlib.Path``), to read non-Python files

A check passes by returning; it fails by raising ``CheckFailed`` (``check``, ``check_close`` and
``check_gradients`` raise it with an explained message) or any other exception (the student's code
raised: the grader shows the exception and the line of the submission it came from). ``Skip``
says the check cannot run on this machine (no GPU, no compiler): a task whose checks skip is not
counted (its points are out of the total).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["task", "CheckFailed", "Skip", "check", "check_close", "check_gradients", "check_raises",
           "explain_tolerance", "to_numpy", "current_task"]


def task(name: str):
    """Mark a function of a tests file as a check of task ``name`` (a task of the manifest)."""
    def mark(fn):
        fn.__minialex_task__ = name
        return fn
    return mark


class CheckFailed(AssertionError):
    """A check found a wrong result: ``message`` says what, ``detail`` explains the tolerance."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message, self.detail = message, detail


class Skip(Exception):
    """The check cannot run here (a GPU, a compiler or a package is missing)."""


_context = threading.local()


def current_task():
    """The manifest entry of the task being graded (set by the runner)."""
    return getattr(_context, "task", None)


def _default_tolerance():
    t = current_task()
    return (t.rtol, t.atol) if t is not None else (1e-8, 0.0)


def check(condition, message: str, detail: str = ""):
    """Fail with ``message`` unless ``condition``."""
    if not condition:
        raise CheckFailed(message, detail)


def to_numpy(value, what="the value"):
    """A NumPy array from an array, a Tensor (``.numpy()``), a CuPy array or a number."""
    if value is None:
        raise CheckFailed(f"{what}: your code returned None (a missing return statement?)")
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    elif hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        value = value.get()
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(f"{what}: expected an array, got {type(value).__name__} ({err})") from None


def explain_tolerance(rtol, atol, scale, dtype) -> str:
    """How the comparison works, in words, for the feedback."""
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.float64)
    if rtol == 0 and atol == 0:
        return ("tolerance: none: this computation only copies or compares numbers (no arithmetic), so every "
                "entry must equal the reference's exactly")
    digits = {np.dtype(np.float64): "about 16", np.dtype(np.float32): "about 7", np.dtype(np.float16): "about 3"}
    allowed = rtol * scale + atol
    text = (f"tolerance: max |yours - expected| <= {rtol:g} x {scale:.3g} (the expected values' largest magnitude)"
            + (f" + {atol:g}" if atol else "") + f" = {allowed:.3g}")
    if dtype.kind == "f":
        text += (f"; in {dtype} a number keeps {digits.get(dtype, 'a few')} significant digits, so two correct "
                 f"computations differ by rounding only, far below that: an error above the tolerance is a "
                 "mistake in the formula or the indexing, not rounding")
    return text


def _describe_mismatch(actual, expected) -> str:
    """A guess at what went wrong, for common mistakes (a constant factor, a transpose, a sign)."""
    try:
        if actual.shape == expected.shape and expected.size > 1:
            e, a = expected.ravel().astype(np.float64), actual.ravel().astype(np.float64)
            denom = float(e @ e)
            if denom > 0 and np.all(np.isfinite(a)):
                c = float(a @ e) / denom
                if abs(c - 1) > 1e-3 and np.allclose(a, c * e, rtol=1e-6, atol=1e-12 * np.abs(e).max()):
                    if abs(c + 1) < 1e-6:
                        return "yours is exactly the negative of the expected values (a sign error?)"
                    return f"yours is {c:.6g} times the expected values (a missing or extra factor?)"
        if actual.ndim == 2 and actual.shape == expected.shape[::-1] and np.allclose(actual.T, expected):
            return "yours is the transpose of the expected values"
    except Exception:  # noqa: BLE001 - a guess must never break the feedback
        pass
    return ""


def check_close(actual, expected, what: str, rtol: float | None = None, atol: float | None = None,
                dtype=None):
    """Compare the student's ``actual`` with ``expected``: same shape, finite where expected is,
    and ``max |actual - expected| <= rtol * max |expected| + atol`` (the tolerance is relative to
    the expected values' largest magnitude, so tiny entries are not held to an impossible relative
    precision). ``dtype``: also require this dtype (e.g. float32 in, float32 out)."""
    default_rtol, default_atol = _default_tolerance()
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a = to_numpy(actual, what)
    e = np.asarray(to_numpy(expected, "expected"))
    if a.shape != e.shape:
        hint = ""
        if a.size == e.size:
            hint = " (the same number of entries: a reshape or transpose in the wrong order?)"
        raise CheckFailed(f"{what}: your result has shape {a.shape}, expected {e.shape}{hint}")
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise CheckFailed(f"{what}: your result is {a.dtype}, expected {np.dtype(dtype)} (keep the input's dtype)")
    if e.dtype.kind in "biu" and a.dtype.kind in "biu":
        wrong = np.argwhere(a != e)
        if len(wrong):
            at = tuple(int(i) for i in wrong[0])
            raise CheckFailed(f"{what}: {len(wrong)} of {e.size} entries differ; first at {at}: yours {a[at]}, "
                              f"expected {e[at]}", "integers must match exactly")
        return
    if a.dtype.kind not in "biuf":
        raise CheckFailed(f"{what}: your result has dtype {a.dtype}, expected numbers ({e.dtype})")
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    scale = float(np.abs(e64[np.isfinite(e64)]).max()) if np.isfinite(e64).any() else 0.0
    explanation = explain_tolerance(rtol, atol, scale, e.dtype if e.dtype.kind == "f" else np.float64)
    bad_nan = np.isnan(a64) & ~np.isnan(e64)
    if bad_nan.any():
        at = tuple(int(i) for i in np.argwhere(bad_nan)[0])
        raise CheckFailed(f"{what}: your result has {int(bad_nan.sum())} NaN value(s) where numbers are expected "
                          f"(first at {at}; a 0/0, log of 0 or overflow?)", explanation)
    same_special = (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64))
    diff = np.where(same_special, 0.0, np.abs(a64 - e64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    if e.size == 0:
        return
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    err = float(diff[worst])
    allowed = rtol * scale + atol
    if err > allowed:
        at = tuple(int(i) for i in worst)
        rel = err / scale if scale > 0 else float("inf")
        guess = _describe_mismatch(a64, e64)
        n_bad = int((diff > allowed).sum())
        raise CheckFailed(
            f"{what}: max abs error {err:.3g} at index {at} (yours {a64[worst]:.6g}, expected {e64[worst]:.6g}); "
            f"relative to the largest expected magnitude {scale:.3g}: {rel:.3g} > rtol {rtol:g}; "
            f"{n_bad} of {e.size} entries are off" + (f"; {guess}" if guess else ""), explanation)


def check_gradients(fn, inputs, what: str, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
                    samples: int | None = None, seed: int = 0, names=None):
    """Gradient check of ``fn(*inputs)`` (Tensors in, a Tensor out) against central finite
    differences, with ``minialex.gradcheck`` (float64 inputs; ``samples`` random entries per input
    for big inputs; ``names`` of the inputs for the messages). Fails with the first wrong entry, a
    guess at the mistake, and the tolerance explained."""
    from minialex.gradcheck import gradcheck

    names = list(names) if names else [f"input {i}" for i in range(len(inputs))]
    report = gradcheck(fn, list(inputs), eps=eps, atol=atol, rtol=rtol, samples=samples, seed=seed,
                       raise_exception=False)
    if report.passed:
        return report
    detail = (f"tolerance: |analytic - numeric| <= {atol:g} + {rtol:g} x |numeric| for each entry; the numeric "
              f"gradient is a central difference (f(x+eps) - f(x-eps)) / 2eps with eps = {eps:g} in float64, "
              "accurate to about 1e-8 here, so a larger gap means the backward formula is wrong "
              "(entries at a kink, such as ReLU at 0 or a max-pool tie, are skipped)")
    i, index, analytic, numeric = report.failures[0]
    same_input = [(a, n) for j, _, a, n in report.failures if j == i]
    ratios = [a / n for a, n in same_input if abs(n) > 1e-12]
    guess = ""
    if len(ratios) >= 2 and max(ratios) - min(ratios) < 1e-3 * max(1.0, abs(ratios[0])):
        guess = (f"; everywhere it is off, yours is {ratios[0]:.4g} times the finite differences (a missing or "
                 "extra factor?)")
    elif all(abs(a) < 1e-300 for a, _ in same_input):
        guess = "; yours is 0 there (no gradient reaches it?)"
    raise CheckFailed(f"{what}: the gradient wrt {names[i]} is wrong at {tuple(int(k) for k in index)}: yours "
                      f"{analytic:.6g}, finite differences {numeric:.6g}; {len(report.failures)} of {report.checked} "
                      f"entries checked are off{guess}", detail)


def check_raises(exception, fn, *args, what: str = "", **kwargs):
    """``fn(*args, **kwargs)`` must raise ``exception`` (a class or a tuple of classes)."""
    try:
        fn(*args, **kwargs)
    except exception:
        return
    except Exception as err:  # noqa: BLE001
        names = exception.__name__ if isinstance(exception, type) else " or ".join(e.__name__ for e in exception)
        raise CheckFailed(f"{what}: expected {names}, got {type(err).__name__}: {err}") from None
    names = exception.__name__ if isinstance(exception, type) else " or ".join(e.__name__ for e in exception)
    raise CheckFailed(f"{what}: expected {names}, but nothing was raised")
