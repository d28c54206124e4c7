"""AlexNet, every variant found in the literature, each written as a plain list of layers.

    model = alexnet("paper")                      # Krizhevsky et al. 2012, two towers, 3x227x227
    model = alexnet("torchvision")                # same state_dict keys as torchvision.models.alexnet
    model = alexnet("small", num_classes=10)      # 3x32x32, trains on a laptop CPU

Every model is an ``AlexNet``: ``features`` (a Sequential of convolutions, ReLUs, LRNs and pools),
an optional ``avgpool``, then ``flatten(x, 1)``, then ``classifier`` (a Sequential of Linear, ReLU
and Dropout). The comment after each layer is the shape of one image after that layer, C x H x W,
at the variant's native input size. ``docs/variants.md`` compares the variants and explains where
each number comes from; ``minialex.models.summary(model, input_shape)`` prints the same table.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from minialex import nn
from minialex.models.summary import describe_fit
from minialex.nn import init
from minialex.ops.basic import flatten

__all__ = ["AlexNet", "alexnet", "alexnet_from_layers", "VARIANTS", "Variant", "identify"]


class AlexNet(nn.Module):
    """features -> (avgpool) -> flatten(1) -> classifier.

    ``features`` and ``classifier`` are Sequentials (a list or tuple of layers is wrapped in one), so
    the parameters get PyTorch's dotted names: ``features.0.weight``, ``classifier.6.bias``.
    ``config`` records how ``alexnet()`` built the model (None for a model built by hand).
    """

    def __init__(self, features, classifier, avgpool=None, config=None):
        super().__init__()
        self.features = _sequential(features, "features")
        self.avgpool = avgpool
        self.classifier = _sequential(classifier, "classifier")
        self.config = dict(config) if config else None

    def forward(self, x):
        input_shape = tuple(x.shape)
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        feature_shape = tuple(x.shape)
        x = flatten(x, 1)                                    # (N, C*H*W)
        first = next(((n, m) for n, m in self.classifier.named_modules("classifier")
                      if isinstance(m, nn.Linear)), None)
        if first is not None and x.shape[1] != first[1].in_features:
            raise ValueError(self._mismatch(feature_shape, *first, input_shape))
        return self.classifier(x)

    def _mismatch(self, feature_shape, name, linear, input_shape):
        """Which layer, what it got, what it expected, and an input size that would fit."""
        layers = list(_leaves(self.features)) + ([self.avgpool] if self.avgpool is not None else [])
        got = "x".join(map(str, feature_shape[1:]))
        return (f"{self.name()}: {name} ({linear!r}) expects {linear.in_features} values per image, but the "
                f"features give {got} = {int(np.prod(feature_shape[1:]))} for an input of {input_shape}; "
                f"{describe_fit(layers + [linear], input_shape)}")

    def name(self) -> str:
        """``alexnet('paper', towers=1)``-style description (``AlexNet`` for a hand-built model)."""
        if not self.config:
            return "AlexNet"
        c = dict(self.config)
        args = [repr(c.pop("variant"))] + [f"{k}={v!r}" for k, v in c.items()]
        return f"alexnet({', '.join(args)})"


def alexnet_from_layers(features, classifier, avgpool=None) -> AlexNet:
    """Build your own AlexNet from lists of layers, for example::

        model = alexnet_from_layers(
            [nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)],   # 32x13x13 at 28x28
            [nn.Linear(32 * 13 * 13, 10)])

    then check every shape with ``minialex.models.summary(model, (1, 28, 28))``."""
    return AlexNet(features, classifier, avgpool)


def _sequential(layers, what):
    if isinstance(layers, nn.Sequential):
        return layers
    if isinstance(layers, (list, tuple)):
        return nn.Sequential(*layers)
    raise TypeError(f"AlexNet: {what} must be a Sequential or a list of layers, got {type(layers).__name__}")


def _leaves(module):
    """The modules without children, in registration order (the order a Sequential calls them)."""
    return (m for m in module.modules() if not m._modules)


# =============================================================================================
# The variants. Shapes in the comments: one image, C x H x W, at the native input size.
# =============================================================================================


def _paper(num_classes, in_channels, towers=2, conv1_padding=0, dropout=0.5):
    """Krizhevsky, Sutskever, Hinton (NIPS 2012). ``towers=2`` splits conv2, conv4 and conv5 over two
    groups as the two GPUs did; ``conv1_padding=2`` takes 224x224 inputs instead of 227x227."""
    if towers not in (1, 2):
        raise ValueError(f"alexnet('paper'): towers must be 1 or 2, got {towers!r}")
    g = towers
    features = nn.Sequential(                                        # 3x227x227
        nn.Conv2d(in_channels, 96, 11, stride=4, padding=conv1_padding),  # 96x55x55   conv1
        nn.ReLU(),
        nn.LocalResponseNorm.from_paper(),                               # k=2, n=5, alpha=1e-4, beta=0.75
        nn.MaxPool2d(3, 2),                                              # 96x27x27
        nn.Conv2d(96, 256, 5, padding=2, groups=g),                      # 256x27x27  conv2
        nn.ReLU(),
        nn.LocalResponseNorm.from_paper(),
        nn.MaxPool2d(3, 2),                                              # 256x13x13
        nn.Conv2d(256, 384, 3, padding=1),                               # 384x13x13  conv3 (sees both towers)
        nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=g),                     # 384x13x13  conv4
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=g),                     # 256x13x13  conv5
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 256x6x6
    )
    classifier = nn.Sequential(                                      # 9216
        nn.Linear(256 * 6 * 6, 4096),                                    # 4096  fc6
        nn.ReLU(),
        nn.Dropout(dropout),                                             # the paper drops fc6's outputs
        nn.Linear(4096, 4096),                                           # 4096  fc7
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(4096, num_classes),                                    # classes  fc8
    )
    # weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 (ReLUs start in their linear
    # part), 0 in conv1, conv3, fc8
    layers = [m for m in list(features) + list(classifier) if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, layer in enumerate(layers):                               # conv1..conv5, fc6..fc8
        init.normal_(layer.weight, 0.0, 0.01)
        init.constant_(layer.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)
    return features, None, classifier


def _torchvision(num_classes, in_channels, dropout=0.5):
    """``torchvision.models.alexnet``: the same layers at the same indices, hence the same
    state_dict keys; PyTorch's default initialisation. (After Krizhevsky's 2014 "One weird trick".)"""
    features = nn.Sequential(                                        # 3x224x224
        nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),             # 0  64x55x55
        nn.ReLU(),                                                       # 1
        nn.MaxPool2d(3, 2),                                              # 2  64x27x27
        nn.Conv2d(64, 192, 5, padding=2),                                # 3  192x27x27
        nn.ReLU(),                                                       # 4
        nn.MaxPool2d(3, 2),                                              # 5  192x13x13
        nn.Conv2d(192, 384, 3, padding=1),                               # 6  384x13x13
        nn.ReLU(),                                                       # 7
        nn.Conv2d(384, 256, 3, padding=1),                               # 8  256x13x13
        nn.ReLU(),                                                       # 9
        nn.Conv2d(256, 256, 3, padding=1),                               # 10 256x13x13
        nn.ReLU(),                                                       # 11
        nn.MaxPool2d(3, 2),                                              # 12 256x6x6
    )
    avgpool = nn.AdaptiveAvgPool2d((6, 6))                           # 256x6x6 whatever the input size
    classifier = nn.Sequential(                                      # 9216
        nn.Dropout(dropout),                                             # 0  dropout *before* fc6
        nn.Linear(256 * 6 * 6, 4096),                                    # 1  4096
        nn.ReLU(),                                                       # 2
        nn.Dropout(dropout),                                             # 3
        nn.Linear(4096, 4096),                                           # 4  4096
        nn.ReLU(),                                                       # 5
        nn.Linear(4096, num_classes),                                    # 6  classes
    )
    return features, avgpool, classifier


def _d2l(num_classes, in_channels, dropout=0.5):
    """Dive into Deep Learning (the Chinese PyTorch edition, as in the seed document): Fashion-MNIST
    resized to 1x224x224. conv1 has no padding, as the seed listing; the d2l book's own code pads it
    by 1. Both give 54x54: floor((224 - 11) / 4) + 1 = floor((224 + 2 - 11) / 4) + 1 = 54, so the
    maps shrink to 26, 12, 5 and the classifier reads 256*5*5 = 6400 values. PyTorch's default init."""
    features = nn.Sequential(                                        # 1x224x224
        nn.Conv2d(in_channels, 96, 11, stride=4),                        # 96x54x54
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 96x26x26
        nn.Conv2d(96, 256, 5, padding=2),                                # 256x26x26
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 256x12x12
        nn.Conv2d(256, 384, 3, padding=1),                               # 384x12x12
        nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1),                               # 384x12x12
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),                               # 256x12x12
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 256x5x5
    )
    classifier = nn.Sequential(                                      # 6400
        nn.Linear(256 * 5 * 5, 4096),                                    # 4096
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),                                           # 4096
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(4096, num_classes),                                    # 10
    )
    return features, None, classifier


def _half(num_classes, in_channels, dropout=0.5):
    """The half-width net of the flower-classification blog (one of the paper's two towers):
    torchvision's kernels, strides and pools, no LRN, no avgpool. Its ``_initialize_weights``,
    always applied here: Kaiming-normal (fan_out, ReLU) convolutions, N(0, 0.01) linear layers,
    zero biases."""
    features = nn.Sequential(                                        # 3x224x224
        nn.Conv2d(in_channels, 48, 11, stride=4, padding=2),             # 48x55x55
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 48x27x27
        nn.Conv2d(48, 128, 5, padding=2),                                # 128x27x27
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 128x13x13
        nn.Conv2d(128, 192, 3, padding=1),                               # 192x13x13
        nn.ReLU(),
        nn.Conv2d(192, 192, 3, padding=1),                               # 192x13x13
        nn.ReLU(),
        nn.Conv2d(192, 128, 3, padding=1),                               # 128x13x13
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 128x6x6
    )
    classifier = nn.Sequential(                                      # 4608
        nn.Dropout(dropout),
        nn.Linear(128 * 6 * 6, 2048),                                    # 2048
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(2048, 2048),                                           # 2048
        nn.ReLU(),
        nn.Linear(2048, num_classes),                                    # classes
    )
    for layer in list(features) + list(classifier):
        if isinstance(layer, nn.Conv2d):
            init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            init.normal_(layer.weight, 0.0, 0.01)
            init.zeros_(layer.bias)
    return features, None, classifier


def _tf(num_classes, in_channels, dropout=0.5):
    """The TensorFlow 1 blog listing, in NCHW. Kept as listed: average (not max) pooling, LRN after
    pooling with ``tf.nn.lrn(x, 5, bias=1.0, alpha=0.001/9.0, beta=0.75)`` (depth_radius 5: an
    11-channel window), fc7 2048 wide. Init as the listing: truncated normal (redrawn beyond two
    std), std 1e-4 conv1, 0.01 conv2..conv5, 0.1 fully connected; biases 0 in conv1 and fc8, 0.1
    elsewhere. The listing is NHWC: it flattens H, W, C where we flatten C, H, W, so weights taken
    from a TensorFlow checkpoint need fc6's rows permuted (and every kernel transposed)."""
    features = nn.Sequential(                                        # 3x227x227
        nn.Conv2d(in_channels, 96, 11, stride=4),                        # 96x55x55   VALID
        nn.ReLU(),
        nn.AvgPool2d(3, 2),                                              # 96x27x27   VALID
        nn.LocalResponseNorm.from_tensorflow(depth_radius=5, bias=1.0, alpha=0.001 / 9, beta=0.75),
        nn.Conv2d(96, 256, 5, padding="same"),                           # 256x27x27  SAME
        nn.ReLU(),
        nn.AvgPool2d(3, 2),                                              # 256x13x13
        nn.LocalResponseNorm.from_tensorflow(depth_radius=5, bias=1.0, alpha=0.001 / 9, beta=0.75),
        nn.Conv2d(256, 384, 3, padding="same"),                          # 384x13x13
        nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding="same"),                          # 384x13x13
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding="same"),                          # 256x13x13
        nn.ReLU(),
        nn.AvgPool2d(3, 2),                                              # 256x6x6
    )
    classifier = nn.Sequential(                                      # 9216
        nn.Linear(256 * 6 * 6, 4096),                                    # 4096  fc1
        nn.ReLU(),
        nn.Dropout(dropout),                                             # tf.nn.dropout(fc1, 0.5)
        nn.Linear(4096, 2048),                                           # 2048  fc2
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(2048, num_classes),                                    # classes  fc3
    )
    layers = [m for m in list(features) + list(classifier) if isinstance(m, (nn.Conv2d, nn.Linear))]
    stds = (1e-4, 0.01, 0.01, 0.01, 0.01, 0.1, 0.1, 0.1)
    biases = (0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0)
    for layer, std, bias in zip(layers, stds, biases):
        init.trunc_normal_(layer.weight, 0.0, std, -2 * std, 2 * std)  # tf.truncated_normal(stddev=std)
        init.constant_(layer.bias, bias)
    return features, None, classifier


def _small(num_classes, in_channels, image_size=None, dropout=0.5):
    """AlexNet's structure at CIFAR-10 / MNIST size: five convolutions, LRN after conv1 and conv2,
    overlapping max-pools after conv1, conv2 and conv5, three fully connected layers with dropout
    on the outputs of the first two. ``image_size`` (default 32, or 28 when ``in_channels=1``) sizes
    the first Linear: the last map is 3x3 at 32 and 2x2 at 28 (no adaptive pooling, which would
    stretch 2x2 to 3x3). About 1.2 M parameters at 32x32.

    Init: He (Kaiming) normal, std sqrt(2 / fan_in), for every layer followed by a ReLU, zero
    biases; the last Linear keeps PyTorch's default. With PyTorch's default everywhere (std
    sqrt(1 / (3 fan_in))) each of the seven ReLU layers shrinks the signal's variance about six
    times, the two LRNs shrink it again, and on the built-in data set the loss sat at ln 10 for
    the whole first epoch (Adam or SGD); with He init it falls from the first hundred steps."""
    S = image_size if image_size is not None else (28 if in_channels == 1 else 32)
    if isinstance(S, bool) or not isinstance(S, int) or _pool(_pool(_pool(S))) < 1:
        raise ValueError(f"alexnet('small'): image_size must be an int >= 15 (28 and 32 are the usual), "
                         f"got {image_size!r}")
    s = _pool(_pool(_pool(S)))                                       # 3 at 32, 2 at 28
    features = nn.Sequential(                                        # 3x32x32 (1x28x28)
        nn.Conv2d(in_channels, 48, 5, padding=2),                        # 48x32x32
        nn.ReLU(),
        nn.LocalResponseNorm.from_paper(),
        nn.MaxPool2d(3, 2),                                              # 48x15x15  (13x13)
        nn.Conv2d(48, 96, 5, padding=2),                                 # 96x15x15
        nn.ReLU(),
        nn.LocalResponseNorm.from_paper(),
        nn.MaxPool2d(3, 2),                                              # 96x7x7    (6x6)
        nn.Conv2d(96, 128, 3, padding=1),                                # 128x7x7
        nn.ReLU(),
        nn.Conv2d(128, 128, 3, padding=1),                               # 128x7x7
        nn.ReLU(),
        nn.Conv2d(128, 96, 3, padding=1),                                # 96x7x7
        nn.ReLU(),
        nn.MaxPool2d(3, 2),                                              # 96x3x3    (2x2)
    )
    classifier = nn.Sequential(                                      # 864 (384)
        nn.Linear(96 * s * s, 512),                                      # 512
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, 512),                                             # 512
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, num_classes),                                     # classes
    )
    for layer in list(features) + list(classifier)[:-1]:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            init.kaiming_normal_(layer.weight, nonlinearity="relu")
            init.zeros_(layer.bias)
    return features, None, classifier


def _pool(size):
    """Output size of a 3x3 stride-2 pool without padding."""
    return (size - 3) // 2 + 1 if size >= 3 else 0


# =============================================================================================
# The registry and the factory
# =============================================================================================


@dataclass(frozen=True)
class Variant:
    description: str
    input_shape: tuple          # native input, C x H x W
    num_classes: int            # default number of classes
    builder: object = field(repr=False)   # the function that lists the layers


VARIANTS = {
    "paper": Variant("Krizhevsky et al. 2012: 96-256-384-384-256, two towers (groups=2), LRN, "
                     "max-pool 3/2, 4096-4096; conv1_padding=2 for 224x224", (3, 227, 227), 1000, _paper),
    "torchvision": Variant("torchvision.models.alexnet: 64-192-384-256-256, no LRN, adaptive avg-pool "
                           "to 6x6, dropout before fc6 and fc7", (3, 224, 224), 1000, _torchvision),
    "d2l": Variant("Dive into Deep Learning (Fashion-MNIST): 1 channel, conv1 unpadded (54x54), "
                   "6400-4096-4096-10", (1, 224, 224), 10, _d2l),
    "half": Variant("half width (flower blog): 48-128-192-192-128, 4608-2048-2048, Kaiming init",
                    (3, 224, 224), 1000, _half),
    "tf": Variant("TensorFlow 1 blog listing: avg-pool, LRN after pooling (11-channel window), "
                  "4096-2048, truncated-normal init", (3, 227, 227), 1000, _tf),
    "small": Variant("AlexNet's structure for 32x32 (or 28x28) images: 48-96-128-128-96, "
                     "512-512, ~1.2 M parameters", (3, 32, 32), 10, _small),
}


def alexnet(variant: str = "torchvision", num_classes: int | None = None, in_channels: int | None = None,
            **options) -> AlexNet:
    """Build one of the AlexNet variants of ``VARIANTS``.

    Args:
        variant: "paper", "torchvision", "d2l", "half", "tf" or "small".
        num_classes: outputs of the last layer (default: 1000, or 10 for "d2l" and "small").
        in_channels: channels of the input image (default: 1 for "d2l", 3 for the others).
        options: per variant -- paper: ``towers`` (2 or 1), ``conv1_padding`` (0, or 2 for 224x224);
            small: ``image_size`` (32 or 28); all: ``dropout`` (the probability, 0.5).

    Weights are drawn from minialex's generator: ``minialex.manual_seed(s)`` first to reproduce them.
    """
    if variant not in VARIANTS:
        raise ValueError(f"alexnet: unknown variant {variant!r}; the variants are {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    known = list(inspect.signature(spec.builder).parameters)[2:]
    unknown = [name for name in options if name not in known]
    if unknown:
        raise ValueError(f"alexnet({variant!r}): unknown option {', '.join(map(repr, unknown))}; the options "
                         f"of {variant!r} are {', '.join(known)} (plus num_classes and in_channels)")
    num_classes = spec.num_classes if num_classes is None else num_classes
    in_channels = spec.input_shape[0] if in_channels is None else in_channels
    features, avgpool, classifier = spec.builder(num_classes, in_channels, **options)
    config = dict(variant=variant, num_classes=num_classes, in_channels=in_channels, **options)
    return AlexNet(features, classifier, avgpool, config=config)


# Which variant a state_dict comes from, told by the shapes of a few weights (None: any size; the
# first conv's input channels and the last layer's classes may be anything). tests/test_models.py
# checks this table against the built models.
_FINGERPRINTS = {
    ("paper", ()): {"features.0.weight": (96, None, 11, 11), "features.4.weight": (256, 48, 5, 5),
                    "features.10.weight": (384, 192, 3, 3), "classifier.0.weight": (4096, 9216),
                    "classifier.3.weight": (4096, 4096)},
    ("paper", (("towers", 1),)): {"features.0.weight": (96, None, 11, 11), "features.4.weight": (256, 96, 5, 5),
                                  "features.10.weight": (384, 384, 3, 3), "classifier.0.weight": (4096, 9216),
                                  "classifier.3.weight": (4096, 4096)},
    ("torchvision", ()): {"features.0.weight": (64, None, 11, 11), "features.3.weight": (192, 64, 5, 5),
                          "classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096)},
    ("d2l", ()): {"features.0.weight": (96, None, 11, 11), "features.3.weight": (256, 96, 5, 5),
                  "classifier.0.weight": (4096, 6400), "classifier.3.weight": (4096, 4096)},
    ("half", ()): {"features.0.weight": (48, None, 11, 11), "features.3.weight": (128, 48, 5, 5),
                   "classifier.1.weight": (2048, 4608), "classifier.4.weight": (2048, 2048)},
    ("tf", ()): {"features.0.weight": (96, None, 11, 11), "features.4.weight": (256, 96, 5, 5),
                 "classifier.0.weight": (4096, 9216), "classifier.3.weight": (2048, 4096)},
    ("small", ()): {"features.0.weight": (48, None, 5, 5), "features.4.weight": (96, 48, 5, 5),
                    "classifier.0.weight": (512, None), "classifier.3.weight": (512, 512)},
}


def identify(shapes) -> str | None:
    """Which ``alexnet(...)`` call gives parameters of these shapes: ``shapes`` maps state_dict keys
    to arrays or shapes. Returns e.g. ``"alexnet('paper', num_classes=1000, in_channels=3, towers=1)"``,
    or None if no variant matches."""
    shapes = {k: tuple(getattr(v, "shape", v)) for k, v in shapes.items()}
    last = max((k for k in shapes if k.startswith("classifier.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]), default=None)
    for (variant, options), fingerprint in _FINGERPRINTS.items():
        if all(k in shapes and len(shapes[k]) == len(want) and all(w is None or w == d for w, d in
               zip(want, shapes[k])) for k, want in fingerprint.items()):
            args = [repr(variant), f"num_classes={shapes[last][0]}",
                    f"in_channels={shapes['features.0.weight'][1]}"] + [f"{k}={v!r}" for k, v in options]
            return f"alexnet({', '.join(args)})"
    return None
