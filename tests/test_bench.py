"""``python -m minialex.bench``: the parts that run without a GPU and in seconds.

The figures themselves are not tested (they depend on the machine); what is: the byte count behind
every GB/s figure, that every timed call ends with its device's synchronization (a GPU call returns
before its work is done), the GPU defaults, and the one-line refusal without a GPU.
"""

import subprocess
import sys
import types

import numpy as np
import pytest

import minialex
from minialex import backend as B
from minialex import bench
from minialex.backend import numpy_ref

SHAPE = (2, 3, 9, 9)  # max-pool 3x3 stride 2: 4x4 outputs


def test_traffic_counts_every_array_once():
    calls = bench.kernel_calls(numpy_ref, np, SHAPE)
    n, m = 2 * 3 * 9 * 9, 2 * 3 * 4 * 4                   # input and pooled elements
    f32, i32, u8 = 4, 4, 1
    expected = {
        "relu forward": 2 * f32 * n,                      # read x, write y
        "relu backward": 3 * f32 * n,                     # read gy and y, write gx
        "dropout forward": u8 * n + (f32 + u8 + f32) * n,  # write the mask; read x and the mask, write y
        "dropout backward": (f32 + u8 + f32) * n,         # read gy and the mask, write gx
        "max-pool forward": f32 * n + (f32 + i32) * m,    # read x, write y and argmax
        "max-pool backward": (f32 + i32) * m + f32 * n,   # read gy and argmax, write gx
        "LRN forward": 3 * f32 * n,                       # read x, write y and scale
        "LRN backward": 5 * f32 * n,                      # read x, y, scale and gy, write gx
    }
    assert {name: bench.traffic(sequence) for name, sequence in calls.items()} == expected


def test_kernel_calls_ran_forward_before_backward():
    calls = bench.kernel_calls(numpy_ref, np, SHAPE)
    (_, (g_pooled, argmax, *_, gx)), = calls["max-pool backward"]
    assert argmax.min() >= 0 and argmax.max() < 9 * 9    # the forward's winners, not uninitialised memory
    bench.run_calls(calls["max-pool backward"])          # (gx is shared: the LRN backward wrote it last)
    np.testing.assert_allclose(gx.sum(), g_pooled.sum(), rtol=1e-5)  # every output's gradient went somewhere


@pytest.fixture
def syncs(monkeypatch):
    """Replace every device's synchronization by one that counts its calls."""
    calls = []
    monkeypatch.setattr(bench, "synchronizer", lambda name, device, torch=None: lambda: calls.append(name))
    return calls


def test_every_timed_bandwidth_call_is_synchronized(syncs):
    rows = bench.bench_bandwidth("numpy", 5, SHAPE)
    assert [r["kernel"] for r in rows] == list(bench.kernel_calls(numpy_ref, np, SHAPE))
    assert len(syncs) == len(rows) * 2 * (1 + 5)         # kernel and copy, warm-up and 5 repeats
    for row in rows:
        assert row["gb_per_s"] > 0 and row["of_copy"] == pytest.approx(row["gb_per_s"] / row["copy_gb_per_s"])


def test_every_timed_layer_and_step_call_is_synchronized(syncs):
    from minialex import nn

    candidates = bench.layer_candidates(nn.ReLU(), (2, 3, 4, 4), ["numpy"], None, np.random.default_rng(0))
    bench.interleaved_medians(candidates, 5)
    assert len(syncs) == 2 * (1 + 5)                     # forward, forward+backward
    syncs.clear()
    with B.backend_scope("numpy"):
        step = bench.bench_step("small", 2, ["numpy"], None, 5, np.random.default_rng(0))
    timed_calls = (len(syncs) - 1 - (1 + 5) - 2) // 2  # first step, timed steps, step_breakdown's total (3 steps)
    assert timed_calls > 10 and len(syncs) == 1 + (1 + 5) + 2 + 2 * timed_calls
    parts = step["breakdown"]["numpy"]
    assert 0 < parts["gemm"] < 1 and 0 < parts["kernels"] < 1 and 0 < parts["other"] < 1


def test_step_breakdown_times_every_gemm_and_kernel_and_restores_them():
    # The small model at batch 2: 5 convs and 3 linears, 3 GEMMs each (forward, grad wrt weight,
    # grad wrt input), less conv1's grad wrt its input, which needs none: 23 GEMMs, one chunk each.
    with B.backend_scope("numpy"):
        model, shape = bench.build("small", 2)
        optimizer = minialex.optim.SGD(model.parameters(), 0.01)
        x, target = minialex.tensor(np.zeros(shape, np.float32)), minialex.tensor(np.array([1, 2]))
        calls, matmul, im2col = [], np.matmul, numpy_ref.im2col

        def counting(*args, **kwargs):
            calls.append(args[0].shape)
            return matmul(*args, **kwargs)

        np.matmul = counting
        try:
            parts = bench.step_breakdown(model, optimizer, x, target, B.get("numpy"), steps=1)
            restored = np.matmul is counting and numpy_ref.im2col is im2col
        finally:
            np.matmul = matmul
    assert len(calls) == 23 and restored
    assert sum(parts.values()) == pytest.approx(1) and parts["gemm"] > 0 and parts["kernels"] > 0


def test_synchronizer_waits_on_the_gpu_only(monkeypatch):
    assert bench.synchronizer("numba", "cpu")() is None
    waited = []
    stream = types.SimpleNamespace(synchronize=lambda: waited.append("cupy"))
    cuda = types.SimpleNamespace(get_current_stream=lambda: stream)
    fake_cupy = types.SimpleNamespace(xp=types.SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(B, "get", lambda name: fake_cupy)
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(synchronize=lambda: waited.append("torch")))
    bench.synchronizer("cupy", "cuda")()
    bench.synchronizer("torch", "cuda", fake_torch)()
    bench.synchronizer("torch", "cpu", fake_torch)()
    assert waited == ["cupy", "torch"]


def test_cupy_peak_hook_keeps_the_largest_used_bytes():
    pool = types.SimpleNamespace(used=0)
    pool.used_bytes = lambda: pool.used
    xp = types.SimpleNamespace(get_default_memory_pool=lambda: pool, cuda=types.SimpleNamespace(MemoryHook=object))
    hook = bench.cupy_peak_hook(xp)
    for used in (100, 700, 300):
        pool.used = used
        hook.malloc_postprocess(size=1)
    assert hook.peak == 700


def test_gpu_runs_default_to_torchvision_at_batch_128():
    args = bench.parse_args([])
    assert bench._runs(args, "cuda") == [("torchvision", 128)] and bench._runs(args, "cpu") == bench.DEFAULT_RUNS
    assert bench._runs(bench.parse_args(["--variant", "small:4"]), "cuda") == [("small", 4)]


def test_without_a_gpu_cupy_is_refused_with_one_line_and_exit_code_2():
    try:
        if B.get("cupy").kernels.gpu_available():
            pytest.skip("this machine has a GPU")
    except B.BackendUnavailable:
        pass
    done = subprocess.run([sys.executable, "-m", "minialex.bench", "--backend", "cupy"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: the cupy backend needs an NVIDIA GPU") and done.stderr.count("\n") == 1
