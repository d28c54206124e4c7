"""``summary(model, input_shape)``: the table of layers, output shapes, parameters and costs.

Shapes are traced by running the model once on a batch of zeros (inside ``no_grad``, in eval mode):
every layer without children (a *leaf*: Conv2d, ReLU, ...) records its output as it runs, so the
table is exact for any model, including one built by hand. Costs per leaf, for the whole batch:

    parameters   the leaf's own parameters
    mult-adds    Conv2d: N * OC * OH * OW * (C/G * KH * KW);  Linear: N * in * out;  others 0
    memory       bytes of the leaf's output, counted as float32 (4 bytes a value)

When a layer cannot take what the layers before it produce, ``summary`` raises a ValueError naming
the layer, what it got, what it expected, and the square input size that would fit. That size is
found by pushing shapes (not arrays) through the same layers with the output-size formula
``OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1`` for every candidate size: cheap and exact.
"""

from __future__ import annotations

import numpy as np

from minialex import backend, nn
from minialex.ops._args import output_size, pair
from minialex.tensor import Tensor, no_grad

__all__ = ["summary", "ModelSummary", "describe_fit", "fitting_sizes"]

FLOAT32_BYTES = 4


class ModelSummary:
    """What ``summary`` returns: ``rows`` (one dict per leaf call: name, type, output_shape,
    params, mult_adds, memory) and ``totals``; ``str()`` gives the printed table."""

    def __init__(self, rows, totals):
        self.rows, self.totals = rows, totals

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        """``s[3]`` is the fourth row, ``s["features.0"]`` the row of that layer."""
        if isinstance(key, str):
            for row in self.rows:
                if row["name"] == key:
                    return row
            raise KeyError(f"summary: no layer named {key!r}; the layers are {[r['name'] for r in self.rows]}")
        return self.rows[key]

    def __str__(self):
        header = ("layer", "type", "output", "params", "mult-adds", "memory")
        lines = [(r["name"], r["type"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}",
                  f"{r['mult_adds']:,}", _bytes(r["memory"])) for r in self.rows]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        t = self.totals
        out = [fmt.format(*header), rule] + [fmt.format(*line) for line in lines] + [rule]
        out += [f"input {'x'.join(map(str, t['input_shape']))}: {_bytes(t['input_memory'])}",
                f"parameters: {t['params']:,} ({_bytes(t['param_memory'])} as float32)",
                f"mult-adds: {t['mult_adds']:,} ({t['mult_adds'] / 1e9:.3f} G)",
                f"activations: {_bytes(t['activation_memory'])} (the outputs of all layers, forward)"]
        return "\n".join(out)

    __repr__ = __str__


def summary(model, input_shape, verbose: bool = True) -> ModelSummary:
    """Print and return the table of ``model``'s layers for an input of ``input_shape``:
    (C, H, W) for one image, or (N, C, H, W). Costs are for the whole batch (N = 1 by default)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    params = model.parameters()
    dtype = params[0].dtype if params else np.float32
    device = params[0].device if params else backend.current().device
    x = Tensor(backend.to_device(np.zeros(shape, dtype=dtype), device))

    calls, failure = [], []
    leaves, seen = [], set()
    for name, m in model.named_modules():  # a module shared by two parents is hooked once
        if not m._modules and id(m) not in seen:
            seen.add(id(m))
            leaves.append((name or type(m).__name__, m))
    modes = [(m, m.training) for m in model.modules()]

    def hook(name, module, forward):
        def traced(*args, **kwargs):
            got = tuple(args[0].shape) if args and hasattr(args[0], "shape") else None
            try:
                out = forward(*args, **kwargs)
            except ValueError as err:
                failure.append((name, module, got, err))
                raise
            calls.append((name, module, got, tuple(out.shape)))
            return out
        return traced

    saved = [(m, vars(m).get("forward")) for _, m in leaves]
    try:
        for name, m in leaves:  # an instance attribute ``forward`` shadows the class's method
            object.__setattr__(m, "forward", hook(name, m, m.forward))
        model.eval()  # no dropout: shapes do not change, and no seed is drawn from the generator
        with no_grad():
            model(x)
    except ValueError as err:
        if not failure:  # raised by the model itself (AlexNet says which layer and what fits)
            raise ValueError(f"summary({type(model).__name__}, input {shape}): {err}") from err
        name, module, got, cause = failure[0]
        layers = [c[1] for c in calls] + [module]
        raise ValueError(f"summary({type(model).__name__}, input {shape}): layer {name} ({module!r}) cannot "
                         f"take the input {got} that the layers before it produce: {cause}; "
                         f"{describe_fit(layers, shape)}") from err
    finally:
        for m, forward in saved:
            if forward is None:
                m.__dict__.pop("forward", None)
            else:
                object.__setattr__(m, "forward", forward)
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    rows = []
    for name, module, got, out in calls:
        rows.append(dict(name=name, type=type(module).__name__, output_shape=out[1:],
                         params=sum(p.size for p in module._parameters.values() if p is not None),
                         mult_adds=_mult_adds(module, out), memory=int(np.prod(out)) * FLOAT32_BYTES))
    n_params = model.num_parameters()
    totals = dict(input_shape=shape[1:], params=n_params,
                  trainable_params=sum(p.size for p in params if p.requires_grad),
                  mult_adds=sum(r["mult_adds"] for r in rows),
                  activation_memory=sum(r["memory"] for r in rows),
                  input_memory=int(np.prod(shape)) * FLOAT32_BYTES, param_memory=n_params * FLOAT32_BYTES)
    result = ModelSummary(rows, totals)
    if verbose:
        print(result)
    return result


def _mult_adds(module, out) -> int:
    if isinstance(module, nn.Conv2d):
        N, OC, OH, OW = out
        KH, KW = module.kernel_size
        return N * OC * OH * OW * (module.in_channels // module.groups) * KH * KW
    if isinstance(module, nn.Linear):
        return int(np.prod(out[:-1])) * module.in_features * module.out_features
    return 0


def _bytes(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


# =============================================================================================
# Which input sizes fit: shapes pushed through the layers, no arrays
# =============================================================================================


class _UnknownLayer(Exception):
    pass


def _shape_after(module, shape):
    """The output shape of ``module`` for an input of ``shape``; ValueError if it cannot take it.
    A Linear flattens what it gets (as AlexNet does before its classifier)."""
    where = repr(module)
    if isinstance(module, (nn.ReLU, nn.Dropout, nn.LocalResponseNorm)):
        return shape
    if isinstance(module, nn.Linear):
        if int(np.prod(shape[1:])) != module.in_features:
            raise ValueError(f"{where}: expected {module.in_features} features, got {shape}")
        return (shape[0], module.out_features)
    if isinstance(module, nn.Flatten):
        start, end = module.start_dim % len(shape), module.end_dim % len(shape)
        return shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
    if len(shape) != 4:
        raise ValueError(f"{where}: expected (N, C, H, W), got {shape}")
    N, C, H, W = shape
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = module.output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (N, C, H if size[0] is None else size[0], W if size[1] is None else size[1])
    if isinstance(module, nn.Conv2d):
        if C != module.in_channels:
            raise ValueError(f"{where}: expected {module.in_channels} channels, got {C}")
        (KH, KW), (SH, SW), (DH, DW) = module.kernel_size, pair(module.stride, "stride", where, 1), \
            pair(module.dilation, "dilation", where, 1)
        if module.padding == "same":
            return (N, module.out_channels, H, W)
        PH, PW = (0, 0) if module.padding == "valid" else pair(module.padding, "padding", where, 0)
        return (N, module.out_channels, output_size(H, KH, SH, PH, DH, False, where, "H"),
                output_size(W, KW, SW, PW, DW, False, where, "W"))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        (KH, KW), (SH, SW) = pair(module.kernel_size, "kernel_size", where, 1), pair(module.stride, "stride", where, 1)
        (PH, PW), (DH, DW) = pair(module.padding, "padding", where, 0), pair(getattr(module, "dilation", 1),
                                                                            "dilation", where, 1)
        return (N, C, output_size(H, KH, SH, PH, DH, module.ceil_mode, where, "H"),
                output_size(W, KW, SW, PW, DW, module.ceil_mode, where, "W"))
    raise _UnknownLayer(type(module).__name__)


def fitting_sizes(layers, input_shape, channels=None, largest=None):
    """Square sizes S (1..largest) such that an (N, C, S, S) input goes through ``layers`` (a list
    of leaf modules, in the order they run). None if a layer is of a type this cannot follow."""
    N, C = input_shape[0], (channels if channels is not None else input_shape[1])
    largest = largest or max(4 * max(input_shape[2:]), 256)
    sizes = []
    for S in range(1, largest + 1):
        shape = (N, C, S, S)
        try:
            for module in layers:
                shape = _shape_after(module, shape)
        except ValueError:
            continue
        except _UnknownLayer:
            return None
        sizes.append(S)
    return sizes


def describe_fit(layers, input_shape) -> str:
    """A phrase saying which square input would fit ``layers``, nearest to ``input_shape``'s size."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        return "summary() shows every layer's shape"
    N, C, H, W = input_shape
    channels = C
    sizes = fitting_sizes(layers, input_shape)
    first = next((m for m in layers if isinstance(m, nn.Conv2d)), None)
    if sizes == [] and first is not None and first.in_channels != C:  # maybe the channels are wrong
        channels = first.in_channels
        sizes = fitting_sizes(layers, input_shape, channels=channels)
    if sizes is None:
        return "summary(model, input_shape) shows the shape after every layer"
    if not sizes:
        return f"no square input of {channels} channels up to {max(4 * max(H, W), 256)} pixels fits these layers"
    best = min(sizes, key=lambda s: (abs(s - H), -s))
    low = high = best
    while low - 1 in sizes:
        low -= 1
    while high + 1 in sizes:
        high += 1
    largest = max(4 * max(H, W), 256)
    span = ("only that size" if low == high else f"any square size from {low} up does" if high == largest
            else f"any square size from {low} to {high} does")
    return f"an input of {channels}x{best}x{best} would fit ({span})"
