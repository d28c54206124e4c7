"""Check an analytic gradient against finite differences.

For ``y = fn(*inputs)`` and a random cotangent ``v`` (fixed seed) we differentiate the scalar
``L = sum(v * y)``:

    analytic:  dL/dx from one ``backward(v)``
    numeric:   (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)      for each checked entry j

and require ``|analytic - numeric| <= atol + rtol * |numeric|``. Central differences are accurate to
O(eps^2) in exact arithmetic; in float32 the rounding error of L (about 1e-7 * |L|) divided by eps
swamps that, which is why the check is meant for float64 and warns on float32.

Kinks. At a point where the function is not differentiable (ReLU at 0, a max-pool tie) the central
difference averages two slopes and matches neither. There the two one-sided differences
    forward  (L(x + eps) - L(x)) / eps     and     backward (L(x) - L(x - eps)) / eps
disagree. Such an entry is not counted as a failure only if the analytic value lies between them
(it is then a valid one-sided derivative); it is reported as skipped. An analytic value outside that
range still fails, so a skip never hides a wrong gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from minialex import backend
from minialex.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckReport:
    passed: bool = True
    checked: int = 0                       # entries compared
    skipped_kinks: int = 0                 # entries at a kink (see the module docstring)
    worst: dict = field(default_factory=dict)   # the worst entry: input, index, analytic, numeric, error
    failures: list = field(default_factory=list)

    def __bool__(self):
        return self.passed

    def __str__(self):
        text = (f"gradcheck {'passed' if self.passed else 'FAILED'}: {self.checked} entries checked, "
                f"{self.skipped_kinks} skipped at kinks")
        if self.worst:
            w = self.worst
            text += (f"; worst: input {w['input']} at {w['index']}: analytic {w['analytic']:.6g}, "
                     f"numeric {w['numeric']:.6g}, relative error {w['relative_error']:.3g}")
        return text


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, samples=None, seed=0):
    """Compare the backward of ``fn(*inputs)`` with central differences.

    Args:
        fn: a function of the inputs returning a Tensor. It may also use tensors it closes over (a
            model's parameters): list them in ``inputs`` too and they are checked as well, since
            entries are perturbed in place.
        inputs: a sequence of Tensors (non-Tensors are passed through); those with
            ``requires_grad=True`` are checked.
        samples: check ``samples`` random entries per input instead of all (for big inputs).
        seed: seeds the cotangent and the choice of sampled entries.

    Returns a ``GradcheckReport`` (truthy when passed). On failure raises ``GradcheckError`` naming the
    input, the worst element, analytic vs numeric and the relative error, unless ``raise_exception``
    is False.
    """
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    checked_inputs = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked_inputs:
        raise ValueError("gradcheck: no input requires grad; create them with requires_grad=True")
    for i, t in checked_inputs:
        if t.dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {t.dtype}; finite differences need float64 to be "
                          "meaningful (use .double() on the tensor, or model.double())", stacklevel=2)
    rng = np.random.default_rng(seed)

    # analytic gradients, from one backward with a random cotangent
    for _, t in checked_inputs:
        t.grad = None
    out = fn(*inputs)
    xp = backend.xp_of(out.data)
    cotangent = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    out.backward(cotangent)
    analytic = {i: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape)) for i, t in checked_inputs}

    def loss_value() -> float:
        with no_grad():
            return float((fn(*inputs).data * cotangent).sum())

    report = GradcheckReport()
    base = None
    worst_excess = -np.inf
    for i, t in checked_inputs:
        if not t.data.flags.c_contiguous:
            t.data = backend.xp_of(t.data).ascontiguousarray(t.data)
        flat = t.data.reshape(-1)  # a view: writing into it perturbs the input in place
        indices = (np.arange(t.size) if samples is None or samples >= t.size
                   else rng.choice(t.size, size=samples, replace=False))
        for j in indices:
            j = int(j)
            original = flat[j].item()
            flat[j] = original + eps
            plus = loss_value()
            flat[j] = original - eps
            minus = loss_value()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic[i].reshape(-1)[j])
            tolerance = atol + rtol * abs(numeric)
            report.checked += 1
            if abs(a - numeric) <= tolerance:
                excess = abs(a - numeric) - tolerance
            else:
                if base is None:
                    base = loss_value()
                one_sided = sorted(((plus - base) / eps, (base - minus) / eps))
                kink = abs(one_sided[1] - one_sided[0]) > atol + rtol * max(map(abs, one_sided))
                if kink and one_sided[0] - tolerance <= a <= one_sided[1] + tolerance:
                    report.skipped_kinks += 1
                    continue
                excess = abs(a - numeric) - tolerance
                report.failures.append((i, np.unravel_index(j, t.shape), a, numeric))
            if excess > worst_excess:
                worst_excess = excess
                report.worst = dict(input=i, index=tuple(int(k) for k in np.unravel_index(j, t.shape)),
                                    analytic=a, numeric=numeric,
                                    relative_error=abs(a - numeric) / max(abs(a), abs(numeric), 1e-300))
    report.passed = not report.failures
    if not report.passed and raise_exception:
        raise GradcheckError(f"{report} ({len(report.failures)} entries outside atol={atol}, rtol={rtol})")
    return report
