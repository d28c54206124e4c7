"""The AlexNet variants (``alexnet(variant)``) and ``summary(model, input_shape)``."""

from minialex.models.alexnet import VARIANTS, AlexNet, Variant, alexnet, alexnet_from_layers
from minialex.models.summary import ModelSummary, summary

__all__ = ["alexnet", "alexnet_from_layers", "AlexNet", "VARIANTS", "Variant", "summary", "ModelSummary"]
