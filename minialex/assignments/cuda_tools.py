"""Checking a student's CUDA kernel with or without a GPU.

Three ways, best first, each used where the machine allows:

* ``gpu_available()``: compile with CuPy's ``RawModule`` (NVRTC) and launch on the GPU;
* ``nvrtc_compile(source, ...)``: compile with NVRTC exactly as ``RawModule`` would, with no GPU
  (the private API ``minialex.backend.cuda.compile_all`` uses; see DESIGN.md), to report NVRTC's
  own error log;
* ``EmulatedModule``: compile the kernels with the host C++ compiler after a prelude that defines
  what CUDA provides, and run the launch grid one thread after another on the CPU: the values of a
  kernel with no inter-thread communication are exactly the GPU's.

The CPU emulation is a copy of the parts of ``tests/cuda_on_cpu.py`` needed here (the installed
package cannot import from ``tests/``); the two should be folded into one module later.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["gpu_available", "nvrtc_compile", "NvrtcUnavailable", "CompileError", "host_compiler", "EmulatedModule",
           "load_emulated"]


class NvrtcUnavailable(RuntimeError):
    """CuPy or NVRTC is not installed: the NVRTC compile check cannot run here."""


class CompileError(RuntimeError):
    """The kernel does not compile; the message holds the compiler's log."""


def _cupy():
    os.environ.setdefault("CUPY_CACHE_DIR", str(Path(tempfile.gettempdir()) / "minialex-cupy-cache"))
    try:
        import cupy
    except Exception as err:  # noqa: BLE001 - CuPy raises various errors when CUDA is broken
        raise NvrtcUnavailable(f"CuPy is not installed or cannot be imported ({type(err).__name__}: {err})") from err
    return cupy


def gpu_available() -> bool:
    try:
        return _cupy().cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001
        return False


def nvrtc_compile(source: str, filename: str, name_expressions, arch: str = "sm_75") -> int:
    """Compile ``source`` with NVRTC for ``arch`` as ``cupy.RawModule`` would; returns the size of
    the binary. Raises CompileError (with NVRTC's log) or NvrtcUnavailable."""
    _cupy()
    try:
        from cupy._core import core
        from cupy.cuda import compiler
    except Exception as err:  # noqa: BLE001
        raise NvrtcUnavailable(f"CuPy's compiler module is not available ({err})") from err
    options = core.assemble_cupy_compiler_options(("-std=c++17",)) + (
        "-ftz=true", f"-arch={arch}", "--device-as-default-execution-space")
    try:
        program = compiler._NVRTCProgram(source, filename, name_expressions=list(name_expressions), method="cubin")
        return len(program.compile(options)[0])
    except compiler.CompileException as err:
        raise CompileError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - NVRTC's library missing, or the private API changed
        text = f"{type(err).__name__}: {err}"
        if "nvrtc" in text.lower() or isinstance(err, (ImportError, OSError, AttributeError)):
            raise NvrtcUnavailable(f"NVRTC is not available ({text}); pip install 'minialex[cuda12]' or "
                                   "'minialex[cuda13]' adds it") from err
        raise CompileError(text) from err


# =============================================================================================
# The CPU emulation (from tests/cuda_on_cpu.py)
# =============================================================================================

PRELUDE = r"""
#include <cmath>
#include <cstring>
struct emulated_dim3 { unsigned int x = 0, y = 1, z = 1; };
static emulated_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads()
static inline float __int_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(unsigned long long i) { double d; std::memcpy(&d, &i, 8); return d; }
using std::exp; using std::log; using std::pow; using std::isnan;
"""

_SCALARS = {
    "long long": (ctypes.c_longlong, np.int64),
    "int": (ctypes.c_int, np.int32),
    "unsigned int": (ctypes.c_uint, np.uint32),
    "unsigned long long": (ctypes.c_ulonglong, np.uint64),
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
}
_POINTEES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
             "unsigned char": np.uint8}

_KERNEL = re.compile(r"(template\s*<typename T>\s*)?__global__\s+void\s+(\w+)\s*\(([^)]*)\)", re.S)


def host_compiler():
    return shutil.which("g++") or shutil.which("clang++")


def parse_kernels(source: str):
    """[(name, templated, [(C type, parameter name)])] of every __global__ kernel in ``source``."""
    kernels = []
    for match in _KERNEL.finditer(source):
        params = []
        for part in match.group(3).split(","):
            words = part.replace("*", " * ").split()
            if not words:
                continue
            name = words[-1]
            ctype = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__"))
            params.append((ctype, name))
        kernels.append((match.group(2), bool(match.group(1)), params))
    return kernels


class EmulatedKernel:
    def __init__(self, function, expression, params, uses_shared_memory):
        self.function, self.expression, self.params = function, expression, params
        self.uses_shared_memory = uses_shared_memory

    def __call__(self, grid, block, args):
        if len(args) != len(self.params):
            raise TypeError(f"{self.expression}: {len(args)} arguments for {len(self.params)} parameters")
        converted = []
        for value, (ctype, name) in zip(args, self.params):
            if ctype.endswith("*"):
                pointee = ctype[:-1].strip()
                if pointee not in _POINTEES:
                    raise TypeError(f"{self.expression}: parameter {name} has an unsupported type {ctype}")
                expected = np.dtype(_POINTEES[pointee])
                if not isinstance(value, np.ndarray) or value.dtype != expected or not value.flags.c_contiguous:
                    raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs a C-contiguous {expected} "
                                    f"array, got {type(value).__name__} {getattr(value, 'dtype', '')}")
                converted.append(ctypes.c_void_p(value.ctypes.data))
            else:
                if ctype not in _SCALARS:
                    raise TypeError(f"{self.expression}: parameter {name} has an unsupported type {ctype}")
                c_type, numpy_type = _SCALARS[ctype]
                if type(value) is not numpy_type:
                    raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs numpy.{numpy_type.__name__}, "
                                    f"got {type(value).__name__}")
                converted.append(c_type(value))
        blocks = int(grid[0])
        threads = 1 if self.uses_shared_memory else int(block[0])
        self.function(ctypes.c_uint(blocks), ctypes.c_uint(threads), *converted)


class EmulatedModule:
    """The kernels of one CUDA source compiled for the CPU: ``get_function('name<float>')``."""

    def __init__(self, source: str, stem: str, build_dir: Path):
        kernels = parse_kernels(source)
        wrappers, self.signatures = [], {}
        for name, templated, params in kernels:
            for T in (("float", "double") if templated else (None,)):
                expression = f"{name}<{T}>" if T else name
                concrete = [(re.sub(r"\bT\b", T, c) if T else c, n) for c, n in params]
                symbol = "launch_" + re.sub(r"\W", "_", expression)
                declaration = ", ".join(f"{c} {n}" for c, n in concrete)
                call = ", ".join(n for _, n in concrete)
                wrappers.append(
                    f'extern "C" void {symbol}(unsigned int emulated_grid, unsigned int emulated_block, {declaration}) {{\n'
                    f"  gridDim.x = emulated_grid; blockDim.x = emulated_block;\n"
                    f"  for (unsigned emulated_b = 0; emulated_b < emulated_grid; ++emulated_b)\n"
                    f"    for (unsigned emulated_t = 0; emulated_t < emulated_block; ++emulated_t) {{\n"
                    f"      blockIdx.x = emulated_b; threadIdx.x = emulated_t; {expression}({call}); }}\n}}\n")
                self.signatures[expression] = (symbol, concrete)
        program = PRELUDE + source + "\n" + "".join(wrappers)
        digest = hashlib.sha1(program.encode()).hexdigest()[:16]
        library = build_dir / f"{stem}-{digest}.so"
        if not library.exists():
            cpp = build_dir / f"{stem}-{digest}-{os.getpid()}.cpp"
            cpp.write_text(program)
            tmp_library = build_dir / f"{stem}-{digest}-{os.getpid()}.so"
            done = subprocess.run([host_compiler(), "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o", str(tmp_library),
                                   str(cpp)], capture_output=True, text=True)
            cpp.unlink(missing_ok=True)
            if done.returncode != 0:
                log = done.stderr.replace(str(cpp), f"{stem}.cu")
                raise CompileError(_trim_log(log, len(PRELUDE.splitlines())))
            os.replace(tmp_library, library)
        self.library = ctypes.CDLL(str(library))
        self.shared = "__shared__" in source

    def get_function(self, expression):
        if expression not in self.signatures:
            raise KeyError(f"no __global__ kernel {expression} in the source (found: {', '.join(self.signatures) or 'none'})")
        symbol, params = self.signatures[expression]
        function = getattr(self.library, symbol)
        function.restype = None
        return EmulatedKernel(function, expression, params, self.shared)


def _trim_log(log: str, prelude_lines: int) -> str:
    """The compiler's errors, with line numbers of the student's file (the prelude shifted them)."""
    def shift(match):
        line = int(match.group(2)) - prelude_lines
        return f"{match.group(1)}{line}:"
    lines = [re.sub(r"(\.cu:)(\d+):", shift, ln) for ln in log.splitlines() if "error" in ln or "^" in ln]
    return "\n".join(lines[:12]) or log[-2000:]


def load_emulated(source: str, stem: str = "kernel") -> EmulatedModule:
    if host_compiler() is None:
        raise CompileError("no C++ compiler (g++ or clang++) on this machine")
    build_dir = Path(tempfile.gettempdir()) / "minialex-grader-cuda-on-cpu"
    build_dir.mkdir(exist_ok=True)
    return EmulatedModule(source, stem, build_dir)
