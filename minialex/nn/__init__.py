"""Layers that own parameters (``minialex.nn``) and the functional forms (``minialex.nn.functional``)."""

from minialex.nn import functional, init
from minialex.nn.layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten,
                                Linear, LocalResponseNorm, MaxPool2d, ReLU)
from minialex.nn.module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "LocalResponseNorm", "ReLU", "Dropout", "Linear", "Flatten", "CrossEntropyLoss", "functional", "init"]
