"""Write golden values from PyTorch (float64) for minialex's op tests.

    python scripts/make_golden.py            # writes tests/golden/<op>.npz
    python scripts/make_golden.py --out DIR  # somewhere else

Needs PyTorch (CPU is enough); minialex's tests do not: they only read the .npz files.

One file per op. Each file holds
  meta                 np.array(json.dumps(cases)), cases = [{"name", "args", "kwargs", "grads"}, ...]
  <name>/<arg>         each tensor positional argument, in the order of "args"
                       (float64; the target of cross_entropy is int64)
  <name>/out           torch.nn.functional.<op>(*args, **kwargs)
  <name>/grad_out      a random cotangent with the shape of out
  <name>/grad_<arg>    d sum(out * grad_out) / d arg, for each arg in "grads"

"kwargs" uses torch.nn.functional's argument names; tuples are written as lists, None as null.
The file dropout_eval.npz holds calls of F.dropout (training=False, or p=0.0): identity checks.

Inputs come from NumPy generators seeded per (op, case), so adding a case to one op changes no other
value; the zip members carry a fixed timestamp, so regenerating with the same PyTorch gives the same
bytes. Every computation runs in float64 on one thread.
"""

from __future__ import annotations

import argparse
import io
import json
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "golden"
DTYPE = torch.float64


# ----------------------------------------------------------------------------------------------
# The writer: one per op file
# ----------------------------------------------------------------------------------------------
class GoldenFile:
    def __init__(self, op: str, fn):
        self.op = op
        self.fn = fn  # the torch.nn.functional callable
        self.cases: list[dict] = []
        self.arrays: dict[str, np.ndarray] = {}

    def rng(self) -> np.random.Generator:
        """A generator for the next case, seeded by (op name, case index) only."""
        return np.random.default_rng([zlib.crc32(self.op.encode()), len(self.cases)])

    def add(self, tensors: dict[str, np.ndarray], kwargs: dict | None = None,
            grads: list[str] | None = None, rng: np.random.Generator | None = None) -> None:
        """Call fn(*tensors.values(), **kwargs); store inputs, output, cotangent and gradients.

        grads defaults to every floating-point tensor argument.
        """
        kwargs = dict(kwargs or {})
        name = f"case{len(self.cases):02d}"
        if rng is None:
            rng = self.rng()
        if grads is None:
            grads = [a for a, v in tensors.items() if np.issubdtype(v.dtype, np.floating)]

        ts = {}
        for a, v in tensors.items():
            v = np.asarray(v)
            if np.issubdtype(v.dtype, np.floating):
                v = v.astype(np.float64)
                ts[a] = torch.tensor(v, dtype=DTYPE, requires_grad=a in grads)
            else:
                v = v.astype(np.int64)
                ts[a] = torch.tensor(v, dtype=torch.int64)
            self.arrays[f"{name}/{a}"] = v

        torch_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        out = self.fn(*ts.values(), **torch_kwargs)
        assert out.dtype == DTYPE, (self.op, name, out.dtype)
        grad_out = rng.standard_normal(tuple(out.shape))  # 0-d for a scalar loss
        self.arrays[f"{name}/out"] = out.detach().numpy().copy()
        self.arrays[f"{name}/grad_out"] = np.asarray(grad_out, dtype=np.float64)
        if grads:
            gs = torch.autograd.grad(out, [ts[a] for a in grads],
                                     grad_outputs=torch.tensor(grad_out, dtype=DTYPE))
            for a, g in zip(grads, gs):
                assert g.shape == ts[a].shape, (self.op, name, a)
                self.arrays[f"{name}/grad_{a}"] = g.detach().numpy().copy()

        json.dumps(kwargs)  # fails here, not in the test, if a value is not JSON
        self.cases.append({"name": name, "args": list(tensors), "kwargs": kwargs,
                           "grads": list(grads)})

    def write(self, out_dir: Path) -> Path:
        """Like np.savez_compressed, but with fixed zip timestamps (reproducible bytes)."""
        path = out_dir / f"{self.op}.npz"
        members = {"meta": np.array(json.dumps(self.cases)), **self.arrays}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, arr in members.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
        return path


def randn(rng, *shape, scale=1.0):
    return scale * rng.standard_normal(shape)


# ----------------------------------------------------------------------------------------------
# conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)
# ----------------------------------------------------------------------------------------------
def make_conv2d() -> GoldenFile:
    g = GoldenFile("conv2d", F.conv2d)

    def conv(N, C, H, W, OC, KH, KW, bias=True, **kwargs):
        rng = g.rng()
        groups = kwargs.get("groups", 1)
        t = {"input": randn(rng, N, C, H, W),
             "weight": randn(rng, OC, C // groups, KH, KW, scale=1 / np.sqrt(C // groups * KH * KW))}
        if bias:
            t["bias"] = randn(rng, OC)
        g.add(t, kwargs, rng=rng)

    conv(2, 3, 7, 7, 4, 3, 3)                                            # defaults, with bias
    conv(2, 3, 7, 7, 4, 3, 3, bias=False)                                # no bias
    conv(1, 2, 5, 6, 3, 1, 1)                                            # 1x1
    conv(2, 3, 8, 8, 2, 3, 3, stride=2, padding=1)
    conv(1, 2, 10, 11, 3, 3, 3, stride=3, padding=2)
    conv(2, 2, 9, 8, 3, 3, 3, stride=[2, 1], padding=[1, 0])             # pairs
    conv(1, 3, 9, 9, 2, 5, 5, padding=2)                                 # 5x5
    conv(1, 2, 9, 9, 3, 3, 3, dilation=2)
    conv(2, 2, 10, 9, 2, 3, 3, dilation=[2, 1], padding=[2, 1], stride=[1, 2])
    conv(2, 4, 6, 6, 6, 3, 3, groups=2, padding=1)                       # two towers
    conv(1, 6, 7, 7, 3, 3, 3, groups=3, stride=2, bias=False)
    conv(1, 4, 6, 6, 4, 3, 3, groups=4, padding=1)                       # depthwise
    conv(2, 3, 23, 23, 4, 11, 11, stride=4)                              # AlexNet conv1 shape
    conv(1, 3, 23, 23, 2, 11, 11, stride=4, padding=2, bias=False)       # conv1 with padding 2
    conv(2, 2, 7, 9, 3, 3, 5, padding=[1, 2])                            # non-square kernel
    conv(1, 3, 8, 7, 2, 5, 3, stride=[1, 2], padding=[0, 1], dilation=[1, 2])
    conv(2, 2, 6, 7, 3, 3, 3, padding="same")                            # odd kernel
    conv(1, 2, 6, 7, 3, 2, 2, padding="same")                            # even: pads 0 before, 1 after
    conv(1, 3, 7, 8, 2, 4, 2, padding="same", bias=False)                # even KH=4: pads 1 / 2
    conv(1, 2, 7, 7, 2, 2, 3, padding="same", dilation=2)                # dilated, even: total 2 / 4
    conv(1, 2, 8, 8, 4, 4, 4, padding="same", groups=2, dilation=[1, 2])
    conv(2, 3, 7, 8, 2, 3, 3, padding="valid")
    conv(1, 2, 5, 5, 3, 5, 5, padding="valid")                           # kernel = input: 1x1 out
    conv(3, 1, 4, 4, 1, 3, 3, padding=1, stride=2, dilation=1)           # batch 3, one channel
    conv(1, 2, 3, 3, 2, 3, 3, padding=2, stride=3)                       # padding-heavy, strided
    return g


# ----------------------------------------------------------------------------------------------
# max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)
# ----------------------------------------------------------------------------------------------
def make_max_pool2d() -> GoldenFile:
    g = GoldenFile("max_pool2d", F.max_pool2d)

    def pool(N, C, H, W, ties=False, **kwargs):
        rng = g.rng()
        x = rng.integers(0, 4, (N, C, H, W)).astype(np.float64) if ties else randn(rng, N, C, H, W)
        g.add({"input": x}, kwargs, rng=rng)

    pool(2, 3, 13, 13, kernel_size=3, stride=2)                          # AlexNet overlapping 3/2
    pool(1, 2, 8, 8, kernel_size=2, stride=2)
    pool(2, 2, 7, 6, kernel_size=2)                                      # stride omitted = kernel
    pool(1, 2, 9, 9, kernel_size=3, stride=None)                         # stride=None explicit
    pool(2, 2, 7, 7, kernel_size=3, stride=2, padding=1)                 # padding counts as -inf
    pool(1, 2, 9, 9, kernel_size=3, stride=1, dilation=2)
    pool(1, 2, 10, 9, kernel_size=[2, 3], stride=1, dilation=[2, 1], padding=[1, 1])
    pool(1, 2, 13, 13, kernel_size=3, stride=2, ceil_mode=True)          # ceil changes nothing: 6
    pool(2, 2, 14, 14, kernel_size=3, stride=2, ceil_mode=True)          # 7 with ceil, 6 without
    pool(1, 2, 14, 14, kernel_size=3, stride=2, ceil_mode=False)         # the same, floor
    pool(1, 2, 8, 8, kernel_size=3, stride=3, padding=1, ceil_mode=True)  # last window dropped rule
    pool(1, 3, 7, 10, kernel_size=[3, 2], stride=[2, 3])                 # non-square
    pool(1, 1, 11, 11, kernel_size=[2, 4], stride=[3, 2], padding=[1, 2], ceil_mode=True)
    pool(2, 3, 9, 9, ties=True, kernel_size=3, stride=2)                 # exact ties, overlapping
    pool(1, 2, 8, 8, ties=True, kernel_size=2, stride=1, padding=1)      # ties + padding
    pool(1, 2, 10, 10, ties=True, kernel_size=3, stride=2, dilation=2, ceil_mode=True)
    # all-equal input: every window is one big tie
    g.add({"input": np.ones((1, 1, 5, 5))}, {"kernel_size": 3, "stride": 2})
    return g


# ----------------------------------------------------------------------------------------------
# avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)
# ----------------------------------------------------------------------------------------------
def make_avg_pool2d() -> GoldenFile:
    g = GoldenFile("avg_pool2d", F.avg_pool2d)

    def pool(N, C, H, W, **kwargs):
        rng = g.rng()
        g.add({"input": randn(rng, N, C, H, W)}, kwargs, rng=rng)

    pool(2, 3, 13, 13, kernel_size=3, stride=2)                          # overlapping 3/2
    pool(1, 2, 8, 8, kernel_size=2)                                      # stride omitted
    pool(1, 2, 9, 6, kernel_size=3, stride=None)
    pool(2, 2, 7, 7, kernel_size=3, stride=2, padding=1)                 # count_include_pad=True
    pool(2, 2, 7, 7, kernel_size=3, stride=2, padding=1, count_include_pad=False)
    pool(1, 2, 8, 9, kernel_size=[3, 2], stride=[2, 1], padding=[1, 1], count_include_pad=True)
    pool(1, 2, 8, 9, kernel_size=[3, 2], stride=[2, 1], padding=[1, 1], count_include_pad=False)
    pool(1, 2, 14, 14, kernel_size=3, stride=2, ceil_mode=True)          # last window hangs over
    pool(1, 2, 6, 6, kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
    pool(1, 2, 6, 6, kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    pool(1, 1, 5, 5, kernel_size=2, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
    pool(1, 2, 7, 10, kernel_size=[2, 4], stride=[3, 3], ceil_mode=True)
    pool(2, 3, 13, 13, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    pool(1, 1, 3, 3, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    return g


# ----------------------------------------------------------------------------------------------
# adaptive_avg_pool2d(input, output_size)
# ----------------------------------------------------------------------------------------------
def make_adaptive_avg_pool2d() -> GoldenFile:
    g = GoldenFile("adaptive_avg_pool2d", F.adaptive_avg_pool2d)

    def pool(N, C, H, W, output_size):
        rng = g.rng()
        g.add({"input": randn(rng, N, C, H, W)}, {"output_size": output_size}, rng=rng)

    pool(2, 3, 13, 13, 6)          # torchvision AlexNet: 13 -> 6, overlapping bins
    pool(1, 2, 12, 12, 6)          # divides: plain 2x2 average
    pool(1, 2, 5, 5, 3)
    pool(1, 2, 7, 7, 2)
    pool(2, 2, 6, 6, 6)            # identity
    pool(1, 3, 1, 1, 1)
    pool(1, 2, 9, 5, 1)            # global average
    pool(1, 2, 4, 4, 7)            # output larger than input: bins repeat pixels
    pool(1, 2, 7, 10, [3, 5])
    pool(2, 1, 6, 11, [4, 3])
    return g


# ----------------------------------------------------------------------------------------------
# local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0)
# ----------------------------------------------------------------------------------------------
def make_local_response_norm() -> GoldenFile:
    g = GoldenFile("local_response_norm", F.local_response_norm)

    def lrn(shape, scale=1.0, **kwargs):
        rng = g.rng()
        g.add({"input": randn(rng, *shape, scale=scale)}, kwargs, rng=rng)

    lrn((2, 6, 4, 4), size=5, alpha=0.5, beta=0.75, k=2.0)      # paper's layer, alpha made visible
    lrn((2, 8, 3, 3), size=5)                                    # PyTorch defaults (alpha 1e-4)
    lrn((1, 7, 3, 4), size=3, alpha=1.0, beta=0.5, k=1.0)
    lrn((1, 6, 3, 3), size=2, alpha=0.3, beta=0.75, k=1.0)       # even: window c-1..c
    lrn((2, 8, 2, 3), size=4, alpha=0.8, beta=1.0, k=2.0)        # even: window c-2..c+1
    lrn((1, 5, 3, 3), size=1, alpha=0.5, beta=0.75, k=1.0)       # only itself
    lrn((1, 3, 4, 4), size=7, alpha=0.4, beta=0.75, k=1.0)       # size > channels
    lrn((2, 1, 4, 5), size=5, alpha=1.0, beta=0.75, k=1.0)       # one channel
    lrn((1, 4, 3, 3), size=6, alpha=0.6, beta=0.5, k=2.0)        # even and > channels
    lrn((2, 5, 4), size=3, alpha=0.5, beta=0.75, k=1.0)          # 3-D input (N, C, L)
    lrn((1, 6, 7), size=4, alpha=0.2, beta=1.0, k=2.0)           # 3-D, even size
    lrn((1, 8, 5, 5), scale=3.0, size=5, alpha=0.1, beta=0.75, k=1.0)  # larger activations
    return g


# ----------------------------------------------------------------------------------------------
# relu(input)
# ----------------------------------------------------------------------------------------------
def make_relu() -> GoldenFile:
    g = GoldenFile("relu", F.relu)

    def away_from_zero(rng, *shape):
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)

    for shape in [(2, 3, 4, 4), (3, 7), (1, 8, 5, 6), (10,)]:
        rng = g.rng()
        g.add({"input": away_from_zero(rng, *shape)}, {}, rng=rng)
    # exact zeros: PyTorch's gradient at 0 is 0 (the mask is out > 0)
    rng = g.rng()
    x = away_from_zero(rng, 4, 5)
    x[rng.random((4, 5)) < 0.3] = 0.0
    g.add({"input": x}, {}, rng=rng)
    return g


# ----------------------------------------------------------------------------------------------
# linear(input, weight, bias=None)
# ----------------------------------------------------------------------------------------------
def make_linear() -> GoldenFile:
    g = GoldenFile("linear", F.linear)

    def lin(in_shape, out_features, bias=True):
        rng = g.rng()
        t = {"input": randn(rng, *in_shape),
             "weight": randn(rng, out_features, in_shape[-1], scale=1 / np.sqrt(in_shape[-1]))}
        if bias:
            t["bias"] = randn(rng, out_features)
        g.add(t, {}, rng=rng)

    lin((3, 5), 4)
    lin((3, 5), 4, bias=False)
    lin((1, 8), 1)
    lin((2, 4, 6), 3)                # (N, T, in)
    lin((2, 3, 5), 2, bias=False)
    lin((2, 16), 10)
    return g


# ----------------------------------------------------------------------------------------------
# cross_entropy(input, target, reduction="mean")
# ----------------------------------------------------------------------------------------------
def make_cross_entropy() -> GoldenFile:
    g = GoldenFile("cross_entropy", F.cross_entropy)

    def ce(N, K, scale=1.0, **kwargs):
        rng = g.rng()
        t = {"input": randn(rng, N, K, scale=scale), "target": rng.integers(0, K, N)}
        g.add(t, kwargs, grads=["input"], rng=rng)

    ce(3, 5)                                       # default reduction (mean), no kwargs
    ce(3, 5, reduction="mean")
    ce(4, 10, reduction="sum")
    ce(4, 10, reduction="none")
    ce(3, 7, scale=50.0, reduction="mean")         # large logits: needs the max-shift
    ce(3, 7, scale=50.0, reduction="none")
    ce(2, 4, scale=50.0, reduction="sum")
    ce(1, 2, reduction="mean")
    ce(2, 1000, reduction="mean")                  # ImageNet-sized K
    # huge logits: exp overflows without the shift; target sometimes far from the max
    rng = g.rng()
    x = randn(rng, 3, 6, scale=400.0)
    g.add({"input": x, "target": np.array([0, 5, 2])}, {"reduction": "none"},
          grads=["input"], rng=rng)
    return g


# ----------------------------------------------------------------------------------------------
# dropout(input, p=0.5, training=True): identity checks only (no randomness to match)
# ----------------------------------------------------------------------------------------------
def make_dropout_eval() -> GoldenFile:
    g = GoldenFile("dropout_eval", F.dropout)

    def drop(shape, **kwargs):
        rng = g.rng()
        g.add({"input": randn(rng, *shape)}, kwargs, rng=rng)

    drop((3, 8), p=0.5, training=False)
    drop((2, 3, 4, 4), p=0.9, training=False)
    drop((2, 6), training=False)                   # default p
    drop((3, 8), p=0.0, training=True)
    drop((2, 3, 5), p=0.0, training=True)
    return g


MAKERS = [make_conv2d, make_max_pool2d, make_avg_pool2d, make_adaptive_avg_pool2d,
          make_local_response_norm, make_relu, make_linear, make_cross_entropy, make_dropout_eval]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    # even kernels with padding="same": PyTorch warns that it pads a copy of the input
    warnings.filterwarnings("ignore", message=".*padding='same'.*")
    torch.manual_seed(0)
    torch.set_num_threads(1)            # fixed reduction order
    torch.use_deterministic_algorithms(True)

    total = 0
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for make in MAKERS:
        g = make()
        path = g.write(args.out)
        size = path.stat().st_size
        total += size
        print(f"{path.name:28s} {len(g.cases):3d} cases {size / 1024:8.1f} KiB")
    print(f"{'total':28s} {'':9s} {total / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
