"""Optimizers with PyTorch's names and update rules.

SGD (PyTorch's form), for each parameter w with gradient g:
    g <- g + weight_decay * w
    v <- momentum * v + g          (v = g on the first step)
    w <- w - lr * (g + momentum * v  if nesterov  else  v)
"""

from __future__ import annotations

from minialex import backend
from minialex.tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list; pass model.parameters()")
        for p in self.params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
        self.defaults = dict(defaults)
        self.lr = defaults["lr"]
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: expected lr > 0, momentum >= 0, weight_decay >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        momentum, weight_decay, nesterov = (self.defaults[k] for k in ("momentum", "weight_decay", "nesterov"))
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad.data
            if weight_decay:
                g = g + weight_decay * p.data
            if momentum:
                v = state.get("momentum_buffer")
                v = g.copy() if v is None else v.__imul__(momentum).__iadd__(g)
                state["momentum_buffer"] = v
                g = g + momentum * v if nesterov else v
            p.data -= self.lr * g
