"""The AlexNet variants: structure, parameter counts, initialisation, shapes, whole-model gradients,
summary(), save/load, and agreement with PyTorch (when it is installed).

Speed. A 60 M-parameter model costs 1-5 s to build (NumPy drawing its random weights) and
0.1-0.3 s per float64 forward at its native size. So:
* each variant is built once, with its real initialisation, by the module-scoped fixture ``built``
  (pytest runs the tests of one variant together, so one big model is alive at a time);
* tests that only need shapes or keys build with ``no_init``, which turns the init functions into
  no-ops (weights stay zero): a build then takes milliseconds;
* the whole-model gradchecks of the big variants check a few entries of a few tensors (see
  ``test_gradcheck_big_variant``); ``small`` is checked at every tensor.
"""

import os

import numpy as np
import pytest

import minialex
from minialex import io, nn
from minialex.gradcheck import GradcheckError
from minialex.models import VARIANTS, AlexNet, alexnet, alexnet_from_layers, summary
from minialex.models.alexnet import identify
from minialex.ops import activation, conv, linear, lrn, pool

from conftest import to_tensor

BIG = ["paper", "torchvision", "d2l", "half", "tf"]
COUNTS = {"paper": 60_965_224, "torchvision": 61_100_840, "d2l": 46_764_746, "half": 16_630_440,
          "tf": 51_939_688, "small": 1_198_602}
CLASSES = {"paper": 1000, "torchvision": 1000, "d2l": 10, "half": 1000, "tf": 1000, "small": 10}


@pytest.fixture(scope="module", params=BIG + ["small"])
def built(request):
    """(variant, model): built once with its real initialisation, float32, at manual_seed(0)."""
    minialex.manual_seed(0)
    return request.param, alexnet(request.param)


@pytest.fixture
def no_init(monkeypatch):
    """Make every init function a no-op (weights stay zero): for tests of shapes, keys and counts."""
    for name in ("default_", "normal_", "uniform_", "trunc_normal_", "kaiming_normal_", "kaiming_uniform_",
                 "constant_", "zeros_"):
        monkeypatch.setattr(nn.init, name, lambda param, *args, **kwargs: param)


def fix_dropout_seeds(model, base=100):
    """The same mask in every evaluation (gradcheck evaluates the model many times)."""
    for i, m in enumerate(m for m in model.modules() if isinstance(m, nn.Dropout)):
        m.seed = base + i
    return model


def layer_types(sequential):
    return [type(m).__name__ for m in sequential]


# =============================================================================================
# Structure, counts, initialisation, forward shapes
# =============================================================================================


def test_parameter_counts_init_and_forward_shape(built):
    name, model = built
    assert model.num_parameters() == COUNTS[name]
    x = to_tensor(np.random.default_rng(0).standard_normal((1,) + VARIANTS[name].input_shape).astype(np.float32))
    with minialex.no_grad():
        y = model.eval()(x)
    assert y.shape == (1, CLASSES[name]) and y.dtype == np.float32 and np.isfinite(y.numpy()).all()
    check_init(name, model)


def check_init(name, model):
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    weights = [m.weight.numpy() for m in layers]
    biases = [m.bias.numpy() for m in layers]
    if name == "paper":  # N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7
        assert abs(weights[5].std() - 0.01) < 1e-4 and abs(weights[5].mean()) < 1e-5
        assert [float(b.mean()) for b in biases] == [0, 1, 0, 1, 1, 1, 1, 0]
        assert all(np.ptp(b) == 0 for b in biases)
    elif name == "tf":  # truncated normal within 2 std: std * 0.8796 after truncation
        for w, std in zip(weights, (1e-4, 0.01, 0.01, 0.01, 0.01, 0.1, 0.1, 0.1)):
            assert np.abs(w).max() <= 2 * std * (1 + 1e-6)
        assert abs(weights[5].std() / 0.1 - 0.87962566) < 1e-3
        assert [float(b.mean()) for b in biases] == pytest.approx([0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0])
    elif name == "half":  # Kaiming-normal (fan_out, ReLU) convolutions, N(0, 0.01) linear, zero biases
        conv1 = weights[0]
        assert abs(conv1.std() / np.sqrt(2 / (48 * 11 * 11)) - 1) < 0.02
        assert abs(weights[5].std() - 0.01) < 2e-4
        assert all((b == 0).all() for b in biases)
    elif name == "small":  # He-normal, std sqrt(2 / fan_in), zero biases; the last Linear: PyTorch's default
        for w, b in zip(weights[:-1], biases[:-1]):
            assert abs(w.std() / np.sqrt(2 / w[0].size) - 1) < 0.05 and abs(w.mean()) < 0.05 * w.std()
            assert (b == 0).all()
        bound = 1 / np.sqrt(weights[-1][0].size) * (1 + 1e-6)
        assert np.abs(weights[-1]).max() <= bound and np.abs(biases[-1]).max() <= bound
    else:  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
        for w, b in zip(weights, biases):
            bound = 1 / np.sqrt(w[0].size) * (1 + 1e-6)  # float32 rounding
            assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
            assert np.abs(w).max() > 0.95 * bound


def test_paper_one_tower_and_224_input(no_init):
    one = alexnet("paper", towers=1)
    assert one.num_parameters() == 62_378_344
    assert [m.groups for m in one.features if isinstance(m, nn.Conv2d)] == [1, 1, 1, 1, 1]
    two = alexnet("paper")
    assert [m.groups for m in two.features if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    assert two.features[4].weight.shape == (256, 48, 5, 5)
    assert alexnet("paper", conv1_padding=2).features[0].padding == 2


def test_layer_lists_follow_the_listings(no_init):
    paper, tv, tf = alexnet("paper"), alexnet("torchvision"), alexnet("tf")
    # the paper drops the outputs of fc6 and fc7; torchvision drops the inputs of fc6 and fc7
    assert layer_types(paper.classifier) == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert layer_types(tv.classifier) == ["Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
    assert layer_types(paper.features)[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert layer_types(tf.features)[:4] == ["Conv2d", "ReLU", "AvgPool2d", "LocalResponseNorm"]  # LRN after pool
    lrn_paper, lrn_tf = paper.features[2], tf.features[3]
    assert (lrn_paper.size, lrn_paper.alpha, lrn_paper.k) == (5, pytest.approx(5e-4), 2.0)
    assert (lrn_tf.size, lrn_tf.alpha, lrn_tf.k) == (11, pytest.approx(11 * 0.001 / 9), 1.0)
    assert isinstance(tv.avgpool, nn.AdaptiveAvgPool2d) and paper.avgpool is None
    assert tf.features[4].padding == "same"


def test_torchvision_state_dict_keys(no_init):
    keys = list(alexnet("torchvision").state_dict())
    assert keys == [f"{part}.{i}.{kind}" for part, idx in (("features", (0, 3, 6, 8, 10)), ("classifier", (1, 4, 6)))
                    for i in idx for kind in ("weight", "bias")]


def test_options_and_errors(no_init):
    assert set(VARIANTS) == {"paper", "torchvision", "d2l", "half", "tf", "small"}
    assert VARIANTS["paper"].input_shape == (3, 227, 227) and VARIANTS["d2l"].input_shape == (1, 224, 224)
    assert alexnet("d2l").features[0].weight.shape == (96, 1, 11, 11)
    assert alexnet("d2l", in_channels=3, num_classes=7).classifier[6].out_features == 7
    assert alexnet("d2l", in_channels=3).features[0].weight.shape == (96, 3, 11, 11)
    with pytest.raises(ValueError, match="unknown variant 'vgg'.*paper, torchvision, d2l, half, tf, small"):
        alexnet("vgg")
    with pytest.raises(ValueError, match="unknown option 'tower'.*towers, conv1_padding, dropout"):
        alexnet("paper", tower=1)
    with pytest.raises(ValueError, match="unknown option 'image_size'"):
        alexnet("torchvision", image_size=32)
    with pytest.raises(ValueError, match="towers must be 1 or 2"):
        alexnet("paper", towers=3)
    with pytest.raises(ValueError, match="image_size must be an int >= 15"):
        alexnet("small", image_size=8)
    with pytest.raises(ValueError, match=r"Conv2d\(1, 96, kernel_size=11, stride=4\): expected input \(N, 1, H, W\)"):
        alexnet("d2l")(to_tensor(np.zeros((1, 3, 224, 224), np.float32)))


def test_small_at_32_and_28(backend_name):
    minialex.manual_seed(0)
    rgb, gray = alexnet("small"), alexnet("small", in_channels=1)
    assert gray.num_parameters() == 950_442 and gray.classifier[0].in_features == 96 * 2 * 2
    assert alexnet("small", image_size=28).classifier[0].in_features == 384
    x32 = to_tensor(np.ones((2, 3, 32, 32), np.float32))
    x28 = to_tensor(np.ones((2, 1, 28, 28), np.float32))
    assert rgb(x32).shape == (2, 10) and gray(x28).shape == (2, 10)
    minialex.manual_seed(0)
    again = alexnet("small")  # same seed, same weights
    for (k, a), (_, b) in zip(rgb.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_build_your_own_and_its_errors():
    model = alexnet_from_layers([nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)],   # 8x13x13
                                [nn.Dropout(0.5), nn.Linear(8 * 13 * 13, 10)])
    assert isinstance(model, AlexNet) and list(model.state_dict()) == [
        "features.0.weight", "features.0.bias", "classifier.1.weight", "classifier.1.bias"]
    assert model.eval()(to_tensor(np.zeros((2, 1, 28, 28), np.float32))).shape == (2, 10)
    with pytest.raises(ValueError, match=r"classifier.1 .* expects 1352 values per image, but the features give "
                                         r"8x15x15 = 1800.*an input of 1x28x28 would fit"):
        model(to_tensor(np.zeros((1, 1, 32, 32), np.float32)))
    with pytest.raises(TypeError, match="features must be a Sequential or a list"):
        AlexNet(nn.ReLU(), [])


def test_identify_tells_the_variants_apart(no_init):
    configs = [("paper", {}), ("paper", {"towers": 1}), ("torchvision", {}), ("d2l", {}), ("half", {}), ("tf", {}),
               ("small", {}), ("small", {"in_channels": 1})]
    for variant, options in configs:
        model = alexnet(variant, num_classes=7, **options)
        shapes = {k: p.shape for k, p in model.named_parameters()}
        expected = model.name()
        assert identify(shapes) == expected, (variant, options)
    assert identify({"0.weight": (4, 3, 3, 3)}) is None


# =============================================================================================
# Whole-model gradient checks (float64, batch 1, native input size)
# =============================================================================================
#
# Tolerances. Gradients at these initialisations are small and differ between tensors by orders of
# magnitude (tf: conv1's std 1e-4 gives d(out)/d(input) ~ 6e-5 while the outputs are ~10), so
# atol is set per check to 1e-4 times the rms of the gradients checked, measured at
# manual_seed(0) (the test asserts that the rms is still within 10x of the value in the table, so
# atol stays meaningful). rtol = 1e-3: the observed errors are below 3e-5 relative, and a
# gradient off by 1% fails (see the mutation tests).
#
# Step sizes. The finite-difference error has two sources: rounding, about 1e-16 * |terms of L| /
# eps, and ReLU kinks crossed by the step, about proportional to eps. For the input (entries ~1),
# eps = 1e-3: the kinks it crosses are few and rounding would swamp eps = 1e-6 in tf (outputs
# ~10, input gradients ~1e-5). For parameters, eps = 1e-7: tf's conv1 pre-activations are ~1e-3
# with zero bias, so a step of 1e-6 already flips several of conv1's ReLUs (2% error); 1e-7 does not.
#
# Cost. Each checked entry costs two forward passes (0.1-0.3 s each for the big variants), so the
# big variants check, in eval mode, 2 entries of conv1's weight and 2 of the last layer's weight
# (the gradient flows back through every layer to reach conv1), and in train mode (dropout on,
# fixed masks) 2 entries of the input. The other parameters do not require grad during the check,
# which also skips their weight-gradient GEMMs. The per-op tests check every op's gradients fully.

GRAD_RMS = {  # variant: (rms of the gradients of conv1.weight and of the last weight, rms wrt the input)
    "paper": ((6.6e-3, 1.3), 6.2e-5),
    "torchvision": ((1.2e-2, 9.7e-3), 2.8e-4),
    "d2l": ((8.0e-4, 8.0e-3), 4.1e-5),
    "half": ((0.22, 9.4e-2), 3.0e-3),
    "tf": ((0.83, 2.9), 6.2e-5),
}


def rms(t):
    return float(np.sqrt(np.mean(t.grad.numpy() ** 2)))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_gradcheck_big_variant(built, mode):
    name, model = built
    if name == "small":
        pytest.skip("small is checked at every tensor by test_gradcheck_small")
    fix_dropout_seeds(model.double().train(mode == "train"))
    params = model.parameters()
    x = to_tensor(np.random.default_rng(1).standard_normal((1,) + VARIANTS[name].input_shape))
    conv1 = model.features[0]
    last = [m for m in model.classifier if isinstance(m, nn.Linear)][-1]
    try:
        if mode == "eval":
            checked = [conv1.weight, last.weight]
            expected = GRAD_RMS[name][0]
            for p in params:
                p.requires_grad = any(p is c for c in checked)
            atol = 1e-4 * min(expected)
            minialex.gradcheck(lambda x, *ps: model(x), [x, *checked], samples=2, eps=1e-7, atol=atol, rtol=1e-3)
        else:
            x.requires_grad = True
            checked, expected = [x], [GRAD_RMS[name][1]]
            for p in params:
                p.requires_grad = False
            minialex.gradcheck(lambda x: model(x), [x], samples=2, eps=1e-3, atol=1e-4 * expected[0], rtol=1e-3)
        for t, value in zip(checked, expected):  # the tolerance table is still about the right scale
            assert value / 10 < rms(t) < value * 10
    finally:
        for p in params:
            p.requires_grad, p.grad = True, None
        model.float().eval()


def small_and_input(image_size=32):
    minialex.manual_seed(0)
    model = fix_dropout_seeds(alexnet("small").double())
    x = to_tensor(np.random.default_rng(1).standard_normal((1, 3, image_size, image_size)))
    x.requires_grad = True
    return model, x


def gradcheck_model(model, x, samples, tensors=None):
    """The input and every parameter (or ``tensors``). small's gradients are >= 2e-5 in rms and its
    outputs ~1e-2, so rounding errors are ~1e-11: atol 1e-9, rtol 1e-4."""
    tensors = model.parameters() if tensors is None else tensors
    return minialex.gradcheck(lambda x, *ps: model(x), [x, *tensors], samples=samples, atol=1e-9, rtol=1e-4)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_gradcheck_small(mode):
    model, x = small_and_input()
    report = gradcheck_model(model.train(mode == "train"), x, samples=1)
    assert report.checked == 17  # one entry of each of the 17 tensors (kinks included)


def scaled_backward(original, factor=1.01):
    def backward(self, gy):
        grads = original(self, gy)
        if isinstance(grads, tuple):
            return tuple(None if g is None else g * factor for g in grads)
        return grads * factor
    return backward


def tiny_avg_model():
    """The layer types small lacks: average pooling, adaptive average pooling, TF-style LRN."""
    minialex.manual_seed(0)
    return alexnet_from_layers(
        [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),                             # 8x12x12
         nn.AvgPool2d(3, 2),                                                   # 8x5x5
         nn.LocalResponseNorm.from_tensorflow(depth_radius=2, bias=1.0, alpha=1e-3, beta=0.75)],
        [nn.Dropout(0.5), nn.Linear(8 * 3 * 3, 10)],
        avgpool=nn.AdaptiveAvgPool2d(3)).double()                             # 8x3x3 (bins overlap)


@pytest.mark.parametrize("function", [conv.Conv2d, pool.MaxPool2d, lrn.LocalResponseNorm, activation.ReLU,
                                      linear.Linear, activation.Dropout, pool.AvgPool2d, pool.AdaptiveAvgPool2d],
                         ids=lambda f: f.__name__)
def test_a_wrong_backward_anywhere_fails_the_whole_model_check(function, monkeypatch):
    """Plant a gradient 1% too large in one op's backward: the model's check must fail. Checked: the
    input (its gradient passes through every layer's backward) and conv1's weight."""
    if function in (pool.AvgPool2d, pool.AdaptiveAvgPool2d):
        model = fix_dropout_seeds(tiny_avg_model()).train()
        x = to_tensor(np.random.default_rng(1).standard_normal((1, 3, 12, 12)), requires_grad=True)
    else:
        model, x = small_and_input()
        model.train()  # dropout's backward runs too
    tensors = [model.features[0].weight]
    gradcheck_model(model, x, samples=2, tensors=tensors)  # the control: passes before the bug is planted
    monkeypatch.setattr(function, "backward", scaled_backward(function.backward))
    with pytest.raises(GradcheckError):
        gradcheck_model(model, x, samples=2, tensors=tensors)


# =============================================================================================
# summary()
# =============================================================================================


def test_summary_reproduces_the_papers_table(no_init, capsys):
    s = summary(alexnet("paper", conv1_padding=2), (3, 224, 224))
    shapes = {r["name"]: r["output_shape"] for r in s}
    # the paper's layers: 55x55x96, 27x27x256, 13x13x384, 13x13x384, 6x6x256 (after pool5), 4096, 4096, 1000
    assert [shapes[k] for k in ("features.0", "features.4", "features.8", "features.10", "features.14",
                                "classifier.0", "classifier.3", "classifier.6")] == [
        (96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 6, 6), (4096,), (4096,), (1000,)]
    assert s.totals["params"] == 60_965_224 == sum(r["params"] for r in s)
    assert s["features.0"]["mult_adds"] == 96 * 55 * 55 * 3 * 11 * 11
    assert s["features.4"]["mult_adds"] == 256 * 27 * 27 * 48 * 5 * 5   # two towers: 48 input channels each
    assert s.totals["mult_adds"] == 724_406_816
    assert s["features.0"]["memory"] == 96 * 55 * 55 * 4
    printed = capsys.readouterr().out
    assert "features.0" in printed and "96x55x55" in printed and "60,965,224" in printed
    # 227 without padding gives the same table
    s227 = summary(alexnet("paper"), (1, 3, 227, 227), verbose=False)
    assert [r["output_shape"] for r in s227] == [r["output_shape"] for r in s]
    assert capsys.readouterr().out == ""


def test_summary_names_the_layer_and_the_size_that_fits(no_init):
    with pytest.raises(ValueError, match=r"classifier.0 \(Linear\(in_features=9216.*expects 9216 values per image, "
                                         r"but the features give 256x5x5 = 6400.*an input of 3x227x227 would fit"):
        summary(alexnet("paper"), (3, 224, 224), verbose=False)
    # seed 002's first listing: no pool after conv5 and a classifier sized for 256x4x4
    broken = alexnet_from_layers(
        [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
         nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
         nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
         nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()],
        [nn.Dropout(), nn.Linear(256 * 4 * 4, 2048), nn.ReLU(), nn.Dropout(), nn.Linear(2048, 2048), nn.ReLU(),
         nn.Linear(2048, 1000)])
    with pytest.raises(ValueError, match=r"classifier.1 .* expects 4096 .* 256x13x13 = 43264.*3x94x94 would fit "
                                         r"\(any square size from 79 to 94 does\)"):
        summary(broken, (3, 224, 224), verbose=False)
    # a plain Sequential: the failing leaf is found by the trace
    net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
    assert summary(net, (1, 28, 28), verbose=False)["4"]["output_shape"] == (10,)
    with pytest.raises(ValueError, match=r"layer 4 \(Linear.*cannot take the input \(1, 1568\) .*expected "
                                         r"input \(N, 1152\), got \(1, 1568\); an input of 1x29x29 would fit "
                                         r"\(any square size from 28 to 29"):
        summary(net, (1, 32, 32), verbose=False)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d.*expected input \(N, 1, H, W\)"):
        summary(net, (3, 28, 28), verbose=False)


def test_summary_restores_modes_and_draws_no_random_numbers(backend_name):
    model, _ = small_and_input()
    model.float().train()
    state = minialex.random.get_state()
    s = summary(model, (3, 32, 32), verbose=False)
    assert s.totals["params"] == COUNTS["small"] and s["features.14"]["output_shape"] == (96, 3, 3)
    assert all(m.training for m in model.modules()) and minialex.random.get_state() == state
    assert all("forward" not in vars(m) for m in model.modules())


# =============================================================================================
# save / load
# =============================================================================================


def test_save_load_round_trip(tmp_path, backend_name):
    model, _ = small_and_input()
    path = tmp_path / "small.npz"
    assert io.save(model, path) == str(path)
    assert os.listdir(tmp_path) == ["small.npz"]  # the temporary file was renamed
    with np.load(path, allow_pickle=False) as data:  # a plain .npz: state_dict keys, nothing else
        assert data.files == list(model.state_dict())
    minialex.manual_seed(1)
    other = alexnet("small").double()
    assert io.load(other, path) is other
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    state = io.load(None, path)
    assert list(state) == list(model.state_dict()) and isinstance(state["classifier.6.bias"], np.ndarray)
    # a state_dict of NumPy arrays keyed like PyTorch's loads through load_state_dict
    minialex.manual_seed(2)
    third = alexnet("small")
    third.load_state_dict({k: v.astype(np.float32) for k, v in state.items()})
    np.testing.assert_array_equal(third.features[0].weight.numpy(), state["features.0.weight"].astype(np.float32))


def test_save_is_atomic(tmp_path, monkeypatch):
    model, _ = small_and_input()
    path = tmp_path / "model.npz"
    io.save(model, path)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save(model, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_load_errors(tmp_path, no_init):
    model, _ = small_and_input()
    io.save(model, tmp_path / "small.npz")
    with pytest.raises(FileNotFoundError, match="no such file.*did you mean.*small.npz"):
        io.load(model, tmp_path / "small")
    good = (tmp_path / "small.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all" * 10)
    np.save(tmp_path / "one.npy", np.zeros(3))
    for name in ("truncated.npz", "garbage.npz", "one.npy"):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            io.load(model, tmp_path / name)
    small = r"looks like the weights of alexnet\('small', num_classes=10, in_channels=3\)"
    with pytest.raises(ValueError, match=r"does not fit alexnet\('torchvision'.*missing keys features.3.weight, "
                                         r"features.3.bias.*unexpected keys features.4.weight.*" + small):
        io.load(alexnet("torchvision"), tmp_path / "small.npz")
    with pytest.raises(ValueError, match=r"does not fit alexnet\('paper'.*other shapes: features.0.weight "
                                         r"\(48, 3, 5, 5\) \(model: \(96, 3, 11, 11\)\).*" + small):
        io.load(alexnet("paper"), tmp_path / "small.npz")
    with pytest.raises(ValueError, match=r"other shapes: features.0.weight \(48, 3, 5, 5\) \(model: \(48, 1, 5, 5\)\)"):
        io.load(alexnet("small", in_channels=1), tmp_path / "small.npz")


# =============================================================================================
# Agreement with PyTorch (skipped where torch is not installed)
# =============================================================================================


def torch_alexnet(torch, num_classes=1000):
    """torchvision.models.AlexNet, written out (torchvision itself is not needed)."""
    tnn = torch.nn

    class TorchAlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(64, 192, kernel_size=5, padding=2), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(192, 384, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.Conv2d(256, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(p=0.5), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(inplace=True),
                tnn.Dropout(p=0.5), tnn.Linear(4096, 4096), tnn.ReLU(inplace=True),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TorchAlexNet()


def torch_paper(torch, num_classes=1000):
    """The paper's two-tower net in PyTorch: groups=2 and LocalResponseNorm(5, alpha=5e-4, k=2)."""
    tnn = torch.nn
    lrn = lambda: tnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # noqa: E731
    features = tnn.Sequential(
        tnn.Conv2d(3, 96, 11, stride=4), tnn.ReLU(), lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(96, 256, 5, padding=2, groups=2), tnn.ReLU(), lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 384, 3, padding=1, groups=2), tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1, groups=2), tnn.ReLU(), tnn.MaxPool2d(3, 2))
    classifier = tnn.Sequential(
        tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
        tnn.Linear(4096, num_classes))
    model = tnn.Module()
    model.features, model.classifier = features, classifier
    model.forward = lambda x: classifier(torch.flatten(features(x), 1))
    return model


def generic_weights(shapes, seed=0):
    """Random float64 weights for every key, cheaply (a 60 M-parameter model): one block of
    2**20 + 7 normal draws tiled over each array (the period is coprime with every row length),
    scaled by 1/sqrt(fan_in)."""
    block = np.random.default_rng(seed).standard_normal(2**20 + 7 + 1000)
    state = {}
    for i, (key, shape) in enumerate(shapes.items()):
        fan_in = np.prod(shape[1:]) if len(shape) > 1 else 100.0
        state[key] = np.resize(block[i * 50:i * 50 + 2**20 + 7] / np.sqrt(fan_in), shape)
    return state


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_same_outputs_as_pytorch(variant, no_init):
    torch = pytest.importorskip("torch", minversion="2.1")  # torch.device("meta") as a context, assign=True
    with torch.device("meta"):  # no init, no memory: the weights come from generic_weights
        reference = torch_alexnet(torch) if variant == "torchvision" else torch_paper(torch)
    state = generic_weights({k: tuple(v.shape) for k, v in reference.state_dict().items()})
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, assign=True)
    reference.eval()
    model = alexnet(variant).double().eval()
    model.load_state_dict(state)  # torch's keys and layouts, unchanged
    sizes = [(2, 224), (1, 100)] if variant == "torchvision" else [(2, 227)]  # 100: adaptive pool from 2x2 to 6x6
    rng = np.random.default_rng(0)
    for n, size in sizes:
        x = rng.standard_normal((n, 3, size, size))
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        with minialex.no_grad():
            got = model(to_tensor(x)).numpy()
        assert got.shape == expected.shape and np.abs(expected).std() > 1e-3
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
