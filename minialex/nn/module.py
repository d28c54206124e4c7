"""Module, Parameter and Sequential: how layers own their parameters and find each other.

A Module registers every Parameter and sub-Module assigned to it as an attribute, in order, so that
``named_parameters()`` yields PyTorch's dotted names (``features.0.weight``) and ``state_dict()``
can be saved to ``.npz`` or exchanged with PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minialex import backend
from minialex.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable parameter of a Module (requires grad by default)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: implement ``forward``; call the module like a function."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- traversal ----------------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # --- modes and conversions ------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Training mode (dropout active); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off); returns self."""
        return self.train(False)

    def _convert(self, convert):
        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = Tensor(convert(p.grad.data))
        return self

    def double(self):
        """Convert every parameter to float64 (for gradcheck); returns self."""
        return self._convert(lambda a: a.astype(np.float64))

    def float(self):
        """Convert every parameter to float32; returns self."""
        return self._convert(lambda a: a.astype(np.float32))

    def to(self, device: str):
        """Move every parameter to ``device`` ("cpu"/"numpy" or "cuda"/"cupy"); returns self."""
        return self._convert(lambda a: backend.to_device(a, device))

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted name -> NumPy copy of the parameter, in registration order (PyTorch's keys)."""
        return OrderedDict((name, p.numpy().copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays (NumPy, CuPy, Tensors, or anything with ``.numpy()`` such as torch tensors)
        into the parameters, keeping each parameter's dtype and device. With ``strict`` the keys
        must match exactly. Returns (missing_keys, unexpected_keys)."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict({type(self).__name__}): missing keys {missing}, unexpected keys "
                           f"{unexpected}; was the state saved from another model or variant?")
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else backend.to_numpy(value)
            if tuple(value.shape) != p.shape:
                raise ValueError(f"load_state_dict({type(self).__name__}): {name} has shape {tuple(value.shape)} "
                                 f"in the state but {p.shape} in the model")
            p.data = backend.to_device(value.astype(p.dtype), p.device)
        return missing, unexpected

    # --- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, expected a Module")
            setattr(self, str(i), module)

    def __getitem__(self, index):
        children = list(self._modules.values())
        return Sequential(*children[index]) if isinstance(index, slice) else children[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
