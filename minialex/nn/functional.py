"""The layers as functions, with PyTorch's names and arguments: ``import minialex.nn.functional as F``.

Each function lives with its forward and backward in ``minialex/ops/``; this module only gathers them.
"""

from minialex.ops.activation import dropout, relu
from minialex.ops.basic import flatten
from minialex.ops.conv import conv2d, conv2d_composed
from minialex.ops.linear import linear
from minialex.ops.loss import cross_entropy
from minialex.ops.lrn import local_response_norm
from minialex.ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = ["conv2d", "conv2d_composed", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "local_response_norm", "relu", "dropout", "linear", "flatten", "cross_entropy"]
