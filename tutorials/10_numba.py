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
# # 10 · Numba: the same kernels, compiled
#
# minialex's kernels exist three times, with the same names and arguments: readable NumPy
# (`minialex/backend/numpy_ref.py`, the reference), Numba for the CPU
# (`minialex/backend/numba_cpu.py`) and CUDA for the GPU (`kernels/*.cu`, tutorial 11). The ops
# never know which one runs: they ask the backend for `im2col` and call it.
#
# In this tutorial:
#
# 1. the same `im2col` in NumPy and in Numba, side by side, giving the same bits;
# 2. what Numba's just-in-time compiler does: the first call compiles, later calls run machine code,
#    and a disk cache saves the compile in the next process;
# 3. the speed-up, measured on the layers of a small AlexNet.

# %%
import inspect
import sys
import time
from pathlib import Path

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import numba
from numba import njit

import minialex
from minialex.tutorial import FAST  # fast mode, figures: minialex/tutorial.py
from minialex.backend import numba_cpu, numpy_ref

np.set_printoptions(precision=4, suppress=True, linewidth=100)
print(f"numba {numba.__version__}, {numba.get_num_threads()} threads; NumPy {np.__version__}")

# %% [markdown]
# ## 1. One kernel, two languages
#
# The NumPy reference builds `cols` with one strided slice per kernel tap `(kh, kw)`: 121 slices for
# an 11x11 kernel, each copying a whole `(N, C, OH, OW)` block at NumPy speed.

# %%
print(inspect.getsource(numpy_ref.im2col))

# %% [markdown]
# The Numba version is the formula written as plain loops, one element at a time, as you would in
# C. `@njit` compiles it to machine code; `prange` spreads the outer loop over the CPU's cores
# (each row of `cols` is written by exactly one thread, so no two threads write the same element).
# A thin Python wrapper makes sure the arrays are C-contiguous, so the loop is compiled once per
# dtype rather than once per memory layout.

# %%
print(inspect.getsource(numba_cpu._im2col.py_func))      # .py_func: the Python source under @njit
print(inspect.getsource(numba_cpu.im2col))

# %% [markdown]
# The same arguments, the same result, bit for bit (im2col only copies numbers). We also time the
# Numba version's first two calls in this process:

# %%
def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
geometry = (3, 3, 2, 2, 1, 1, 1, 1)                    # KH, KW, SH, SW, PH, PW, DH, DW
cols_numpy = np.full((3 * 3 * 3, 2 * 4 * 4), np.nan, dtype=np.float32)
cols_numba = np.full_like(cols_numpy, np.nan)
numpy_ref.im2col(x, *geometry, cols_numpy)
first_call = timed(numba_cpu.im2col, x, *geometry, cols_numba)
second_call = timed(numba_cpu.im2col, x, *geometry, cols_numba)
print("cols shape:", cols_numba.shape, "| identical:", np.array_equal(cols_numpy, cols_numba))
print(f"numba_cpu.im2col: first call {first_call * 1e3:.1f} ms, second call {second_call * 1e3:.3f} ms")

# %% [markdown]
# ## 2. What the JIT does
#
# Numba compiles a function the first time it is called, for the **types** of the arguments it
# receives (its *signature*). Let us write a tiny kernel of our own, without a cache, and time its
# first calls:

# %%
def sum_of_squares(a):
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * a[i]
    return total

jitted = njit(sum_of_squares)                            # compiled lazily, at the first call
a64 = rng.standard_normal(200_000 if FAST else 1_000_000)

print(f"plain Python:         {timed(sum_of_squares, a64) * 1e3:9.2f} ms")
print(f"jitted, first call:   {timed(jitted, a64) * 1e3:9.2f} ms  (compiles for float64 arrays, then runs)")
print(f"jitted, second call:  {timed(jitted, a64) * 1e3:9.2f} ms  (machine code only)")
print(f"jitted, float32 input:{timed(jitted, a64.astype(np.float32)) * 1e3:9.2f} ms  (a new signature: compiles again)")
print(f"NumPy (a * a).sum():  {timed(lambda v: (v * v).sum(), a64) * 1e3:9.2f} ms")
print("signatures compiled:", jitted.signatures)

# %% [markdown]
# The compile costs hundreds of milliseconds (more on a busy machine); then the loop runs at C
# speed, about a hundred times faster than the same loop in Python, and as fast as NumPy's
# vectorised code or faster (NumPy builds the temporary array `a * a` first).
#
# ### The disk cache
#
# minialex's kernels are declared `@njit(cache=True)`: the machine code is saved next to
# `numba_cpu.py`, in `__pycache__/` (an index `.nbi` and one `.nbc` per signature), and the next
# process loads it instead of compiling. The cache is keyed on the content of `numba_cpu.py`
# itself: editing that file recompiles its kernels once.

# %%
cache_dir = Path(numba_cpu.__file__).parent / "__pycache__"
files = sorted(p.name for p in cache_dir.glob("numba_cpu._im2col*")) if cache_dir.is_dir() else []
print(f"{len(files)} cache files for _im2col in {cache_dir}, e.g.", files[:3])
stats = numba_cpu._im2col.stats
print(f"the first im2col call above ({first_call * 1e3:.1f} ms): loaded from the cache",
      sum(stats.cache_hits.values()), "time(s), compiled", sum(stats.cache_misses.values()), "time(s)")

# %% [markdown]
# That first call paid for loading the machine code from the cache and, being the first parallel
# kernel of the process, for starting Numba's worker threads; compiling a parallel kernel instead
# takes one to a few seconds more. If the line above says "compiled", the cache was cold: the
# first run after installing minialex, or after an edit of `numba_cpu.py`. Run the tutorial again
# and it will say "loaded". Each dtype is its own signature, cached separately. ReLU (a serial
# kernel) in float64, for example, loads in milliseconds:

# %%
relu_stats = numba_cpu._relu_forward.stats
x64 = rng.standard_normal((4, 1000))
first = timed(numba_cpu.relu_forward, x64, np.empty_like(x64))
second = timed(numba_cpu.relu_forward, x64, np.empty_like(x64))
print(f"float64 relu_forward: first call {first * 1e3:.1f} ms, second call {second * 1e3:.3f} ms; "
      f"loaded {sum(relu_stats.cache_hits.values())}, compiled {sum(relu_stats.cache_misses.values())}")

# %% [markdown]
# Two more switches worth knowing:
#
# * `NUMBA_DISABLE_JIT=1` in the environment runs every kernel as plain Python: about a thousand
#   times slower, but you can step through it in a debugger (use tiny shapes);
# * `NUMBA_NUM_THREADS=n` sets how many threads `prange` uses (here:
#   `numba.get_num_threads()` printed at the top).

# %% [markdown]
# ## 3. The speed-up on a small AlexNet
#
# Each kernel of the `small` AlexNet's first block, at the shapes it sees in training, on both
# backends (best of several runs; the first, compiling, call is excluded):

# %%
N = 8 if FAST else 64
repeats = 3 if FAST else 10

def best_of(fn, repeats=repeats):
    fn()                                                  # warm-up: compiles, or loads from the cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

x1 = rng.standard_normal((N, 3, 32, 32)).astype(np.float32)      # the input image batch
a1 = rng.standard_normal((N, 48, 32, 32)).astype(np.float32)     # conv1's output
p1 = rng.standard_normal((N, 48, 15, 15)).astype(np.float32)     # pool1's output: conv2's input
g1 = (5, 5, 1, 1, 2, 2, 1, 1)                                     # conv1, conv2: 5x5, padding 2

def buffers():
    return dict(cols1=np.empty((3 * 25, N * 32 * 32), np.float32), cols2=np.empty((48 * 25, N * 15 * 15), np.float32),
                gx2=np.empty_like(p1), y=np.empty_like(a1), scale=np.empty((N, 48, 32 * 32), np.float32),
                pool=np.empty((N, 48, 15, 15), np.float32), argmax=np.empty((N, 48, 15, 15), np.int32))

cases = [
    ("im2col, conv1", lambda K, b: K.im2col(x1, *g1, b["cols1"])),
    ("im2col, conv2", lambda K, b: K.im2col(p1, *g1, b["cols2"])),
    ("col2im, conv2 (backward)", lambda K, b: K.col2im(b["cols2"], *g1, b["gx2"])),
    ("relu_forward, conv1", lambda K, b: K.relu_forward(a1, b["y"])),
    ("lrn_forward, conv1", lambda K, b: K.lrn_forward(a1.reshape(N, 48, -1), 5, 5e-4, 0.75, 2.0,
                                                       b["y"].reshape(N, 48, -1), b["scale"])),
    ("maxpool2d_forward 3/2, pool1", lambda K, b: K.maxpool2d_forward(a1, 3, 3, 2, 2, 0, 0, 1, 1, b["pool"], b["argmax"])),
]
print(f"batch {N}, float32, {numba.get_num_threads()} Numba threads; times in ms")
print(f"{'kernel':<30}{'numpy':>9}{'numba':>9}{'speed-up':>10}")
bufs = {"numpy": buffers(), "numba": buffers()}
for name, call in cases:
    t_numpy = best_of(lambda: call(numpy_ref, bufs["numpy"]))
    t_numba = best_of(lambda: call(numba_cpu, bufs["numba"]))
    print(f"{name:<30}{t_numpy * 1e3:9.2f}{t_numba * 1e3:9.2f}{t_numpy / t_numba:9.1f}x")
print("same results:", all(np.allclose(bufs["numpy"][k], bufs["numba"][k], rtol=1e-5, atol=1e-6) for k in bufs["numpy"]))

# %% [markdown]
# The kernels that NumPy writes as many whole-array operations (LRN's window sums, max-pool's
# scan over the taps, col2im's additions) gain the most: Numba does one pass over memory where
# NumPy makes several temporary arrays. im2col gains little or nothing: NumPy's strided copies are
# already a loop in C, and on a machine whose cores are busy with other work, a parallel kernel
# can even lose (its threads wait for each other). Measure on your machine: the numbers above
# depend on its cores, its memory and its load.
#
# What this means for a whole training step (kernels, plus GEMMs that both backends run through
# the same BLAS, plus Python) is measured in tutorial 12 and by `python -m minialex.bench`.
#
# ### Choosing the backend
#
# `minialex.set_backend("numba")` (the default when Numba is installed), the
# `with minialex.backend_scope("numpy"):` block, or `MINIALEX_BACKEND=numpy` in the environment.
# A whole forward and backward pass, both ways. Both run their GEMMs through the same BLAS, so the
# difference is only the kernels' share of the step (tutorial 12 measures that share):

# %%
from minialex.models import alexnet
from minialex.nn import functional as F

images = rng.standard_normal((N, 3, 32, 32)).astype(np.float32)
labels = rng.integers(0, 10, N)
for name in ("numpy", "numba"):
    with minialex.backend_scope(name):
        minialex.manual_seed(0)
        model = alexnet("small")
        step = lambda: F.cross_entropy(model(minialex.tensor(images)), labels).backward()
        print(f"{name}: forward + backward of alexnet('small') at batch {N}: {best_of(step, 1 if FAST else 5) * 1e3:.0f} ms")

# %% [markdown]
# ## Where this lives in minialex
#
# - `minialex/backend/numba_cpu.py`: `_im2col` (the `@njit(cache=True, parallel=True)` loop with
#   `prange`) and its wrapper `im2col`; `_contiguous`, `_scratch`, `_copy_back`; every other kernel
#   the same way (`_col2im`, `_maxpool2d_forward`, `_lrn_forward`, ...).
# - `minialex/backend/numpy_ref.py`: `im2col` and the rest: the reference the Numba kernels must
#   match (and the docstring that fixes the kernel interface).
# - `minialex/backend/__init__.py`: `set_backend`, `backend_scope`, `kernels_for` (how an op finds the
#   kernels), `default_name` (numba when installed).
# - `tests/test_kernels.py`: every Numba kernel against NumPy, over many shapes.
# - `minialex/bench.py`: `python -m minialex.bench`, per-layer and per-step timings.
#
# Next: **11 · CUDA with CuPy**, the same kernels for the GPU.
