"""Differentiable operations: one file per layer kind, forward and backward side by side."""
