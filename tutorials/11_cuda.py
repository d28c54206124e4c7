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
# # 11 · CUDA with CuPy
#
# On a GPU, minialex runs the same kernels written in CUDA C (`kernels/*.cu`), compiled at run time
# by NVRTC and launched through CuPy (`minialex/backend/cuda.py`). A GPU runs thousands of threads
# at once, so a CUDA kernel is written from the point of view of **one thread**: which element
# is mine, and what do I compute for it? That choice is the kernel's *thread mapping*.
#
# In this tutorial:
#
# 1. how to read a `.cu` kernel, on `im2col`, and its thread mapping, replayed in Python;
# 2. max pooling: one thread per output forward, and a *gathering* backward without atomics;
# 3. checking the CUDA kernels against NumPy: on a GPU if this machine has one; otherwise by
#    compiling them with NVRTC (no GPU needed) and by running them on the CPU.
#
# Everything runs without a GPU; the cell in section 3 says which path this machine took.

# %%
import ast
import sys
from pathlib import Path

import numpy as np

if "google.colab" in sys.modules:  # on Colab, install minialex first (OWNER: see tutorials/README.md)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/OWNER/minialex"], check=True)

import minialex
from minialex.tutorial import FAST, save  # fast mode, figures: minialex/tutorial.py
import matplotlib.pyplot as plt
from minialex.backend import numpy_ref
from minialex.nn import functional as F

np.set_printoptions(precision=4, suppress=True, linewidth=110)
minialex.set_backend("numpy")

PACKAGE = Path(minialex.__file__).resolve().parent
# the .cu files: kernels/ in a checkout of the repository, minialex/kernels/ in an installed wheel
KERNELS = next(d for d in (PACKAGE.parent / "kernels", PACKAGE / "kernels") if (d / "im2col.cu").is_file())
print("CUDA sources:", sorted(p.name for p in KERNELS.glob("*.cu")))


# %% [markdown]
# ## 1. Reading a kernel: `im2col.cu`
#
# Every `.cu` file opens with the formula, the thread mapping and the NumPy function it must
# match. Here is the header and the `im2col` kernel:

# %%
source = (KERNELS / "im2col.cu").read_text()
print(source[:source.index("template <typename T>\n__global__ void col2im")])

# %% [markdown]
# How to read it:
#
# * `template <typename T>`: one source for `float` and `double`; `cuda.py` asks NVRTC for
#   `im2col<float>` and `im2col<double>`.
# * `__global__ void`: a *kernel*, launched from the host on a grid of blocks of threads. It returns
#   nothing: it writes into the output array it is given (`T* cols`), like every minialex kernel.
# * `blockIdx.x * blockDim.x + threadIdx.x`: this thread's global number `i`.
# * the `for (...; i < total; i += blockDim.x * gridDim.x)` loop is a **grid-stride loop**: if the
#   grid has fewer threads than elements, each thread takes every `(number of threads)`-th element.
#   Any launch size gives the right answer.
# * `long long` (64-bit) indices: a 32-bit `int` stops at 2^31, about 2.1 billion elements, and the
#   columns of the paper's conv2 (2400 x 729 per image) pass that at about 1,230 images.
# * the body turns `i` into `(c, kh, kw, n, oh, ow)` by repeated `%` and `/`, **ow fastest**, exactly
#   the row-major order of `cols` `(C*KH*KW, N*OH*OW)`.
#
# The same thread, in Python, run for every `i` in turn, must rebuild NumPy's `cols`:

# %%
def im2col_thread(i, x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """What CUDA thread i computes: (its element of cols, the x element it read or None)."""
    N, C, H, W = x.shape
    ow = i % OW; rest = i // OW
    oh = rest % OH; rest //= OH
    n = rest % N; rest //= N
    kw = rest % KW; rest //= KW
    kh = rest % KH
    c = rest // KH
    h, w = oh * SH - PH + kh * DH, ow * SW - PW + kw * DW
    if 0 <= h < H and 0 <= w < W:
        return x[n, c, h, w], (n, c, h, w)
    return 0.0, None                                          # the tap falls in the zero padding


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
geometry = (3, 3, 2, 2, 1, 1, 1, 1)                           # KH, KW, SH, SW, PH, PW, DH, DW
OH = OW = (5 + 2 - 3) // 2 + 1                                # 3
cols_ref = np.empty((2 * 3 * 3, 2 * OH * OW), dtype=np.float32)
numpy_ref.im2col(x, *geometry, cols_ref)

threads = [im2col_thread(i, x, *geometry, OH, OW) for i in range(cols_ref.size)]
cols_threads = np.array([value for value, _ in threads], dtype=np.float32).reshape(cols_ref.shape)
print("every thread's element, assembled == numpy_ref.im2col:", np.array_equal(cols_threads, cols_ref))
print(f"\n{'thread i':>8}  {'writes cols[row, col]':>22}  reads x[n, c, h, w]")
for i in range(13, 21):
    print(f"{i:8d}  {str(divmod(i, cols_ref.shape[1])):>22}  {threads[i][1] or 'padding: writes 0'}")

# %% [markdown]
# Consecutive threads write consecutive addresses of `cols`. A GPU serves a *warp* of 32 threads
# with one memory transaction when their addresses are consecutive (**coalesced**), which is why
# the mapping puts `ow` fastest. Their reads of `x` are `SW` elements apart: nearly coalesced.
#
# ### The launch
#
# `cuda.py` picks the grid: 256 threads per block, enough blocks to cover the elements (capped;
# the grid-stride loop does the rest), and every scalar argument converted to the exact C type of
# the kernel's parameter:

# %%
cuda_py = (PACKAGE / "backend" / "cuda.py").read_text()
functions = {node.name: node for node in ast.parse(cuda_py).body if isinstance(node, ast.FunctionDef)}
for name in ("_launch", "_i", "im2col"):
    print(ast.get_source_segment(cuda_py, functions[name]), "\n")

# %% [markdown]
# `RawKernel` does not check argument types: a Python `int` would be passed as a 64-bit integer
# and a Python `float` as a `double`, whatever the kernel declares. Passing `np.int64` for a
# `long long` (and `np.float32` for a `float`) is the caller's job: `_i(...)` does it here.
#
# The picture shows which block writes which element of `cols`, with 16 threads per block for
# the sake of the drawing (minialex uses 256): each block owns a contiguous run of the row-major
# matrix.

# %%
threads_per_block = 16
block_of = (np.arange(cols_ref.size) // threads_per_block).reshape(cols_ref.shape)
fig, ax = plt.subplots(figsize=(9, 5.4))
ax.imshow(block_of % 10, cmap="tab10", aspect="auto", interpolation="nearest")
for (r, c), b in np.ndenumerate(block_of):
    ax.text(c, r, str(b), ha="center", va="center", fontsize=6)
ax.set_yticks(range(cols_ref.shape[0]), [f"c{r // 9} kh{r // 3 % 3} kw{r % 3}" for r in range(cols_ref.shape[0])],
              fontsize=7)
ax.set_xticks(range(cols_ref.shape[1]), [f"n{j // 9} {j % 9 // 3},{j % 3}" for j in range(cols_ref.shape[1])],
              fontsize=6, rotation=90)
ax.set(title=f"im2col.cu: the block that writes each element of cols (16 threads per block)\n"
             f"x (N=2, C=2, 5x5), 3x3 kernel, stride 2, padding 1 -> cols {cols_ref.shape[0]}x{cols_ref.shape[1]}",
       xlabel="column: image n, output pixel oh,ow", ylabel="row: c, kh, kw")
save(fig, "11_thread_map.png")

# %% [markdown]
# ![The 18 by 18 cols matrix of a small im2col, every cell coloured and numbered by the CUDA block
# (of 16 threads) that writes it: block 0 covers the first 16 cells of row 0, block 1 the last two
# cells of row 0 and the first 14 of row 1, and so on, in row-major
# order](images/11_thread_map.png)

# %% [markdown]
# ## 2. Max pooling: forward per output, backward per input
#
# The header of `pool.cu` gives both mappings:

# %%
pool_source = (KERNELS / "pool.cu").read_text()
print(pool_source[:pool_source.index("template <typename T> __device__ T negative_infinity")])

# %% [markdown]
# **Forward**: one thread per output element; it scans its window, keeps the first maximum and
# records its index (`argmax`): no thread writes anywhere but its own output.
#
# **Backward**: the obvious way, one thread per output adding its gradient to the winner's
# element, would let two threads add to the same element at once (overlapping windows can share
# a winner, tutorial 05): a race, which needs slow atomic additions. minialex **gathers** instead:
# one thread per *input* element visits the few windows that contain it and adds the gradient of
# those it won. Every thread writes only its own element. The windows that contain row `h` come
# from `covering`:

# %%
print(pool_source[pool_source.index("// The range of output rows"):pool_source.index("template <typename T>\n__global__ void maxpool2d_backward")])

# %% [markdown]
# In Python, the gathering backward thread, checked against NumPy's scattering `maxpool2d_backward`:

# %%
def covering(h, K, S, P, D, O):
    top = h + P
    a = top - (K - 1) * D
    lo = 0 if a <= 0 else (a + S - 1) // S
    hi = min(top // S, O - 1)
    return lo, hi

def maxpool_backward_thread(i, gy, argmax, H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    OH, OW = gy.shape[2:]
    w, rest = i % W, i // W
    h, plane = rest % H, rest // H
    oh_lo, oh_hi = covering(h, KH, SH, PH, DH, OH)
    ow_lo, ow_hi = covering(w, KW, SW, PW, DW, OW)
    total = 0.0
    for oh in range(oh_lo, oh_hi + 1):
        for ow in range(ow_lo, ow_hi + 1):
            if argmax.reshape(-1, OH, OW)[plane, oh, ow] == h * W + w:
                total += gy.reshape(-1, OH, OW)[plane, oh, ow]
    return total


xp = rng.standard_normal((2, 3, 7, 7))
y = np.empty((2, 3, 3, 3)); argmax = np.empty((2, 3, 3, 3), dtype=np.int32)
numpy_ref.maxpool2d_forward(xp, 3, 3, 2, 2, 0, 0, 1, 1, y, argmax)
gy = rng.standard_normal(y.shape)
gx_scatter = np.empty_like(xp)
numpy_ref.maxpool2d_backward(gy, argmax, 3, 3, 2, 2, 0, 0, 1, 1, gx_scatter)
gx_gather = np.array([maxpool_backward_thread(i, gy, argmax, 7, 7, 3, 3, 2, 2, 0, 0, 1, 1)
                      for i in range(xp.size)]).reshape(xp.shape)
print("gather (one thread per input) == scatter (NumPy):", np.allclose(gx_gather, gx_scatter))
visits = np.array([[np.prod([hi - lo + 1 for lo, hi in (covering(h, 3, 2, 0, 1, 3), covering(w, 3, 2, 0, 1, 3))])
                    for w in range(7)] for h in range(7)])
print("windows each input thread visits (7x7 input, 3x3 windows, stride 2):\n", visits)

# %% [markdown]
# A thread visits at most four windows here: the gathering backward does a little more reading,
# and no atomics at all. `col2im.cu` gathers in the same way.

# %% [markdown]
# ## 3. Checking the kernels against NumPy
#
# NumPy is the oracle (`numpy_ref.py`). On a machine with an NVIDIA GPU and CuPy we launch the
# real kernels; everywhere else we do the two checks that need no GPU. Both paths launch the
# kernel with the **same** function:

# %%
def launch_im2col(kernel, x, geometry, cols, threads=256):
    """Launch an im2col kernel (CuPy's, or the CPU emulation's) exactly as cuda.py does."""
    KH, KW, SH, SW, PH, PW, DH, DW = geometry
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    blocks = min(-(-cols.size // threads), 65535 * 4)
    kernel((blocks,), (threads,),
           (x, cols) + tuple(np.int64(v) for v in (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)))

# %%
try:
    from minialex.backend import cuda
    cupy_problem = None
except ImportError as err:                    # CuPy missing, or broken
    cuda, cupy_problem = None, str(err)
HAS_GPU = cuda is not None and cuda.gpu_available()

if HAS_GPU:
    import cupy
    print(f"GPU found: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}; running the CUDA kernels on it")
elif cuda is not None:
    print("No GPU was found on this machine: CuPy is installed, but there is no NVIDIA GPU (or driver).")
    print("The kernels cannot run here. We compile them with NVRTC and run them on the CPU instead.")
else:
    print("No GPU was found on this machine, and CuPy is not installed:", cupy_problem)
    print('To run the kernels on an NVIDIA GPU: pip install "minialex[cuda12]" (or "minialex[cuda13]"),')
    print("which brings CuPy and NVRTC. Below, the kernels run on the CPU instead.")

# %% [markdown]
# ### 3a. On the GPU
#
# `cupy.RawModule` compiles the source with NVRTC; we launch `im2col<float>` by hand, then run the
# same comparison through minialex's own backend (`cuda.im2col`, and a whole `F.conv2d`).

# %%
if HAS_GPU:
    module = cupy.RawModule(code=source, options=("-std=c++17",), name_expressions=["im2col<float>"])
    x_gpu = cupy.asarray(x)
    cols_gpu = cupy.full(cols_ref.shape, cupy.nan, dtype=cupy.float32)
    launch_im2col(module.get_function("im2col<float>"), x_gpu, geometry, cols_gpu)
    print("im2col<float> launched by hand == numpy_ref.im2col:", np.array_equal(cols_gpu.get(), cols_ref))

    cols_gpu[...] = cupy.nan
    cuda.im2col(x_gpu, *geometry, cols_gpu)
    print("minialex.backend.cuda.im2col       == numpy_ref.im2col:", np.array_equal(cols_gpu.get(), cols_ref))

    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    reference = F.conv2d(minialex.tensor(x), minialex.tensor(w), stride=2, padding=1).numpy()
    with minialex.backend_scope("cupy"):
        on_gpu = F.conv2d(minialex.tensor(x), minialex.tensor(w), stride=2, padding=1).numpy()
    print(f"F.conv2d on the GPU vs NumPy: max difference {np.abs(on_gpu - reference).max():.1e} (float32)")
else:
    print("skipped: no GPU on this machine")

# %% [markdown]
# ### 3b. Without a GPU: compile with NVRTC
#
# CuPy imports fine without a GPU, and NVRTC (NVIDIA's run-time compiler, a separate package)
# compiles CUDA C to GPU machine code for any architecture without one: `sm_75` is the T4 of
# Colab's free GPUs, `sm_90` the H100. `compile_all` compiles every `.cu` file exactly as
# `RawModule` would, so a syntax or type error in a kernel is caught here. (CI runs this check.)

# %%
if HAS_GPU:
    print("skipped: the kernels were compiled and run on the GPU above")
elif FAST:
    print("fast mode: skipped here (tests/test_cuda.py compiles every kernel for sm_75 and sm_90)")
elif cuda is None:
    print('skipped: CuPy is not installed (pip install "minialex[cuda12]", or [cuda13], brings CuPy and NVRTC)')
else:
    try:
        sizes = cuda.compile_all("sm_75")
        for file, size in sizes.items():
            print(f"{file:<18} compiled for sm_75: {size:>7,} bytes of GPU code")
    except Exception as err:                  # noqa: BLE001 - NVRTC missing, or a compile error
        print(f"NVRTC could not compile: {type(err).__name__}: {err}")
        print('NVRTC is not in the CuPy wheel: pip install "nvidia-cuda-nvrtc-cu12" (CUDA 12) or '
              '"cuda-toolkit[nvrtc]==13.*" (CUDA 13); the extras minialex[cuda12] / [cuda13] do it')

# %% [markdown]
# ### 3c. Without a GPU: run the CUDA source on the CPU
#
# The kernels use no GPU-only features beyond the thread indices (and `bias_grad`'s shared memory),
# so `minialex/backend/cuda_emulator.py` compiles each `.cu` file with the host's
# C++ compiler, after a few lines that define `__global__`, `threadIdx`, `blockIdx` and friends,
# and runs the launch grid one thread after another (3 blocks of 5 threads: the grid-stride loops
# make them cover every element). It is called exactly like a CuPy kernel, and it checks every
# argument's type, the check RawKernel does not do. It cannot see races or speed, only arithmetic.

# %%
from minialex.backend import cuda_emulator

emulate = not HAS_GPU and cuda_emulator.host_compiler() is not None
if HAS_GPU:
    print("skipped: the kernels ran on the GPU above")
elif not emulate:
    print("skipped: no C++ compiler (g++ or clang++) found")

if emulate:
    im2col_module = cuda_emulator.load_module(KERNELS / "im2col.cu")
    kernel = im2col_module.get_function("im2col<float>")
    print("im2col<float> parameters:", ", ".join(f"{ctype} {name}" for ctype, name in kernel.params))
    cols_cpu = np.full(cols_ref.shape, np.nan, dtype=np.float32)
    launch_im2col(kernel, x, geometry, cols_cpu)
    print("im2col.cu run on the CPU == numpy_ref.im2col:", np.array_equal(cols_cpu, cols_ref))

# %% [markdown]
# The type check in action: a plain Python `int` where the kernel expects `long long`. On a GPU,
# CuPy would pass it without complaint (here it happens to be 64 bits wide too, but a `float`
# where the kernel wants `float` would arrive as a `double`, and an `int` parameter would read
# half of a 64-bit value: silent garbage):

# %%
if emulate:
    args = (x, cols_cpu) + tuple(np.int64(v) for v in (2, 2, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, OH, OW))
    wrong = args[:2] + (2,) + args[3:]                   # N as a Python int
    try:
        kernel((1,), (256,), wrong)
    except TypeError as err:
        print("TypeError:", err)

# %% [markdown]
# And the max-pool kernels of `pool.cu`, forward and (gathering) backward, against NumPy:

# %%
if emulate:
    pool_module = cuda_emulator.load_module(KERNELS / "pool.cu")
    N_, C_, H_, W_ = xp.shape
    dims = tuple(np.int64(v) for v in (N_, C_, H_, W_, 3, 3, 2, 2, 0, 0, 1, 1, 3, 3))
    y_cpu = np.full(y.shape, np.nan)
    argmax_cpu = np.full(y.shape, -7, dtype=np.int32)
    pool_module.get_function("maxpool2d_forward<double>")((1,), (256,), (xp, y_cpu, argmax_cpu) + dims)
    gx_cpu = np.full(xp.shape, np.nan)
    pool_module.get_function("maxpool2d_backward<double>")((1,), (256,), (gy, argmax_cpu, gx_cpu) + dims)
    print("maxpool2d_forward:  y equal:", np.array_equal(y_cpu, y), "| argmax equal:", np.array_equal(argmax_cpu, argmax))
    print("maxpool2d_backward: gx equal to NumPy's:", np.allclose(gx_cpu, gx_scatter))

# %% [markdown]
# The test suite does all of this for every kernel, on many shapes: `tests/test_cuda.py` (NVRTC
# compiles for sm_75 and sm_90) and `tests/test_kernels.py` (every kernel against NumPy: on the GPU
# when there is one, emulated on the CPU everywhere). `python -m minialex.doctor` tells what this
# machine can run.

# %% [markdown]
# ## Where this lives in minialex
#
# - `kernels/im2col.cu`: `im2col` (one thread per `cols` element, `ow` fastest) and `col2im` (one
#   thread per input element, gathering).
# - `kernels/pool.cu`: `maxpool2d_forward` (one thread per output), `covering` and
#   `maxpool2d_backward` (one thread per input, gathering, no atomics), the average-pool kernels.
# - `minialex/backend/cuda.py`: `_function` (RawModule and NVRTC), `_launch` and `_i` (grid size and
#   argument types), `im2col` and the other wrappers with `numpy_ref`'s signatures,
#   `compile_all`, `gpu_available`, `kernels_dir`.
# - `minialex/backend/cuda_emulator.py`: `load_module`, `EmulatedKernel` (the CPU emulation and its type checks).
# - `tests/test_cuda.py` and `tests/test_kernels.py`: the compile check and the comparisons.
# - `minialex/doctor.py`: `python -m minialex.doctor`.
#
# Next: **12 · Performance**.
