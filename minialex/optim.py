"""Optimizers and learning-rate schedules, with PyTorch's names and update rules.

For a parameter w with gradient g (after ``backward()``):

SGD, PyTorch's form (``SGD``):
    g <- g + weight_decay * w
    v <- momentum * v + g                         (v = g on the first step)
    w <- w - lr * (g + momentum * v  if nesterov  else  v)

SGD, the paper's form (``PaperSGD``, Krizhevsky et al. 2012, section 5):
    v <- momentum * v - weight_decay * lr * w - lr * g
    w <- w + v
The two are the same while lr is constant (the paper's v is -lr times PyTorch's). When lr changes,
PyTorch's velocity keeps the old steps' directions and is multiplied by the *new* lr at once, while
the paper's velocity already holds the old lr: after dividing lr by 10 the paper keeps moving at the
old speed for a while, PyTorch slows down immediately.

Adam (Kingma and Ba 2015), PyTorch's ``Adam`` (weight decay added to g, not decoupled):
    m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)

Every optimizer has ``step()``, ``zero_grad()``, ``state_dict()`` and ``load_state_dict()`` (plain
arrays and numbers, so checkpoints are ``.npz`` files without pickle).
"""

from __future__ import annotations

import math

import numpy as np

from minialex import backend
from minialex.tensor import Tensor


class Optimizer:
    """Base class: holds the parameters, the hyper-parameters (``self.lr`` may be changed by a
    schedule) and one state dict of arrays per parameter."""

    def __init__(self, params, **hyper):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list; pass model.parameters()")
        for p in self.params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
        if hyper["lr"] <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {hyper['lr']}")
        self.lr = hyper.pop("lr")
        self.hyper = hyper
        self.steps = 0
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad.data, state)

    def update(self, p, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Flat dict of NumPy arrays and numbers: ``lr``, ``steps`` and ``state.<i>.<name>``."""
        out = {"lr": self.lr, "steps": self.steps}
        for i, state in enumerate(self.state):
            for name, value in state.items():
                out[f"state.{i}.{name}"] = backend.to_numpy(value)
        return out

    def load_state_dict(self, state: dict):
        self.lr = float(state["lr"])
        self.steps = int(state["steps"])
        self.state = [{} for _ in self.params]
        for key, value in state.items():
            if key.startswith("state."):
                _, i, name = key.split(".", 2)
                i = int(i)
                if i >= len(self.params):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {i}, but the "
                                     f"optimizer has {len(self.params)}; was it saved for another model?")
                self.state[i][name] = backend.to_device(np.asarray(value), self.params[i].device)


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def update(self, p, g, state):
        """The formula above, one fused loop per parameter: the backend's ``sgd_update`` kernel."""
        momentum = self.hyper["momentum"]
        v = None
        if momentum:
            v = state.get("momentum_buffer")
            if v is None:  # 0, so that the first step's v = momentum * 0 + g = g
                v = state["momentum_buffer"] = backend.xp_of(p.data).zeros_like(p.data)
        backend.kernels_for(p.data).sgd_update(p.data, g, v, self.lr, momentum, self.hyper["weight_decay"],
                                               self.hyper["nesterov"])


class PaperSGD(Optimizer):
    """The paper's momentum SGD: the velocity holds the learning rate (see the module docstring)."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0005):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def update(self, p, g, state):
        v = state.get("velocity")
        if v is None:
            v = state["velocity"] = backend.xp_of(p.data).zeros_like(p.data)
        v *= self.hyper["momentum"]
        v -= (self.hyper["weight_decay"] * self.lr) * p.data + self.lr * g
        p.data += v


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def update(self, p, g, state):
        (b1, b2), eps, weight_decay = self.hyper["betas"], self.hyper["eps"], self.hyper["weight_decay"]
        xp = backend.xp_of(p.data)
        if weight_decay:
            g = g + weight_decay * p.data
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = xp.zeros_like(p.data), xp.zeros_like(p.data)
        m, s = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        s *= b2
        s += (1 - b2) * g * g
        t = self.steps
        denominator = xp.sqrt(s / (1 - b2**t)) + eps
        p.data -= (self.lr / (1 - b1**t)) * m / denominator


# =============================================================================================
# Learning-rate schedules: call ``step()`` once per epoch (``ReduceLROnPlateau.step(metric)``)
# =============================================================================================


class Schedule:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self, metric=None):
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)

    def lr_at(self, epoch):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])


class ConstantLR(Schedule):
    def lr_at(self, epoch):
        return self.base_lr


class StepLR(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size), as ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * min(epoch, self.T_max) / self.T_max)) / 2


class ReduceLROnPlateau(Schedule):
    """The paper's rule: divide lr by 10 (``factor=0.1``) when the monitored validation error has
    not improved for ``patience`` epochs. ``step(metric)`` with the error (lower is better)."""

    def __init__(self, optimizer, factor=0.1, patience=2, threshold=1e-4, min_lr=0.0):
        super().__init__(optimizer)
        self.factor, self.patience, self.threshold, self.min_lr = factor, patience, threshold, min_lr
        self.best, self.bad_epochs = math.inf, 0

    def step(self, metric=None):
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step(metric): pass the validation error (lower is better)")
        self.epoch += 1
        if metric < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
                self.bad_epochs = 0

    def state_dict(self):
        return {**super().state_dict(), "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
