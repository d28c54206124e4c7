"""``python -m minialex.bench``: how fast is minialex, layer by layer and per training step, against
PyTorch in the same run?

For each AlexNet variant asked for (``--variant``, default torchvision at batch 64 and paper at batch
32) and each backend (``--backend``, default every CPU backend installed):

* per layer: forward time and forward+backward time, at the shapes the layer sees in the model;
* per training step (forward, cross-entropy, backward, SGD with momentum): time and images/s, plus
  the share of the step spent in minialex's kernels (everything but GEMM and Python);
* peak resident memory of a training step, each framework in its own process (``--memory``).

When PyTorch is importable, every measurement is repeated on the same shapes with PyTorch (the model
is translated layer by layer, weights copied) and a ratio column shows minialex / PyTorch. minialex
and PyTorch runs are interleaved, warm-up runs are excluded, and each figure is the median of
``--repeats`` runs (at least 5). ``--quick`` measures the small variant and torchvision at a small
batch in about a minute. ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import minialex
from minialex import backend as B
from minialex import nn
from minialex.models import alexnet
from minialex.nn import functional as F

DEFAULT_RUNS = [("torchvision", 64), ("paper", 32)]
QUICK_RUNS = [("small", 128), ("torchvision", 8)]


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def machine_header(torch) -> dict:
    """Threads, BLAS library and core type: the numbers needed to compare figures across machines."""
    header = {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
              "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)")}
    try:
        from threadpoolctl import threadpool_info

        header["blas"] = [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                          for info in threadpool_info() if info.get("user_api") == "blas"]
    except ImportError:
        header["blas"] = "threadpoolctl not installed"
    try:
        import numba

        header["numba"] = f"{numba.__version__}, {numba.get_num_threads()} threads"
    except ImportError:
        header["numba"] = "not installed"
    header["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads" if torch else "not installed"
    return header


# ---------------------------------------------------------------------------------------------
# The same model in PyTorch
# ---------------------------------------------------------------------------------------------


def model_layers(model) -> list:
    """The layers in the order AlexNet.forward calls them (flatten made explicit)."""
    layers = list(model.features)
    if model.avgpool is not None:
        layers.append(model.avgpool)
    return layers + [nn.Flatten()] + list(model.classifier)


def torch_layer(layer, torch):
    """The PyTorch twin of one minialex layer, weights copied."""
    t = torch.nn
    if isinstance(layer, nn.Conv2d):
        twin = t.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, bias=layer.bias is not None)
    elif isinstance(layer, nn.Linear):
        twin = t.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif isinstance(layer, nn.MaxPool2d):
        return t.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.dilation, ceil_mode=layer.ceil_mode)
    elif isinstance(layer, nn.AvgPool2d):
        return t.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad)
    elif isinstance(layer, nn.AdaptiveAvgPool2d):
        return t.AdaptiveAvgPool2d(layer.output_size)
    elif isinstance(layer, nn.LocalResponseNorm):
        return t.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
    elif isinstance(layer, nn.ReLU):
        return t.ReLU()
    elif isinstance(layer, nn.Dropout):
        return t.Dropout(layer.p)
    elif isinstance(layer, nn.Flatten):
        return t.Flatten(layer.start_dim, layer.end_dim)
    else:
        raise TypeError(f"bench: no PyTorch twin for {type(layer).__name__}")
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    return twin


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def interleaved_medians(candidates: dict, repeats: int, warmup: int = 1) -> dict:
    """{name: median seconds}: each candidate (a zero-argument function) run in turn, ``repeats`` times."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def layer_candidates(layer, x_shape, backends, torch, rng):
    """Zero-argument functions timing forward and forward+backward of one layer on each framework."""
    x_host = rng.standard_normal(x_shape).astype(np.float32)
    candidates = {}
    for name in backends:
        with B.backend_scope(name):
            x = minialex.tensor(x_host, requires_grad=True)
            gy = minialex.tensor(np.ones(layer(x).shape, dtype=np.float32))

        def forward(name=name, x=x):
            with B.backend_scope(name):
                layer(x)

        def forward_backward(name=name, x=x, gy=gy):
            with B.backend_scope(name):
                layer(x).backward(gy)

        candidates[(name, "forward")] = forward
        candidates[(name, "forward+backward")] = forward_backward
    if torch is not None:
        twin = torch_layer(layer, torch)
        tx = torch.from_numpy(x_host).requires_grad_(True)
        tgy = torch.ones(twin(tx).shape)
        candidates[("torch", "forward")] = lambda: twin(tx)
        candidates[("torch", "forward+backward")] = lambda: twin(tx).backward(tgy)
    return candidates


def training_step(model, optimizer, x, target):
    loss = F.cross_entropy(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def torch_training_step(twin, optimizer, x, target, torch):
    loss = torch.nn.functional.cross_entropy(twin(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def kernel_share(model, optimizer, x, target, kernels_module) -> float:
    """Fraction of one training step spent inside the backend's kernels (not GEMM, not Python)."""
    spent = [0.0]
    originals = {name: getattr(kernels_module, name) for name in kernels_module.KERNELS}

    def timed(fn):
        def wrapper(*args):
            start = time.perf_counter()
            fn(*args)
            spent[0] += time.perf_counter() - start
        return wrapper

    for name, fn in originals.items():
        setattr(kernels_module, name, timed(fn))
    try:
        start = time.perf_counter()
        training_step(model, optimizer, x, target)
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(kernels_module, name, fn)
    return spent[0] / total


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def build(variant, batch):
    minialex.manual_seed(0)
    model = alexnet(variant)
    shape = (batch,) + _input_shape(variant)
    return model, shape


def _input_shape(variant):
    from minialex.models import VARIANTS

    return tuple(VARIANTS[variant].input_shape)


def bench_layers(variant, batch, backends, torch, repeats, rng, report):
    model, shape = build(variant, batch)
    model.train()
    x = minialex.tensor(np.zeros(shape, dtype=np.float32))
    rows = []
    for index, layer in enumerate(model_layers(model)):
        medians = interleaved_medians(layer_candidates(layer, x.shape, backends, torch, rng), repeats)
        row = {"variant": variant, "batch": batch, "index": index, "layer": repr(layer).split("(")[0],
               "input": list(x.shape), "times": {f"{fw}/{what}": t for (fw, what), t in medians.items()}}
        rows.append(row)
        report(row)
        with minialex.no_grad():
            x = layer(x)
    return rows


def bench_step(variant, batch, backends, torch, repeats, rng):
    model, shape = build(variant, batch)
    x_host = rng.standard_normal(shape).astype(np.float32)
    target_host = rng.integers(0, model.config["num_classes"], batch)
    candidates, shares = {}, {}
    for name in backends:
        with B.backend_scope(name):
            m, _ = build(variant, batch)
            opt = minialex.optim.SGD(m.parameters(), 0.01, momentum=0.9)
            x, target = minialex.tensor(x_host), minialex.tensor(target_host)

            def step(name=name, m=m, opt=opt, x=x, target=target):
                with B.backend_scope(name):
                    training_step(m, opt, x, target)

            step()
            shares[name] = kernel_share(m, opt, x, target, B.get(name).kernels)
            candidates[name] = step
    if torch is not None:
        twin = torch.nn.Sequential(*[torch_layer(layer, torch) for layer in model_layers(model)])
        topt = torch.optim.SGD(twin.parameters(), 0.01, momentum=0.9)
        tx, ttarget = torch.from_numpy(x_host), torch.from_numpy(target_host)
        candidates["torch"] = lambda: torch_training_step(twin, topt, tx, ttarget, torch)
    medians = interleaved_medians(candidates, repeats)
    return {"variant": variant, "batch": batch, "step_seconds": medians,
            "images_per_second": {k: batch / t for k, t in medians.items()}, "kernel_share": shares}


def peak_memory(framework, variant, batch, backend_name) -> float:
    """Peak resident memory (MiB) of a process that runs three training steps, measured in a fresh process."""
    code = (f"import sys; sys.argv = ['bench', '--probe-memory', {framework!r}, '--variant', {variant!r}, "
            f"'--batch', '{batch}', '--backend', {backend_name!r}]; from minialex.bench import main; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def probe_memory(framework, variant, batch, backend_name, torch):
    rng = np.random.default_rng(0)
    model, shape = build(variant, batch)
    x_host = rng.standard_normal(shape).astype(np.float32)
    target_host = rng.integers(0, model.config["num_classes"], batch)
    if framework == "torch":
        twin = torch.nn.Sequential(*[torch_layer(layer, torch) for layer in model_layers(model)])
        del model
        opt = torch.optim.SGD(twin.parameters(), 0.01, momentum=0.9)
        for _ in range(3):
            torch_training_step(twin, opt, torch.from_numpy(x_host), torch.from_numpy(target_host), torch)
    else:
        B.set_backend(backend_name)
        model, _ = build(variant, batch)
        opt = minialex.optim.SGD(model.parameters(), 0.01, momentum=0.9)
        for _ in range(3):
            training_step(model, opt, minialex.tensor(x_host), minialex.tensor(target_host))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB -> MiB


# ---------------------------------------------------------------------------------------------
# Printing and the command line
# ---------------------------------------------------------------------------------------------


def _ratio(a, b):
    return f"{a / b:6.2f}" if a is not None and b else "     -"


def print_layer_row(row, backends, has_torch):
    times = row["times"]
    cells = [f"{row['index']:>2} {row['layer']:<18} {str(tuple(row['input'])):<22}"]
    for what in ("forward", "forward+backward"):
        for name in backends:
            t = times[f"{name}/{what}"]
            cells.append(f"{t * 1e3:9.2f}" + (f" {_ratio(t, times.get(f'torch/{what}'))}" if has_torch else ""))
        if has_torch:
            cells.append(f"{times[f'torch/{what}'] * 1e3:9.2f}")
    print(" ".join(cells), flush=True)


def layer_table_header(backends, has_torch):
    cols = []
    for what in ("fwd", "fwd+bwd"):
        for name in backends:
            cols.append(f"{name + ' ' + what + ' ms':>9}" + ("  ratio" if has_torch else ""))
        if has_torch:
            cols.append(f"{'torch ' + what:>9}")
    return f"{'#':>2} {'layer':<18} {'input':<22} " + " ".join(cols)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m minialex.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=B.NAMES,
                        help="backend to measure (repeatable; default: every CPU backend installed)")
    parser.add_argument("--variant", action="append", metavar="NAME[:BATCH]",
                        help="AlexNet variant and batch size (repeatable; default: torchvision:64 paper:32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure, median taken (>= 5)")
    parser.add_argument("--quick", action="store_true", help="a one-minute run: small:128 and torchvision:8")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer table")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (fresh processes)")
    parser.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    parser.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    parser.add_argument("--probe-memory", choices=["minialex", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error(f"--repeats must be at least 5 (got {args.repeats}): medians of fewer runs are noise")
    return args


def _runs(args):
    if args.variant:
        runs = []
        for spec in args.variant:
            name, _, batch = spec.partition(":")
            runs.append((name, int(batch) if batch else 32))
        return runs
    return QUICK_RUNS if args.quick else DEFAULT_RUNS


def _import_torch(wanted):
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def main(argv=None):
    args = parse_args(argv)
    torch = _import_torch(not args.no_torch)
    if args.probe_memory:
        return probe_memory(args.probe_memory, args.variant[0], args.batch, args.backend[0], torch)
    backends = args.backend or [name for name in ("numpy", "numba") if _loads(name)]
    header = machine_header(torch)
    print("minialex bench " + minialex.__version__)
    for key, value in header.items():
        print(f"  {key}: {value}")
    results = {"header": header, "layers": [], "steps": [], "memory": []}
    rng = np.random.default_rng(0)
    for variant, batch in _runs(args):
        if not args.no_layers:
            print(f"\n== {variant}, batch {batch}: per layer (ms; ratio = minialex / PyTorch) ==")
            print(layer_table_header(backends, torch is not None))
            results["layers"] += bench_layers(variant, batch, backends, torch, args.repeats, rng,
                                              lambda row: print_layer_row(row, backends, torch is not None))
        step = bench_step(variant, batch, backends, torch, args.repeats, rng)
        results["steps"].append(step)
        print(f"\n== {variant}, batch {batch}: training step (forward, backward, SGD) ==")
        for name, seconds in step["step_seconds"].items():
            ratio = f", {seconds / step['step_seconds']['torch']:.2f}x PyTorch" if torch and name != "torch" else ""
            share = (f", kernels {100 * step['kernel_share'][name]:.0f}% of the step"
                     if name in step["kernel_share"] else "")
            print(f"  {name:<6} {seconds:8.3f} s  {batch / seconds:8.1f} images/s{ratio}{share}")
        if args.memory:
            frameworks = [("minialex", name) for name in backends] + ([("torch", "numpy")] if torch else [])
            for framework, name in frameworks:
                mib = peak_memory(framework, variant, batch, name)
                label = f"{framework}/{name}" if framework == "minialex" else "torch"
                results["memory"].append({"variant": variant, "batch": batch, "who": label, "peak_mib": mib})
                print(f"  peak memory {label:<16} {mib:8.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"\nwrote {args.json}")
    return results


def _loads(name):
    try:
        B.get(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
