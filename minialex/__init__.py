"""minialex: a from-scratch deep-learning framework for teaching, built around AlexNet.

Start reading at ``minialex/tensor.py`` (autograd), then ``minialex/backend/numpy_ref.py`` (the
kernels), then ``minialex/ops/`` (each layer's forward and backward).
"""

__version__ = "0.1.0"

import os

# After a GEMM, OpenBLAS's worker threads spin for about 2**28 cycles (0.1 s) waiting for the next
# one. On 2 cores the spinning thread takes the core that the next Numba kernel needs: an im2col or
# a col2im ran 20-30% slower right after a GEMM than after a pause, and the torchvision training step
# took 1.30x PyTorch's time instead of 1.12x (python -m minialex.bench, same machine, same hour).
# 2**4 cycles lets them sleep at once. OpenBLAS reads this when NumPy first loads it, so it must be
# set before anything imports NumPy; a user's own setting is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from minialex import random
from minialex.backend import backend_scope, set_backend
from minialex.random import manual_seed
from minialex.tensor import Function, Tensor, is_grad_enabled, no_grad, tensor
from minialex.gradcheck import GradcheckError, gradcheck
from minialex import io, models, nn, optim  # noqa: E402

__all__ = ["Tensor", "Function", "tensor", "no_grad", "is_grad_enabled", "set_backend", "backend_scope",
           "manual_seed", "gradcheck", "GradcheckError", "nn", "optim", "models", "io", "random", "__version__"]
