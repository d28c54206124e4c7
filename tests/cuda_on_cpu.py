"""Run the CUDA kernels of kernels/*.cu on the CPU, to test their arithmetic without a GPU.

Each ``.cu`` file is compiled by the host C++ compiler after a small prelude that defines what CUDA
provides (``__global__``, ``threadIdx``, ``blockIdx``, ``__int_as_float``, ...). Every
``__global__`` kernel gets a C wrapper that runs the launch grid one thread after another; since
the kernels use grid-stride loops and (except ``bias_grad``'s shared-memory reduction, launched with
one thread per block here) no inter-thread communication, that sequential run computes exactly what
the GPU computes, up to floating-point contraction.

``EmulatedKernel`` is called like a ``cupy.RawKernel`` -- ``kernel(grid, block, args)`` -- and
checks every argument's type against the C parameter it lands in, the check RawKernel does not do.
Tests swap it in for ``minialex.backend.cuda._function``, so the launch wrappers of cuda.py run too.

What this cannot see: races, memory coalescing, warp-level behaviour, and compile errors specific
to NVRTC (the NVRTC compile test covers those).
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

PRELUDE = r"""
#include <cmath>
#include <cstring>
struct emulated_dim3 { unsigned int x = 0, y = 1, z = 1; };
static emulated_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __shared__ static
#define __syncthreads()
static inline float __int_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(unsigned long long i) { double d; std::memcpy(&d, &i, 8); return d; }
using std::exp; using std::log; using std::pow;
"""

# C parameter type -> (ctypes type, the NumPy scalar types or array dtypes that may be passed)
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
            name = words[-1]
            ctype = " ".join(w for w in words[:-1] if w != "const")
            params.append((ctype, name))
        kernels.append((match.group(2), bool(match.group(1)), params))
    return kernels


def _instantiate(ctype: str, T: str) -> str:
    return re.sub(r"\bT\b", T, ctype)


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
                expected = np.dtype(_POINTEES[ctype[:-1].strip()])
                if not isinstance(value, np.ndarray) or value.dtype != expected or not value.flags.c_contiguous:
                    raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs a C-contiguous {expected} "
                                    f"array, got {type(value).__name__} {getattr(value, 'dtype', '')}")
                converted.append(ctypes.c_void_p(value.ctypes.data))
            else:
                c_type, numpy_type = _SCALARS[ctype]
                if type(value) is not numpy_type:
                    raise TypeError(f"{self.expression}: parameter {name} ({ctype}) needs numpy.{numpy_type.__name__}, "
                                    f"got {type(value).__name__} (RawKernel would pass it with the wrong width)")
                converted.append(c_type(value))
        # a few blocks of a few threads exercise the grid-stride loops; one thread per block where
        # threads of a block talk through shared memory (the sequential run cannot interleave them)
        blocks = min(int(grid[0]), 3)
        threads = 1 if self.uses_shared_memory else min(int(block[0]), 5)
        self.function(ctypes.c_uint(blocks), ctypes.c_uint(threads), *converted)


class EmulatedModule:
    """The kernels of one .cu file compiled for the CPU: ``get_function('im2col<float>')``."""

    def __init__(self, path: Path, build_dir: Path):
        source = path.read_text()
        kernels = parse_kernels(source)
        wrappers, self.signatures = [], {}
        for name, templated, params in kernels:
            for T in (("float", "double") if templated else (None,)):
                expression = f"{name}<{T}>" if T else name
                concrete = [(_instantiate(c, T) if T else c, n) for c, n in params]
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
        library = build_dir / f"{path.stem}-{digest}.so"
        if not library.exists():
            cpp = build_dir / f"{path.stem}-{digest}.cpp"
            cpp.write_text(program)
            subprocess.run([host_compiler(), "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o", str(library),
                            str(cpp)], check=True, capture_output=True, text=True)
        self.library = ctypes.CDLL(str(library))
        self.shared = "__shared__" in source

    def get_function(self, expression):
        symbol, params = self.signatures[expression]
        function = getattr(self.library, symbol)
        function.restype = None
        return EmulatedKernel(function, expression, params, self.shared)


_BUILD_DIR = Path(tempfile.gettempdir()) / "minialex-cuda-on-cpu"


def load_module(path: Path) -> EmulatedModule:
    _BUILD_DIR.mkdir(exist_ok=True)
    return EmulatedModule(path, _BUILD_DIR)
