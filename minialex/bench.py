"""``python -m minialex.bench``: how fast is minialex, layer by layer and per training step, against
PyTorch in the same run?

For each AlexNet variant asked for (``--variant``; default torchvision at batch 64 and paper at batch
32 on the CPU, torchvision at batch 128 on the GPU) and each backend (``--backend``, default every
CPU backend installed; ``--backend cupy`` for the GPU):

* per layer: forward time and forward+backward time, at the shapes the layer sees in the model;
* per training step (forward, cross-entropy, backward, SGD with momentum): time and images/s, and
  how the step divides into GEMM, minialex's kernels, and the rest (Python, the optimizer, copies);
* peak memory of a training step, each framework in its own process (``--memory``): resident
  memory on the CPU, bytes allocated on the GPU;
* on the GPU, the memory bandwidth of the memory-bound kernels (ReLU, dropout, max-pool, LRN),
  against a device-to-device copy of as many bytes.

When PyTorch is importable, every measurement is repeated on the same shapes with PyTorch (the model
is translated layer by layer, weights copied) and a ratio column shows minialex / PyTorch: PyTorch
on the CPU for the CPU backends, PyTorch on the GPU (cuDNN, fp32: TF32 off) for cupy. minialex
and PyTorch runs are interleaved, warm-up runs are excluded, and each figure is the median of
``--repeats`` runs (at least 5). A GPU call returns before the GPU has finished, so every timed
call ends by waiting for its device (``synchronizer``). ``--quick`` measures the small variant and
torchvision at a small batch in about a minute. ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
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
from minialex.ops._args import output_size

DEFAULT_RUNS = [("torchvision", 64), ("paper", 32)]
GPU_RUNS = [("torchvision", 128)]
QUICK_RUNS = [("small", 128), ("torchvision", 8)]
GPU_STEP_TARGET = 1.5            # issue #6: a GPU training step within 1.5x PyTorch's (cuDNN, fp32)
BANDWIDTH_SHAPE = (128, 96, 55, 55)  # conv1's output in AlexNet at batch 128
BANDWIDTH_TARGET = 0.5           # issue #6: the memory-bound kernels at >= 50% of a copy's bandwidth


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def machine_header(torch) -> dict:
    """Threads, BLAS library and core type: the numbers needed to compare figures across machines."""
    header = {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
              **{var: os.environ.get(var, "(unset)") for var in ("OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT")}}
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


def gpu_header(torch) -> dict:
    """The GPU, CuPy's CUDA, and the settings PyTorch runs with on the GPU."""
    xp = B.get("cupy").xp
    props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
    header = {"gpu": props["name"].decode(),
              "cupy": f"{xp.__version__}, CUDA runtime {xp.cuda.runtime.runtimeGetVersion()}"}
    if _torch_on_gpu(torch):
        cudnn = torch.backends.cudnn
        header["torch_gpu"] = (f"CUDA {torch.version.cuda}, cuDNN {cudnn.version()}, fp32: cudnn.allow_tf32="
                               f"{cudnn.allow_tf32}, cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; "
                               f"cudnn.benchmark={cudnn.benchmark} (cuDNN picks its fastest algorithm per shape)")
    else:
        header["torch_gpu"] = "PyTorch with CUDA not importable: no PyTorch comparison on the GPU"
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


def torch_model(model, torch, device):
    return torch.nn.Sequential(*[torch_layer(layer, torch) for layer in model_layers(model)]).to(device)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def synchronizer(name, device, torch=None):
    """A function that waits until the work ``name`` (a backend, or "torch") queued on ``device`` is
    done. A GPU call returns as soon as its kernels are queued: every timed call ends with this."""
    if device != "cuda":
        return lambda: None
    if name == "torch":
        return torch.cuda.synchronize
    stream = B.get(name).xp.cuda.get_current_stream
    return lambda: stream().synchronize()


def synced(fn, sync):
    """``fn`` followed by ``sync``: timed, it takes until its work is done."""
    def call():
        fn()
        sync()
    return call


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


def layer_candidates(layer, x_shape, backends, torch, rng, device="cpu"):
    """Zero-argument functions timing forward and forward+backward of one layer on each framework."""
    x_host = rng.standard_normal(x_shape).astype(np.float32)
    candidates = {}
    for name in backends:
        sync = synchronizer(name, device)
        with B.backend_scope(name):
            x = minialex.tensor(x_host, requires_grad=True)
            gy = minialex.tensor(np.ones(layer(x).shape, dtype=np.float32))

        def forward(name=name, x=x):
            with B.backend_scope(name):
                layer(x)

        def forward_backward(name=name, x=x, gy=gy):
            with B.backend_scope(name):
                layer(x).backward(gy)

        candidates[(name, "forward")] = synced(forward, sync)
        candidates[(name, "forward+backward")] = synced(forward_backward, sync)
    if torch is not None:
        sync = synchronizer("torch", device, torch)
        twin = torch_layer(layer, torch).to(device)
        tx = torch.from_numpy(x_host).to(device).requires_grad_(True)
        tgy = torch.ones(twin(tx).shape, device=device)
        candidates[("torch", "forward")] = synced(lambda: twin(tx), sync)
        candidates[("torch", "forward+backward")] = synced(lambda: twin(tx).backward(tgy), sync)
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


def step_breakdown(model, optimizer, x, target, backend_, sync=lambda: None, steps=3) -> dict:
    """Shares of a training step, over ``steps`` steps: ``gemm`` (the array module's ``matmul``,
    through which every op does its GEMMs), ``kernels`` (the backend's kernels) and ``other`` (the
    rest: Python, copies and transposes, the loss)."""
    spent = {"gemm": 0.0, "kernels": 0.0}
    kernels_module, xp = backend_.kernels, backend_.xp
    originals = {name: getattr(kernels_module, name) for name in kernels_module.KERNELS}
    original_matmul = xp.matmul

    def timed(fn, part):
        def wrapper(*args, **kwargs):
            sync()  # on a GPU: the work queued before is not this call's
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            sync()
            spent[part] += time.perf_counter() - start
            return result
        return wrapper

    for name, fn in originals.items():
        setattr(kernels_module, name, timed(fn, "kernels"))
    xp.matmul = timed(original_matmul, "gemm")
    try:
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            training_step(model, optimizer, x, target)
        sync()
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(kernels_module, name, fn)
        xp.matmul = original_matmul
    shares = {part: seconds / total for part, seconds in spent.items()}
    shares["other"] = 1 - shares["gemm"] - shares["kernels"]
    return shares


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


def bench_layers(variant, batch, backends, torch, repeats, rng, report, device="cpu"):
    with B.backend_scope(backends[0]):  # the model on the backends' device
        model, shape = build(variant, batch)
        model.train()
        x = minialex.tensor(np.zeros(shape, dtype=np.float32))
    rows = []
    for index, layer in enumerate(model_layers(model)):
        medians = interleaved_medians(layer_candidates(layer, x.shape, backends, torch, rng, device), repeats)
        row = {"variant": variant, "batch": batch, "index": index, "layer": repr(layer).split("(")[0],
               "input": list(x.shape), "times": {f"{fw}/{what}": t for (fw, what), t in medians.items()}}
        rows.append(row)
        report(row)
        with B.backend_scope(backends[0]), minialex.no_grad():
            x = layer(x)
    return rows


def bench_step(variant, batch, backends, torch, repeats, rng, device="cpu"):
    model, shape = build(variant, batch)
    x_host = rng.standard_normal(shape).astype(np.float32)
    target_host = rng.integers(0, model.config["num_classes"], batch)
    candidates, breakdowns = {}, {}
    for name in backends:
        with B.backend_scope(name):
            m, _ = build(variant, batch)
            opt = minialex.optim.SGD(m.parameters(), 0.01, momentum=0.9)
            x, target = minialex.tensor(x_host), minialex.tensor(target_host)

            def step(name=name, m=m, opt=opt, x=x, target=target):
                with B.backend_scope(name):
                    training_step(m, opt, x, target)

            sync = synchronizer(name, device)
            synced(step, sync)()
            breakdowns[name] = step_breakdown(m, opt, x, target, B.get(name), sync)
            candidates[name] = synced(step, sync)
    if torch is not None:
        twin = torch_model(model, torch, device)
        topt = torch.optim.SGD(twin.parameters(), 0.01, momentum=0.9)
        tx, ttarget = torch.from_numpy(x_host).to(device), torch.from_numpy(target_host).to(device)
        candidates["torch"] = synced(lambda: torch_training_step(twin, topt, tx, ttarget, torch),
                                     synchronizer("torch", device, torch))
    medians = interleaved_medians(candidates, repeats)
    return {"variant": variant, "batch": batch, "device": device, "step_seconds": medians,
            "images_per_second": {k: batch / t for k, t in medians.items()}, "breakdown": breakdowns}


def peak_memory(framework, variant, batch, backend_name) -> list[float]:
    """Peak memory (MiB) of a process that runs three training steps, measured in a fresh process:
    [resident] on the CPU; [allocated, reserved] on the GPU (``backend_name`` "cupy"), see ``probe_memory``."""
    code = (f"import sys; sys.argv = ['bench', '--probe-memory', {framework!r}, '--variant', {variant!r}, "
            f"'--batch', '{batch}', '--backend', {backend_name!r}]; from minialex.bench import main; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.strip().splitlines()[-1].split()]


def cupy_peak_hook(xp):
    """A CuPy memory hook recording the largest ``used_bytes()`` of CuPy's memory pool: the GPU memory
    held by live arrays at the peak, what ``torch.cuda.max_memory_allocated`` reports for PyTorch."""
    pool = xp.get_default_memory_pool()

    class PeakHook(xp.cuda.MemoryHook):
        name = "PeakHook"
        peak = 0

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, pool.used_bytes())

    return PeakHook()


def peak_resident_mib() -> float:
    """This process's peak resident memory in MiB. Linux's VmHWM (/proc/self/status), not getrusage's
    ru_maxrss: a process started by fork + exec inherits its parent's ru_maxrss, so a probe started by
    a 3 GiB benchmark would report at least 3 GiB, whatever it used."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024                 # kB -> MiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def probe_memory(framework, variant, batch, backend_name, torch):
    """Print the peak memory in MiB of three training steps. On the CPU: resident memory. On the GPU:
    bytes allocated at the peak, then bytes reserved (held by the allocator's cache): CuPy's memory
    pool against PyTorch's caching allocator."""
    on_gpu = backend_name == "cupy"
    rng = np.random.default_rng(0)
    model, shape = build(variant, batch)
    x_host = rng.standard_normal(shape).astype(np.float32)
    target_host = rng.integers(0, model.config["num_classes"], batch)
    if framework == "torch":
        device = "cuda" if on_gpu else "cpu"
        twin = torch_model(model, torch, device)
        del model
        opt = torch.optim.SGD(twin.parameters(), 0.01, momentum=0.9)
        for _ in range(3):
            torch_training_step(twin, opt, torch.from_numpy(x_host).to(device),
                                torch.from_numpy(target_host).to(device), torch)
        if on_gpu:
            return print(torch.cuda.max_memory_allocated() / 2**20, torch.cuda.max_memory_reserved() / 2**20)
    else:
        B.set_backend(backend_name)
        hook = cupy_peak_hook(B.current().xp) if on_gpu else contextlib.nullcontext()
        with hook:
            model, _ = build(variant, batch)
            opt = minialex.optim.SGD(model.parameters(), 0.01, momentum=0.9)
            for _ in range(3):
                training_step(model, opt, minialex.tensor(x_host), minialex.tensor(target_host))
        if on_gpu:  # the pool keeps what it allocated: its total is the reserved high-water mark
            return print(hook.peak / 2**20, B.current().xp.get_default_memory_pool().total_bytes() / 2**20)
    print(peak_resident_mib())


# ---------------------------------------------------------------------------------------------
# Memory bandwidth of the memory-bound kernels
# ---------------------------------------------------------------------------------------------


POOL = (3, 3, 2, 2, 0, 0, 1, 1)  # max-pool KH, KW, SH, SW, PH, PW, DH, DW: AlexNet's 3x3, stride 2
LRN = (5, 1e-4, 0.75, 2.0)       # LRN size, alpha, beta, k: AlexNet's


def kernel_calls(kernels, xp, shape) -> dict:
    """{"relu forward": [(kernel, args), ...], ...}: the calls of the memory-bound kernels, with
    numpy_ref's signatures, on float32 data of ``shape`` (N, C, H, W) in array module ``xp``. Each
    call sequence has been run once, in order: a backward reads what its forward wrote."""
    N, C, H, W = shape
    rng = np.random.default_rng(0)
    x, gy = (xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for _ in range(2))
    y, gx = xp.empty_like(x), xp.empty_like(x)
    mask = xp.empty(shape, dtype=np.uint8)
    KH, KW, SH, SW, PH, PW, DH, DW = POOL
    pooled_shape = (N, C, output_size(H, KH, SH, PH, DH, False, "bench max-pool", "H"),
                    output_size(W, KW, SW, PW, DW, False, "bench max-pool", "W"))
    pooled, argmax = xp.empty(pooled_shape, dtype=np.float32), xp.empty(pooled_shape, dtype=np.int32)
    g_pooled = xp.asarray(rng.standard_normal(pooled_shape, dtype=np.float32))
    scale = xp.empty_like(x)
    x3, y3, gy3, gx3, scale3 = (a.reshape(N, C, H * W) for a in (x, y, gy, gx, scale))  # LRN's (N, C, L)
    size, alpha, beta, k = LRN
    K, keep_scale = kernels, np.float32(2.0)  # dropout with p = 0.5 scales what it keeps by 2
    calls = {
        "relu forward": [(K.relu_forward, (x, y))],
        "relu backward": [(K.relu_backward, (gy, y, gx))],
        "dropout forward": [(K.dropout_mask, (1234, 0, 0.5, mask.reshape(-1))),
                            (K.dropout_apply, (x, mask, keep_scale, y))],
        "dropout backward": [(K.dropout_apply, (gy, mask, keep_scale, gx))],
        "max-pool forward": [(K.maxpool2d_forward, (x, *POOL, pooled, argmax))],
        "max-pool backward": [(K.maxpool2d_backward, (g_pooled, argmax, *POOL, gx))],
        "LRN forward": [(K.lrn_forward, (x3, size, alpha, beta, k, y3, scale3))],
        "LRN backward": [(K.lrn_backward, (x3, y3, scale3, gy3, size, alpha, beta, gx3))],
    }
    for sequence in calls.values():
        run_calls(sequence)
    return calls


def run_calls(sequence):
    for kernel, args in sequence:
        kernel(*args)


def traffic(sequence) -> int:
    """Bytes a call sequence moves at the least: each array argument read or written once (a window
    read by several threads, as max-pool's, counts once: the caches serve the rest)."""
    return sum(a.nbytes for _, args in sequence for a in args if getattr(a, "ndim", 0))


def bench_bandwidth(name, repeats, shape=BANDWIDTH_SHAPE) -> list:
    """For each memory-bound kernel of backend ``name``: GB/s (bytes read and written / time), and
    its share of the GB/s of copying as many bytes (``dst[...] = src``), timed interleaved."""
    backend = B.get(name)
    sync = synchronizer(name, backend.device)
    rows = []
    for kernel, sequence in kernel_calls(backend.kernels, backend.xp, shape).items():
        moved = traffic(sequence)
        src = backend.xp.zeros(moved // 8, dtype=np.float32)  # float32, as the kernels: a copy of bytes
        dst = backend.xp.empty_like(src)                       # would be slower than the GPU can copy

        def copy(dst=dst, src=src):
            dst[...] = src

        medians = interleaved_medians({"kernel": synced(lambda s=sequence: run_calls(s), sync),
                                       "copy": synced(copy, sync)}, repeats)
        gb_per_s = moved / medians["kernel"] / 1e9
        copy_gb_per_s = (src.nbytes + dst.nbytes) / medians["copy"] / 1e9  # read src, write dst
        rows.append({"backend": name, "kernel": kernel, "shape": list(shape), "bytes": moved,
                     "seconds": medians["kernel"], "gb_per_s": gb_per_s, "copy_gb_per_s": copy_gb_per_s,
                     "of_copy": gb_per_s / copy_gb_per_s})
    return rows


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
                        help="backend to measure (repeatable; default: every CPU backend installed; "
                             "cupy: the GPU, against PyTorch on the GPU)")
    parser.add_argument("--variant", action="append", metavar="NAME[:BATCH]",
                        help="AlexNet variant and batch size (repeatable; default: torchvision:64 paper:32 "
                             "on the CPU, torchvision:128 on the GPU)")
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


def _runs(args, device):
    if args.variant:
        runs = []
        for spec in args.variant:
            name, _, batch = spec.partition(":")
            runs.append((name, int(batch) if batch else 32))
        return runs
    if args.quick:
        return QUICK_RUNS
    return GPU_RUNS if device == "cuda" else DEFAULT_RUNS


def _import_torch(wanted, gpu):
    """PyTorch, or None. Opposite the GPU backend, PyTorch runs cuDNN in fp32: TF32 (a 10-bit
    mantissa, which PyTorch allows in cuDNN's convolutions by default) off, and in benchmark mode
    (cuDNN times its algorithms on each new shape and keeps the fastest)."""
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    if gpu and torch.cuda.is_available():
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    return torch


def _torch_on_gpu(torch) -> bool:
    return torch is not None and torch.cuda.is_available()


def check_backends(backends):
    """One line ``error: ...`` and exit code 2 for a backend that cannot run here (cupy without a
    GPU, numba not installed), with the messages of ``python -m minialex.train``."""
    from minialex.train import UsageError, _set_backend

    for name in backends:
        with B.backend_scope("numpy"):  # _set_backend makes it the active backend: restored here
            try:
                _set_backend(name)
            except UsageError as err:
                print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
                raise SystemExit(2) from None


def device_groups(backends) -> dict:
    """{device: [backend names]}: the backends of each device are compared with PyTorch on it."""
    groups = {}
    for name in backends:
        groups.setdefault(B.get(name).device, []).append(name)
    return groups


def bench_variant(variant, batch, device, backends, torch, args, rng, results):
    """The layer table, the training step and (``--memory``) the peak memory of one variant."""
    where = "GPU" if device == "cuda" else "CPU"
    if not args.no_layers:
        print(f"\n== {variant}, batch {batch}, {where}: per layer (ms; ratio = minialex / PyTorch) ==")
        print(layer_table_header(backends, torch is not None))
        results["layers"] += bench_layers(variant, batch, backends, torch, args.repeats, rng,
                                          lambda row: print_layer_row(row, backends, torch is not None), device)
    step = bench_step(variant, batch, backends, torch, args.repeats, rng, device)
    results["steps"].append(step)
    target = f"; target: <= {GPU_STEP_TARGET}x PyTorch (cuDNN, fp32)" if device == "cuda" and torch else ""
    print(f"\n== {variant}, batch {batch}, {where}: training step (forward, backward, SGD){target} ==")
    for name, seconds in step["step_seconds"].items():
        ratio = f", {seconds / step['step_seconds']['torch']:.2f}x PyTorch" if torch and name != "torch" else ""
        parts = step["breakdown"].get(name)
        share = (f"; GEMM {100 * parts['gemm']:.0f}%, kernels {100 * parts['kernels']:.0f}%, "
                 f"other {100 * parts['other']:.0f}% of the step" if parts else "")
        print(f"  {name:<6} {seconds:8.3f} s  {batch / seconds:8.1f} images/s{ratio}{share}")
    if args.memory:
        frameworks = [("minialex", name) for name in backends] + ([("torch", backends[0])] if torch else [])
        for framework, name in frameworks:
            peak = peak_memory(framework, variant, batch, name)
            label = f"{framework}/{name}" if framework == "minialex" else "torch"
            row = {"variant": variant, "batch": batch, "device": device, "who": label, "peak_mib": peak[0]}
            if device == "cuda":  # allocated at the peak, and reserved by the allocator's cache
                row["reserved_mib"] = peak[1]
                print(f"  peak GPU memory {label:<16} {peak[0]:8.0f} MiB allocated, {peak[1]:8.0f} MiB reserved")
            else:
                print(f"  peak memory {label:<16} {peak[0]:8.0f} MiB")
            results["memory"].append(row)


def print_bandwidth(rows):
    shape = "x".join(str(n) for n in rows[0]["shape"])
    print(f"\n== GPU memory bandwidth, float32 {shape}: bytes read + written / time; "
          f"target: >= {BANDWIDTH_TARGET:.0%} of a device-to-device copy ==")
    for row in rows:
        print(f"  {row['kernel']:<18} {row['seconds'] * 1e3:8.3f} ms {row['gb_per_s']:8.1f} GB/s "
              f"{row['of_copy']:6.0%} of a copy ({row['copy_gb_per_s']:.0f} GB/s)", flush=True)


def main(argv=None):
    args = parse_args(argv)
    backends = args.backend or [name for name in ("numpy", "numba") if _loads(name)]
    check_backends(backends)
    groups = device_groups(backends)
    # a probe of minialex's memory does not import PyTorch: its libraries would count in the peak
    torch = _import_torch(not args.no_torch and args.probe_memory != "minialex", gpu="cuda" in groups)
    if args.probe_memory:
        return probe_memory(args.probe_memory, args.variant[0], args.batch, args.backend[0], torch)
    header = machine_header(torch)
    if "cuda" in groups:
        header.update(gpu_header(torch))
    print("minialex bench " + minialex.__version__)
    for key, value in header.items():
        print(f"  {key}: {value}")
    results = {"header": header, "layers": [], "steps": [], "memory": [], "bandwidth": []}
    rng = np.random.default_rng(0)
    for device, names in groups.items():
        twin = torch if device == "cpu" or _torch_on_gpu(torch) else None  # PyTorch on the same device
        for variant, batch in _runs(args, device):
            bench_variant(variant, batch, device, names, twin, args, rng, results)
        if device == "cuda":
            for name in names:
                rows = bench_bandwidth(name, args.repeats)
                print_bandwidth(rows)
                results["bandwidth"] += rows
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
