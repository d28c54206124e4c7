"""minialex: a from-scratch deep-learning framework for teaching, built around AlexNet.

Start reading at ``minialex/tensor.py`` (autograd), then ``minialex/backend/numpy_ref.py`` (the
kernels), then ``minialex/ops/`` (each layer's forward and backward).
"""

__version__ = "0.1.0"

from minialex import random
from minialex.backend import backend_scope, set_backend
from minialex.random import manual_seed
from minialex.tensor import Function, Tensor, is_grad_enabled, no_grad, tensor
from minialex.gradcheck import GradcheckError, gradcheck
from minialex import io, models, nn, optim  # noqa: E402

__all__ = ["Tensor", "Function", "tensor", "no_grad", "is_grad_enabled", "set_backend", "backend_scope",
           "manual_seed", "gradcheck", "GradcheckError", "nn", "optim", "models", "io", "random", "__version__"]
