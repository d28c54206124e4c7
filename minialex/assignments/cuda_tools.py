"""Checking a student's CUDA kernel with or without a GPU.

Three ways, best first, each used where the machine allows:

* ``gpu_available()``: compile with CuPy's ``RawModule`` (NVRTC) and launch on the GPU;
* ``nvrtc_compile(source, ...)``: compile with NVRTC exactly as ``RawModule`` would, with no GPU
  (the private API ``minialex.backend.cuda.compile_all`` uses; see DESIGN.md), to report NVRTC's
  own error log;
* ``load_emulated(source, stem)``: compile the kernels with the host C++ compiler after a prelude
  that defines what CUDA provides, and run the launch grid one thread after another on the CPU:
  the values of a kernel with no inter-thread communication are exactly the GPU's (the emulator of
  ``minialex/backend/cuda_emulator.py``, re-exported here).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from minialex.backend.cuda_emulator import CompileError, EmulatedModule, host_compiler, load_emulated

__all__ = ["gpu_available", "nvrtc_compile", "NvrtcUnavailable", "CompileError", "host_compiler", "EmulatedModule",
           "load_emulated"]


class NvrtcUnavailable(RuntimeError):
    """CuPy or NVRTC is not installed: the NVRTC compile check cannot run here."""


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
