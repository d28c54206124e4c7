"""The CUDA backend where no GPU is needed: every kernel compiles with NVRTC exactly as CuPy's
RawModule compiles it, for Colab's T4 (sm_75) and the H100 (sm_90); the wheel ships the .cu files
where the installed package finds them; without a GPU the backend refuses with one clear line; on a
GPU, a few training steps of AlexNet follow the CPU run.

(Each kernel's arithmetic is compared with the NumPy reference in tests/test_kernels.py, on the GPU
when there is one and, compiled for the CPU, everywhere.) Under CI (CI=true) a missing CuPy or
NVRTC fails these tests instead of skipping them: .ci/run installs both.
"""

import copy
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minialex
from minialex import backend as B
from minialex.models import alexnet
from minialex.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


def _cuda_module():
    try:
        from minialex.backend import cuda
    except ImportError as err:
        if IN_CI:
            raise AssertionError(f"CI must install CuPy (pip install '.[cuda13]'): {err}") from err
        pytest.skip(f"CuPy not installed: {err}")
    return cuda


@pytest.mark.parametrize("arch", ["sm_75", "sm_90"])
def test_every_kernel_compiles_with_nvrtc(arch):
    cuda = _cuda_module()
    try:
        sizes = cuda.compile_all(arch)
    except Exception as err:  # noqa: BLE001
        if "nvrtc" in str(err).lower() and "compile" not in type(err).__name__.lower() and not IN_CI:
            pytest.skip(f"NVRTC not installed: {err}")
        raise
    assert set(sizes) == {p.name for p in ROOT.joinpath("kernels").glob("*.cu")}
    assert all(size > 1000 for size in sizes.values())


def test_a_syntax_error_fails_the_compile_check(tmp_path, monkeypatch):
    cuda = _cuda_module()
    for source in ROOT.joinpath("kernels").glob("*.cu"):
        text = source.read_text()
        if source.name == "relu.cu":
            text = text.replace("y[i] = x[i] <= T(0)", "y[i] = x[i] <= T(0) +")  # a typo
        tmp_path.joinpath(source.name).write_text(text)
    monkeypatch.setattr(cuda, "kernels_dir", lambda: tmp_path)
    from cupy.cuda.compiler import CompileException

    with pytest.raises(CompileException, match="relu"):
        cuda.compile_all("sm_75")


def test_every_templated_kernel_has_both_instantiations():
    cuda = _cuda_module()
    for file, names in cuda.SOURCES.items():
        source = ROOT.joinpath("kernels", file).read_text()
        for name in names:
            assert f"__global__ void {name}(" in source, f"{file} lacks kernel {name}"
        assert source.lstrip().startswith("//"), f"{file} must open with its formula and thread mapping"
        assert "#include" not in source, f"{file}: CuPy's NVRTC compile rejects header includes"


def test_without_a_gpu_the_backend_refuses_with_one_line():
    cuda = _cuda_module()
    if cuda.gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(B.BackendUnavailable, match="no NVIDIA GPU") as info:
        minialex.set_backend("cupy")
    assert "\n" not in str(info.value)


def test_the_wheel_ships_the_kernels(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("minialex-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/")[-1] for n in names if n.startswith("minialex/kernels/") and n.endswith(".cu")}
    assert shipped == {p.name for p in ROOT.joinpath("kernels").glob("*.cu")}
    # the installed layout: minialex/backend/cuda.py finds minialex/kernels/
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "minialex" / "backend" / "cuda.py").is_file()
    code = "from minialex.backend.cuda import kernels_dir; print(kernels_dir())"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == site / "minialex" / "kernels"


def test_a_few_training_steps_of_alexnet_on_the_gpu_match_the_cpu_run():
    """Three steps of SGD with momentum on ``small``, float64, in train mode: the same seeds give the
    same weights and the same dropout masks (Philox, bit-identical on every backend), so the GPU run
    must follow the NumPy run to rounding (cuBLAS and BLAS sum in different orders)."""
    cuda = _cuda_module()
    if not cuda.gpu_available():
        pytest.skip("no NVIDIA GPU (or driver) here: the GPU training run needs one")
    minialex.manual_seed(0)
    reference = alexnet("small").double().train()
    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((4, 3, 32, 32)), rng.integers(0, 10, 4)) for _ in range(3)]

    def train(model, backend_name):
        with B.backend_scope(backend_name):
            model.to(backend_name)
            optimizer = minialex.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            minialex.manual_seed(1)                    # the same dropout seeds in both runs
            losses = []
            for x, target in batches:
                loss = F.cross_entropy(model(minialex.tensor(x)), minialex.tensor(target))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.numpy()))
            return losses, model.state_dict()

    initial = reference.state_dict()
    gpu_losses, gpu_state = train(copy.deepcopy(reference), "cupy")
    cpu_losses, cpu_state = train(reference, "numpy")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-9)
    assert len(set(cpu_losses)) == 3, "the loss should change from step to step"
    for name, cpu_weight in cpu_state.items():
        assert not np.array_equal(cpu_weight, initial[name]), f"{name} did not train"
        np.testing.assert_allclose(gpu_state[name], cpu_weight, rtol=1e-9, atol=1e-12, err_msg=name)
