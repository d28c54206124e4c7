"""The kernels in CUDA C (``kernels/*.cu``), launched through CuPy: the GPU backend.

Each ``.cu`` file holds the kernels of one op as templates, instantiated for float and double by
name (``im2col<float>``); ``dropout_mask`` is untemplated. Each file is compiled once per process by
NVRTC into a ``cupy.RawModule``. The Python functions below have exactly the signatures of
``numpy_ref.py``: they compute the launch size and pass every scalar with an explicit C type
(RawKernel does not check types: a Python int would arrive as ``long long``, a float as ``double``).

Without a GPU, ``import cupy`` still works, and ``compile_all(arch)`` compiles every kernel with the
same NVRTC options as RawModule (the compile check that CI runs); nothing can be launched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("CUPY_CACHE_DIR", str(Path.home() / ".cupy" / "kernel_cache"))
try:
    import cupy
except Exception as err:  # noqa: BLE001 - CuPy raises various errors when its cache dir or CUDA is broken
    raise ImportError(f"CuPy could not be imported ({err})") from err

from minialex.backend import numpy_ref
from minialex.backend.numpy_ref import KERNELS  # noqa: F401  (the interface this module implements)

xp = cupy
DEVICE = "cuda"
THREADS = 256          # threads per block for the elementwise kernels
MAX_BLOCKS = 65535 * 4  # grid-stride loops cover the rest

# file -> the templated kernels it defines (each instantiated for float and double)
SOURCES = {
    "im2col.cu": ["im2col", "col2im"],
    "pool.cu": ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward"],
    "lrn.cu": ["lrn_forward", "lrn_backward"],
    "relu.cu": ["relu_forward", "relu_backward"],
    "dropout.cu": ["dropout_apply"],
    "softmax_xent.cu": ["softmax_xent_forward", "softmax_xent_backward"],
    "bias.cu": ["bias_add", "bias_grad"],
    "sgd.cu": ["sgd_update"],
}
UNTEMPLATED = {"dropout.cu": ["dropout_mask"]}
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def kernels_dir() -> Path:
    """Where the ``.cu`` files are: ``minialex/kernels`` in an installed wheel, ``kernels/`` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "kernels", package.parent / "kernels"):
        if (candidate / "im2col.cu").is_file():
            return candidate
    raise FileNotFoundError(f"the CUDA sources (im2col.cu, ...) are in neither {package / 'kernels'} nor "
                            f"{package.parent / 'kernels'}; reinstall minialex")


def name_expressions(file: str) -> list[str]:
    names = [f"{name}<{ctype}>" for name in SOURCES.get(file, []) for ctype in ("float", "double")]
    return names + UNTEMPLATED.get(file, [])


def unavailable_reason() -> str | None:
    """Why kernels cannot be launched here, or None."""
    if gpu_available():
        return None
    return ("CuPy is installed but no NVIDIA GPU (or driver) was found; "
            "run on a machine with a GPU, or use the numba backend (python -m minialex.doctor says more)")


def gpu_available() -> bool:
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no device
        return False


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------

_modules: dict[str, cupy.RawModule] = {}


def _function(file: str, name: str, dtype=None):
    """The compiled kernel ``name`` (``name<float>`` for float32 data) from ``file``."""
    if file not in _modules:
        source = (kernels_dir() / file).read_text()
        _modules[file] = cupy.RawModule(code=source, options=("-std=c++17",), name_expressions=name_expressions(file))
    expression = name if dtype is None else f"{name}<{_CTYPES[np.dtype(dtype)]}>"
    return _modules[file].get_function(expression)


def compile_all(arch: str = "sm_90") -> dict[str, int]:
    """Compile every ``.cu`` file for ``arch`` with NVRTC, as RawModule would, without needing a GPU.

    Returns {file: cubin size in bytes}; raises ``cupy.cuda.compiler.CompileException`` with NVRTC's
    log for a kernel that does not compile. Uses CuPy's private NVRTC wrapper (the public
    ``RawModule.compile`` needs a driver); see DESIGN.md."""
    from cupy._core import core
    from cupy.cuda import compiler

    options = core.assemble_cupy_compiler_options(("-std=c++17",)) + (
        "-ftz=true", f"-arch={arch}", "--device-as-default-execution-space")
    sizes = {}
    for file in list(SOURCES) + [f for f in UNTEMPLATED if f not in SOURCES]:
        source = (kernels_dir() / file).read_text()
        program = compiler._NVRTCProgram(source, file, name_expressions=name_expressions(file), method="cubin")
        binary = program.compile(options)[0]
        sizes[file] = len(binary)
    return sizes


def _launch(kernel, n: int, args, threads: int = THREADS):
    blocks = int(min(max(1, -(-n // threads)), MAX_BLOCKS))
    kernel((blocks,), (threads,), args)


def _i(*values):
    return tuple(np.int64(v) for v in values)


# ---------------------------------------------------------------------------------------------
# The kernels, with numpy_ref's signatures
# ---------------------------------------------------------------------------------------------


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, cols):
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    _launch(_function("im2col.cu", "im2col", x.dtype), cols.size,
            (x, cols) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


def col2im(cols, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    N, C, H, W = gx.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    _launch(_function("im2col.cu", "col2im", gx.dtype), gx.size,
            (cols, gx) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


def maxpool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, y, argmax):
    N, C, H, W = x.shape
    OH, OW = y.shape[2:]
    _launch(_function("pool.cu", "maxpool2d_forward", x.dtype), y.size,
            (x, y, argmax) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


def maxpool2d_backward(gy, argmax, KH, KW, SH, SW, PH, PW, DH, DW, gx):
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2:]
    _launch(_function("pool.cu", "maxpool2d_backward", gx.dtype), gx.size,
            (gy, argmax, gx) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))


def avgpool2d_forward(x, KH, KW, SH, SW, PH, PW, count_include_pad, y):
    N, C, H, W = x.shape
    OH, OW = y.shape[2:]
    _launch(_function("pool.cu", "avgpool2d_forward", x.dtype), y.size,
            (x, y) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW) + (np.int32(count_include_pad),) + _i(OH, OW))


def avgpool2d_backward(gy, KH, KW, SH, SW, PH, PW, count_include_pad, gx):
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2:]
    _launch(_function("pool.cu", "avgpool2d_backward", gx.dtype), gx.size,
            (gy, gx) + _i(N, C, H, W, KH, KW, SH, SW, PH, PW) + (np.int32(count_include_pad),) + _i(OH, OW))


def lrn_forward(x, size, alpha, beta, k, y, scale):
    N, C, L = x.shape
    t = x.dtype.type
    _launch(_function("lrn.cu", "lrn_forward", x.dtype), N * L,
            (x, y, scale) + _i(N, C, L) + (np.int32(size), t(alpha), t(beta), t(k)))


def lrn_backward(x, y, scale, gy, size, alpha, beta, gx):
    N, C, L = x.shape
    t = x.dtype.type
    _launch(_function("lrn.cu", "lrn_backward", x.dtype), N * L,
            (x, y, scale, gy, gx) + _i(N, C, L) + (np.int32(size), t(alpha), t(beta)))


def relu_forward(x, y):
    _launch(_function("relu.cu", "relu_forward", x.dtype), x.size, (x, y, np.int64(x.size)))


def relu_backward(gy, y, gx):
    _launch(_function("relu.cu", "relu_backward", gy.dtype), gy.size, (gy, y, gx, np.int64(gy.size)))


def dropout_mask(seed, offset, p, mask):
    _launch(_function("dropout.cu", "dropout_mask"), mask.size,
            (mask, np.uint64(seed), np.uint64(offset), np.uint32(numpy_ref.dropout_threshold(p)), np.int64(mask.size)))


def dropout_apply(x, mask, scale, y):
    _launch(_function("dropout.cu", "dropout_apply", x.dtype), x.size,
            (x, mask, x.dtype.type(scale), y, np.int64(x.size)))


def softmax_xent_forward(logits, target, loss, probs):
    N, K = logits.shape
    _launch(_function("softmax_xent.cu", "softmax_xent_forward", logits.dtype), N,
            (logits, target.astype(np.int64, copy=False), loss, probs) + _i(N, K))


def softmax_xent_backward(probs, target, gloss, glogits):
    N, K = probs.shape
    _launch(_function("softmax_xent.cu", "softmax_xent_backward", probs.dtype), N * K,
            (probs, target.astype(np.int64, copy=False), gloss, glogits) + _i(N, K))


def bias_add(y, b):
    N, C, L = y.shape
    _launch(_function("bias.cu", "bias_add", y.dtype), y.size, (y, b) + _i(N, C, L))


def bias_grad(gy, gb):
    N, C, L = gy.shape
    kernel = _function("bias.cu", "bias_grad", gy.dtype)
    kernel((int(min(C, MAX_BLOCKS)),), (THREADS,), (gy, gb) + _i(N, C, L))


def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    t = p.dtype.type
    has_momentum = v is not None                               # without momentum, p stands in for v (unread)
    _launch(_function("sgd.cu", "sgd_update", p.dtype), p.size,
            (p, g, v if has_momentum else p, t(lr), t(momentum), t(weight_decay), np.int32(has_momentum),
             np.int32(bool(nesterov)), np.int64(p.size)))

