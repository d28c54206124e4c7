"""``python -m minialex.doctor``: what can this machine run?

Checks, one line each: Python and NumPy; Numba, its threading layer and its cache directory; CuPy,
the CUDA driver and GPU; whether NVRTC compiles a tiny kernel (and, with a GPU, whether it runs and
gives the right answer); whether the kernel cache directories are writable. Exits 0 when the
default backend works, 1 otherwise. Nothing is installed or changed.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

OK, NO, INFO = "ok ", "-- ", "   "


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            return True
    except OSError:
        return False


def check_numba(lines):
    try:
        import numba
    except ImportError:
        lines.append((NO, 'numba: not installed (pip install "numba>=0.61"); the numpy backend still works'))
        return False
    from minialex.backend import numba_cpu

    cache = Path(numba_cpu.__file__).parent / "__pycache__"
    lines.append((OK, f"numba {numba.__version__}: {numba.get_num_threads()} threads, threading layer "
                      f"{numba.config.THREADING_LAYER}"))
    lines.append((OK if _writable(cache) else NO, f"numba cache {cache}: "
                  + ("writable" if _writable(cache) else "not writable: kernels recompile in every process")))
    return True


def check_cupy(lines):
    try:
        from minialex.backend import cuda
    except ImportError as err:
        lines.append((NO, f'cupy: not available ({err}); on an NVIDIA machine: pip install "minialex[cuda12]"'))
        return False
    import cupy

    lines.append((OK, f"cupy {cupy.__version__}, kernel cache {os.environ.get('CUPY_CACHE_DIR')}: "
                      + ("writable" if _writable(Path(os.environ["CUPY_CACHE_DIR"])) else "NOT writable")))
    try:
        sizes = cuda.compile_all("sm_75")
        lines.append((OK, f"NVRTC compiles every kernel in kernels/ for sm_75 ({len(sizes)} files)"))
    except Exception as err:  # noqa: BLE001 - report whatever NVRTC or its loading raised
        lines.append((NO, f"NVRTC cannot compile the kernels ({str(err).splitlines()[0]}); "
                          'pip install "cuda-toolkit[nvrtc]==13.*" (or nvidia-cuda-nvrtc-cu12 for CuPy 12x)'))
        return False
    if not cuda.gpu_available():
        lines.append((NO, "GPU: none found (no driver or no device): the cupy backend cannot run here"))
        return False
    props = cupy.cuda.runtime.getDeviceProperties(0)
    driver = cupy.cuda.runtime.driverGetVersion()
    lines.append((OK, f"GPU: {props['name'].decode()}, compute capability {props['major']}.{props['minor']}, "
                      f"driver {driver // 1000}.{driver % 1000 // 10}"))
    x = cupy.arange(-3, 4, dtype=cupy.float32)
    y = cupy.empty_like(x)
    cuda.relu_forward(x, y)
    right = np.array_equal(y.get(), np.maximum(np.arange(-3, 4, dtype=np.float32), 0))
    lines.append((OK if right else NO, "a kernel (relu_forward) runs on the GPU and " +
                  ("gives the right answer" if right else "gives a WRONG answer")))
    return right


def main(argv=None) -> int:
    from minialex import backend

    lines = [(INFO, f"Python {platform.python_version()} on {platform.machine()}, NumPy {np.__version__}, "
                    f"{os.cpu_count()} CPUs, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")]
    available = {"numpy": True, "numba": check_numba(lines), "cupy": check_cupy(lines)}
    default = backend.default_name()
    lines.append((INFO, "backends that run here: " + ", ".join(n for n, ok in available.items() if ok)
                  + f"; default: {default}"))
    for mark, text in lines:
        print(mark + text)
    return 0 if available.get(default, False) else 1


if __name__ == "__main__":
    sys.exit(main())
