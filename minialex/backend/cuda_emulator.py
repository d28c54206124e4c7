"""Run CUDA kernels on the CPU, to test their arithmetic without a GPU.

A ``.cu`` source is compiled by the host C++ compiler (g++ or clang++) after a small prelude that
defines what CUDA provides (``__global__``, ``threadIdx``, ``blockIdx``, ``__int_as_float``, ...).
Every ``__global__`` kernel gets a C wrapper that runs the launch grid one thread after another;
for kernels with no inter-thread communication (all of kernels/*.cu except ``bias_grad``'s
shared-memory reduction, which is run with one thread per block) that sequential run computes
exactly what the GPU computes, up to floating-point contraction.

``EmulatedKernel`` is called like a ``cupy.RawKernel`` -- ``kernel(grid, block, args)`` -- and
checks every argument's type against the C parameter it lands in, the check RawKernel does not do.

* ``load_module(path)``: one of minialex's own kernel files. Their grid-stride loops let a few
  blocks of a few threads (``SAMPLED_GRID``) cover every element, which also exercises the loops.
  tests/test_kernels.py swaps these kernels in for ``minialex.backend.cuda._function``, so the
  launch wrappers of cuda.py run too; tutorial 11 launches them by hand.
* ``load_emulated(source, stem)``: any source, run on the full launch grid (a student's kernel
  may have no grid-stride loop); ``minialex.assignments.cuda_tools`` grades with it.

What this cannot see: races, memory coalescing, warp-level behaviour, and compile errors specific
to NVRTC (``minialex.backend.cuda.compile_all`` checks those). Imports neither CuPy nor Numba.
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

__all__ = ["CompileError", "EmulatedKernel", "EmulatedModule", "SAMPLED_GRID", "host_compiler", "load_emulated",
           "load_module", "parse_kernels"]

SAMPLED_GRID = (3, 5)  # (blocks, threads per block) at most, for kernels with grid-stride loops
BUILD_DIR = Path(tempfile.gettempdir()) / "minialex-cuda-on-cpu"

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

# C parameter type -> (ctypes type, the NumPy scalar type that must be passed)
_SCALARS = {
    "long long": (ctypes.c_longlong, np.int64),
    "int": (ctypes.c_int, np.int32),
    "unsigned int": (ctypes.c_uint, np.uint32),
    "unsigned long long": (ctypes.c_ulonglong, np.uint64),
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
}
# C pointee type -> the dtype of the array that must be passed
_POINTEES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
             "unsigned char": np.uint8}

_KERNEL = re.compile(r"(template\s*<typename T>\s*)?__global__\s+void\s+(\w+)\s*\(([^)]*)\)", re.S)


class CompileError(RuntimeError):
    """The kernel does not compile; the message holds the compiler's log."""


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
    def __init__(self, function, expression, params, uses_shared_memory, grid_limit=None):
        self.function, self.expression, self.params = function, expression, params
        self.uses_shared_memory = uses_shared_memory
        self.grid_limit = grid_limit  # (blocks, threads) at most, or None: the full launch grid

    def __call__(self, grid, block, args):
        if len(args) != len(self.params):
            raise TypeError(f"{self.expression}: {len(args)} arguments for {len(self.params)} parameters")
        converted = [self._convert(value, ctype, name) for value, (ctype, name) in zip(args, self.params)]
        blocks, threads = int(grid[0]), int(block[0])
        if self.grid_limit is not None:
            blocks, threads = min(blocks, self.grid_limit[0]), min(threads, self.grid_limit[1])
        if self.uses_shared_memory:  # threads of a block talk through shared memory: the sequential
            threads = 1              # run cannot interleave them, so one thread per block
        self.function(ctypes.c_uint(blocks), ctypes.c_uint(threads), *converted)

    def _convert(self, value, ctype, name):
        """``value`` as the ctypes argument for parameter ``ctype name``; TypeError if it does not fit."""
        if ctype.endswith("*"):
            pointee = ctype[:-1].strip()
            if pointee not in _POINTEES:
                raise TypeError(f"{self.expression}: parameter {name} has an unsupported type {ctype}")
            expected = np.dtype(_POINTEES[pointee])
            if not isinstance(value, np.ndarray) or value.dtype != expected or not value.flags.c_contiguous:
                raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs a C-contiguous {expected} "
                                f"array, got {type(value).__name__} {getattr(value, 'dtype', '')}")
            return ctypes.c_void_p(value.ctypes.data)
        if ctype not in _SCALARS:
            raise TypeError(f"{self.expression}: parameter {name} has an unsupported type {ctype}")
        c_type, numpy_type = _SCALARS[ctype]
        if type(value) is not numpy_type:
            raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs numpy.{numpy_type.__name__}, "
                            f"got {type(value).__name__} (RawKernel would pass it with the wrong width)")
        return c_type(value)


class EmulatedModule:
    """The kernels of one CUDA source compiled for the CPU: ``get_function('name<float>')``."""

    def __init__(self, source: str, stem: str, build_dir: Path, grid_limit=None):
        self.grid_limit = grid_limit
        wrappers, self.signatures = [], {}
        for name, templated, params in parse_kernels(source):
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
        if not library.exists():  # compiled once per source; under a temporary name, for parallel runs
            cpp = build_dir / f"{stem}-{digest}-{os.getpid()}.cpp"
            cpp.write_text(program)
            tmp_library = build_dir / f"{stem}-{digest}-{os.getpid()}.so"
            done = subprocess.run([host_compiler(), "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o",
                                   str(tmp_library), str(cpp)], capture_output=True, text=True)
            cpp.unlink(missing_ok=True)
            if done.returncode != 0:
                log = done.stderr.replace(str(cpp), f"{stem}.cu")
                raise CompileError(_trim_log(log, len(PRELUDE.splitlines())))
            os.replace(tmp_library, library)
        self.library = ctypes.CDLL(str(library))
        self.shared = "__shared__" in source

    def get_function(self, expression):
        if expression not in self.signatures:
            raise KeyError(f"no __global__ kernel {expression} in the source "
                           f"(found: {', '.join(self.signatures) or 'none'})")
        symbol, params = self.signatures[expression]
        function = getattr(self.library, symbol)
        function.restype = None
        return EmulatedKernel(function, expression, params, self.shared, self.grid_limit)


def _trim_log(log: str, prelude_lines: int) -> str:
    """The compiler's errors, with line numbers of the .cu file (the prelude shifted them)."""
    def shift(match):
        return f"{match.group(1)}{int(match.group(2)) - prelude_lines}:"
    lines = [re.sub(r"(\.cu:)(\d+):", shift, ln) for ln in log.splitlines() if "error" in ln or "^" in ln]
    return "\n".join(lines[:12]) or log[-2000:]


def load_emulated(source: str, stem: str = "kernel", grid_limit=None) -> EmulatedModule:
    """The kernels of ``source`` compiled for the CPU, run on the full launch grid unless
    ``grid_limit`` = (blocks, threads) caps it. Raises CompileError."""
    if host_compiler() is None:
        raise CompileError("no C++ compiler (g++ or clang++) on this machine")
    BUILD_DIR.mkdir(exist_ok=True)
    return EmulatedModule(source, stem, BUILD_DIR, grid_limit)


def load_module(path: Path) -> EmulatedModule:
    """One of minialex's kernel files (kernels/*.cu), run on ``SAMPLED_GRID``."""
    path = Path(path)
    return load_emulated(path.read_text(), path.stem, SAMPLED_GRID)
