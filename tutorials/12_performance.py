# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Performance: where the time and the memory go
#
# Before making anything faster, measure. In this tutorial:
#
# 1. a training step of the `small` AlexNet, profiled layer by layer;
# 2. the machine's limits: how fast it multiplies float32 matrices (GEMM) and copies memory, and
#    the **roofline** that follows, with AlexNet's own GEMMs placed on it;
# 3. where the memory of a training step goes: parameters, gradients, optimizer state, and the
#    arrays autograd keeps for backward (including im2col's columns).
#
# All numbers depend on the machine and on how busy it is: run this on yours.

# %%
import sys
import time

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex import bench, nn, optim
from minialex.models import alexnet, summary
from minialex.nn import functional as F
from minialex.tensor import Tensor

np.set_printoptions(precision=4, suppress=True, linewidth=100)
minialex.set_backend("numba")
MiB = 2 ** 20


# %% [markdown]
# The machine first: timings mean little without the number of threads and the BLAS library
# (and, for OpenBLAS, the core type it chose, which `OPENBLAS_CORETYPE` can force).

# %%
header = bench.machine_header(None)
for key, value in header.items():
    print(f"{key:>18}: {value}")
blas_threads = header["blas"][0]["num_threads"] if isinstance(header["blas"], list) and header["blas"] else "?"

# %% [markdown]
# ## 1. A training step, layer by layer
#
# `minialex.bench.bench_layers` times every layer of a model at the shapes it sees: forward alone,
# and forward + backward, each the median of several runs after a warm-up. (It is what
# `python -m minialex.bench` prints; here for the `small` AlexNet on the Numba backend.)

# %%
batch = 8 if FAST else 128
repeats = 1 if FAST else 5
rows = bench.bench_layers("small", batch, ["numba"], None, repeats, np.random.default_rng(0), report=lambda row: None)

print(f"small AlexNet, batch {batch}, float32, times in ms (median of {repeats})")
print(f"{'#':>2} {'layer':<18}{'input':<20}{'forward':>9}{'backward':>10}{'total':>8}{'share':>7}")
totals = np.array([r["times"]["numba/forward+backward"] for r in rows])
for r, total in zip(rows, totals):
    fwd = r["times"]["numba/forward"]
    bwd = max(total - fwd, 0.0)      # backward = (forward + backward) - forward; timing noise can make it < 0
    print(f"{r['index']:>2} {r['layer']:<18}{str(tuple(r['input'][1:])):<20}{fwd * 1e3:9.2f}{bwd * 1e3:10.2f}"
          f"{total * 1e3:8.2f}{100 * total / totals.sum():6.0f}%")
print(f"sum of the layers: {totals.sum() * 1e3:.1f} ms")

# %%
labels = [f"{r['index']} {r['layer']}" for r in rows]
fwd = np.array([r["times"]["numba/forward"] for r in rows]) * 1e3
bwd = np.maximum(totals * 1e3 - fwd, 0)
fig, ax = plt.subplots(figsize=(9, 5))
y = np.arange(len(rows))[::-1]
ax.barh(y, fwd, label="forward")
ax.barh(y, bwd, left=fwd, label="backward")
ax.set_yticks(y, labels, fontsize=8)
ax.set(xlabel="milliseconds", title=f"small AlexNet, batch {batch}, numba backend: time per layer")
ax.legend()
ax.grid(axis="x", alpha=0.3)
save(fig, "12_layer_times.png")

# %% [markdown]
# ![Horizontal bars, one per layer of the small AlexNet at batch 128, split into forward and
# backward time: the five convolutions take most of the time, conv2 (layer 4) by far the longest,
# each with a backward two or more times its forward; the first two max-pools come next; ReLU,
# LRN, dropout, flatten and the linear layers are thin or invisible](images/12_layer_times.png)
#
# The convolutions dominate, and within each, backward costs two or more times the forward: it
# does two GEMMs as large as the forward's one (gradient of the weight, gradient of the input),
# plus col2im and the transposes around them.
#
# A whole step (forward, loss, backward, SGD update) costs about the sum of its layers.
# `bench.step_breakdown` wraps every kernel of the backend, and the `matmul` through which every op
# does its GEMMs, with a timer: the rest of the step is Python, the optimizer's array arithmetic and
# the copies between them.

# %%
step = bench.bench_step("small", batch, ["numba"], None, repeats, np.random.default_rng(0))
seconds = step["step_seconds"]["numba"]
print(f"one training step: {seconds * 1e3:.0f} ms, {batch / seconds:.0f} images/s")
parts = step["breakdown"]["numba"]
print(f"GEMM (BLAS): {100 * parts['gemm']:.0f}% of the step; minialex's kernels (im2col, col2im, "
      f"pooling, LRN, ...): {100 * parts['kernels']:.0f}%; the rest: {100 * parts['other']:.0f}%")

# %% [markdown]
# ## 2. The roofline of this machine
#
# Every computation needs arithmetic and memory traffic. A processor has a peak for each: GFLOP/s
# (billions of floating-point operations per second) and GB/s. Their ratio decides which one
# limits a given computation, according to its **arithmetic intensity** (FLOPs per byte moved):
#
#     attainable GFLOP/s = min(peak GFLOP/s, bandwidth GB/s x intensity)
#
# That is the *roofline* (Williams, Waterman and Patterson, 2009). Let us measure both peaks.
# GEMM of two `n x n` float32 matrices does `2 n³` FLOPs:

# %%
def best_time(fn, repeats):
    fn()                                          # warm-up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best

rng = np.random.default_rng(0)
sizes = (64, 128, 256) if FAST else (64, 128, 256, 512, 1024, 2048)
gemm = {}
for n in sizes:
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    t = best_time(lambda: a @ b, 3 if FAST else 5)
    gemm[n] = 2 * n ** 3 / t / 1e9
    print(f"float32 GEMM {n:>4} x {n:<4}: {t * 1e3:8.2f} ms  {gemm[n]:7.1f} GFLOP/s")

big = np.ones((8 if FAST else 64) * MiB // 4, dtype=np.float32)      # far larger than the CPU's caches
out = np.empty_like(big)
t = best_time(lambda: np.copyto(out, big), 3 if FAST else 5)
bandwidth = 2 * big.nbytes / t / 1e9                     # every byte read once and written once
print(f"memory: copying {big.nbytes // MiB} MiB takes {t * 1e3:.2f} ms: {bandwidth:.1f} GB/s")

# %% [markdown]
# On an idle machine the speed grows with `n`: a small GEMM has too little work to fill every
# core's vector units, and overheads that do not shrink with `n`. If your larger sizes come out
# *slower* than the middle ones, the machine is busy: other processes share its caches and memory
# bandwidth, and large matrices, which do not fit in the caches, suffer most (the committed
# picture below was drawn on such a machine). Now AlexNet's own GEMMs. A convolution's forward GEMM
# multiplies `weight (OC/G, C/G*KH*KW)` by `cols (C/G*KH*KW, N*OH*OW)`; a linear layer multiplies
# `x (N, in)` by `W.T (in, out)`. For each, its intensity (FLOPs per byte of the three matrices)
# and its measured speed:

# %%
def layer_gemms(model, input_shape, batch):
    rows_ = summary(model, input_shape, verbose=False)
    modules = dict(model.named_modules())
    gemms = []
    for r in rows_:
        m = modules[r["name"]]
        if isinstance(m, nn.Conv2d):
            OC, OH, OW = r["output_shape"]
            K = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            gemms.append((r["name"], OC // m.groups, K, batch * OH * OW))
        elif isinstance(m, nn.Linear):
            gemms.append((r["name"], batch, m.in_features, m.out_features))
    return gemms

minialex.manual_seed(0)
small = alexnet("small")
points = []
print(f"{'layer':<14}{'GEMM (M x K) @ (K x N)':>28}{'FLOP/byte':>11}{'GFLOP/s':>9}{'vs best square':>15}")
for name, M, K, Ncols in layer_gemms(small, (3, 32, 32), batch):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, Ncols)).astype(np.float32)
    t = best_time(lambda: a @ b, 3 if FAST else 5)
    flops = 2 * M * K * Ncols
    intensity = flops / (4 * (M * K + K * Ncols + M * Ncols))
    points.append((name, intensity, flops / t / 1e9))
    print(f"{name:<14}{f'({M} x {K}) @ ({K} x {Ncols})':>28}{intensity:11.1f}{flops / t / 1e9:9.1f}"
          f"{100 * flops / t / 1e9 / max(gemm.values()):14.0f}%")
peak = max(list(gemm.values()) + [speed for _, _, speed in points])      # the best GEMM speed measured
print(f"peak (best GEMM measured): {peak:.1f} GFLOP/s; ridge point: {peak / bandwidth:.1f} FLOP/byte "
      "(below it memory limits, above it arithmetic)")

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
ai = np.logspace(-1, 3, 200)
ax.loglog(ai, np.minimum(peak, bandwidth * ai), "k-", lw=2, label="roofline: min(peak, bandwidth x intensity)")
ax.loglog([n / 6 for n in gemm], list(gemm.values()), "s--", color="grey", label="square GEMM n x n (intensity n/6)")
for n, (x_, y_) in zip(gemm, zip([n / 6 for n in gemm], gemm.values())):
    ax.annotate(str(n), (x_, y_), textcoords="offset points", xytext=(4, -10), fontsize=7, color="grey")
for name, x_, y_ in points:
    ax.loglog(x_, y_, "o", color="tab:red" if name.startswith("features") else "tab:blue")
    ax.annotate(name, (x_, y_), textcoords="offset points", xytext=(4, 4), fontsize=7)
ax.plot([], [], "o", color="tab:red", label=f"small AlexNet conv GEMMs (batch {batch})")
ax.plot([], [], "o", color="tab:blue", label="small AlexNet linear GEMMs")
ax.set(xlabel="arithmetic intensity (FLOP per byte)", ylabel="GFLOP/s (float32)",
       title=f"roofline: peak {peak:.0f} GFLOP/s (best GEMM), {bandwidth:.0f} GB/s (copy); {blas_threads} BLAS thread(s)")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=7, loc="lower right")
save(fig, "12_roofline.png")

# %% [markdown]
# ![Log-log roofline measured on a busy machine with one BLAS thread: a sloped line (the copy
# bandwidth) meeting a flat line (the best GEMM measured); square GEMMs reach the roof at n = 256
# and fall to about a quarter of it from n = 512 on; the small AlexNet's convolution GEMMs sit at
# high intensity at about a fifth of the roof; two of its linear layers near the roof, the last one
# at low intensity](images/12_roofline.png)
#
# The roof here is drawn from two measurements: the best GEMM speed we saw, and the bandwidth of
# a copy too large for the caches. Small matrices fit in the caches, which are faster than main
# memory, so a small GEMM can sit above the memory part of this roof.
#
# The convolution GEMMs have high intensity (their weights are reused at every pixel of every
# image), so arithmetic should limit them, not memory: they run as fast as this BLAS runs a GEMM of
# their size and shape (long and thin: `N*OH*OW` columns). The fully connected layers reuse each
# weight only `batch` times, so at small batches they are bound by memory. im2col, col2im, pooling, LRN and ReLU do one or two FLOPs per element they touch: far left
# on the roofline, memory-bound, which is why Numba's single pass over memory (tutorial 10) helps
# them and nothing helps a GEMM but a better BLAS or a GPU.

# %% [markdown]
# ## 3. Where the memory goes
#
# A training step holds four kinds of arrays:
#
# * the **parameters**, and a **gradient** of the same size for each;
# * the **optimizer state**: SGD with momentum keeps one velocity per parameter (Adam two);
# * everything **autograd saves for backward**: the input of each convolution and its im2col
#   columns, the output of each ReLU, the input, output and scale of each LRN, the argmax of each
#   max-pool, each dropout mask, the input of each linear layer.
#
# We can measure the last kind exactly: after the forward pass, walk the graph from the loss and
# add up the arrays every `Function` saved (counting an array and its views once).

# %%
def base_of(array):
    while getattr(array, "base", None) is not None:
        array = array.base
    return array

def saved_for_backward(loss, exclude=()):
    """{"Function: array name": bytes} of the arrays saved in the graph behind ``loss`` (views counted once)."""
    counted = {id(base_of(a)) for a in exclude}
    per_kind, seen, stack = {}, set(), [loss]
    while stack:
        fn = stack.pop()._ctx
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        for name, array in (getattr(fn, "saved", None) or {}).items():   # (a Function that saved nothing has no .saved)
            base = base_of(array)
            if hasattr(base, "nbytes") and id(base) not in counted:
                counted.add(id(base))
                key = f"{type(fn).__name__}: {name}"
                per_kind[key] = per_kind.get(key, 0) + base.nbytes
        stack.extend(t for t in fn.inputs if isinstance(t, Tensor))
    return per_kind

memory_batch = 32 if FAST else 128
minialex.manual_seed(0)
model = alexnet("small").train()
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
images = minialex.tensor(rng.standard_normal((memory_batch, 3, 32, 32)).astype(np.float32))
loss = F.cross_entropy(model(images), rng.integers(0, 10, memory_batch))
saved = saved_for_backward(loss, exclude=[p.data for p in model.parameters()])
loss.backward()
opt.step()

param_bytes = sum(p.data.nbytes for p in model.parameters())
grad_bytes = sum(p.grad.data.nbytes for p in model.parameters())
state_bytes = sum(a.nbytes for s in opt.state for a in s.values())
print(f"small AlexNet, batch {memory_batch}, float32")
print(f"{'parameters':<44}{param_bytes / MiB:9.2f} MiB")
print(f"{'gradients':<44}{grad_bytes / MiB:9.2f} MiB")
print(f"{'SGD momentum buffers':<44}{state_bytes / MiB:9.2f} MiB")
for kind, nbytes in sorted(saved.items(), key=lambda kv: -kv[1]):
    if nbytes >= 0.01 * MiB:                                     # (leave out a few scalars)
        print(f"{'saved for backward, ' + kind:<44}{nbytes / MiB:9.2f} MiB")
print(f"{'total':<44}{(param_bytes + grad_bytes + state_bytes + sum(saved.values())) / MiB:9.2f} MiB")

# %% [markdown]
# `Conv2d: cols` is im2col's columns, kept for the backward pass: the largest single item. An array
# kept by two `Function`s is counted once, under the first one met walking back from the loss:
# ReLU's output is also the input that the next LRN keeps, so it appears as `LocalResponseNorm: x`.
#
# For a small network at a real batch size, the arrays saved for backward outweigh the parameters:
# memory grows with the batch, and most of it is activations and im2col columns (`Conv2d` saves
# both its input and its columns when the batch fits in one chunk, tutorial 04). For the full
# AlexNet the balance shifts: 61 million parameters are 233 MiB, times three with gradients and
# momentum, and the activations of a batch of 128 at 227x227 add about as much again, plus the
# im2col columns. From `summary` (outputs of every layer, per image):

# %%
if FAST:
    print("(fast mode: the paper's network is not built here; run without MINIALEX_TUTORIAL_FAST=1)")
else:
    minialex.manual_seed(0)
    with minialex.backend_scope("numpy"):
        paper = alexnet("paper")
        per_image = summary(paper, (3, 227, 227), verbose=False).totals
    P = per_image["params"] * 4
    print(f"paper AlexNet: parameters {P / MiB:.0f} MiB, + gradients {P / MiB:.0f} MiB, + momentum {P / MiB:.0f} MiB")
    print(f"layer outputs: {per_image['activation_memory'] / MiB:.2f} MiB per image, "
          f"{128 * per_image['activation_memory'] / MiB:.0f} MiB for a batch of 128")

# %% [markdown]
# What can be done, and what minialex does:
#
# * **chunked im2col** bounds the columns of one GEMM (`set_im2col_budget`, tutorial 04); when
#   a batch needs several chunks, backward recomputes the columns instead of keeping them;
# * `no_grad()` for evaluation: nothing is saved at all (tutorial 01);
# * the graph is freed as `backward()` walks it, so peak memory is one graph;
# * a smaller batch divides the activation memory; the parameters stay.

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/bench.py`: `bench_layers` and `layer_candidates` (per-layer timings),
#   `interleaved_medians`, `bench_step` and `step_breakdown` (a whole step, and its GEMM and kernel shares),
#   `machine_header`; `python -m minialex.bench` (also against PyTorch, and peak memory with `--memory`).
# - `minialex/models/summary.py`: `summary` (per-layer outputs, parameters, multiply-adds, memory).
# - `minialex/ops/conv.py`: `Conv2d._images_per_chunk`, `set_im2col_budget` (the chunks), and what
#   `Conv2d.forward` saves (`x`, `weight`, `cols`).
# - `minialex/tensor.py`: `Function.save` and `Tensor.backward` (which frees each node's saved
#   arrays as it goes).
# - `minialex/optim.py`: `SGD` (the `momentum_buffer` per parameter).
# - `minialex/backend/numba_cpu.py`: the memory-bound kernels, compiled.
#
# This is the last tutorial. Next, write some of these layers yourself: the assignments in
# `tutorials/assignments/` (`python -m minialex.assignments list`).
