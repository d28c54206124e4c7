"""Shapes: a built-in, generated image data set (10 classes, no download).

Every image holds one filled shape -- circle, square, triangle, cross, ring,
star, bar, arrow, hexagon or crescent -- at a random position, size, rotation
and colour, on a random textured background. It is small enough to train an
AlexNet on a laptop CPU in a few minutes, and hard enough that a linear model
on raw pixels fails: the class is in the *shape* of an edge, never in where
the pixels are or what colour they have, and only a model that detects local
patterns anywhere in the image (a convolution) can read it.

How one image is drawn (all batched: each step is a few NumPy array ops over
a chunk of images, never a Python loop over pixels):

1. Background: a random dark base colour, plus a linear colour gradient in a
   random direction, plus "value noise" (random colours on a coarse 4x4 and
   8x8 grid, smoothly interpolated up to the image size).
2. Shape: each pixel centre p is mapped into the shape's own frame,
   q = R^T (p - centre) / radius, and a signed distance function (SDF) of
   the class gives d(q): negative inside, positive outside, in units of the
   radius. d * radius is then the distance in pixels, so
   coverage = clip(0.5 - d * radius, 0, 1) is a one-pixel-wide anti-aliased
   edge for free, with no supersampling.
3. Compose: image = (1 - coverage) * background + coverage * shape colour,
   where the shape colour is bright (every channel above the background's
   base), and the shape gets a little of the texture too; then pixel noise,
   clip to [0, 1] and quantise to uint8.

Why bright on dark: with the shape's and the background's colours both free,
an edge can be light-to-dark or dark-to-light in each channel, and a CNN's
first layer needs both polarities of every edge before anything is learned;
measured on this set, the small AlexNet (and a 3-layer CNN) then sat at
chance for thousands of images. A fixed polarity keeps the colours random,
so a linear model still fails (about 20% held out, see the tests), while a
CNN learns from the first epoch.

Byte-identical on every machine: the random numbers come from NumPy's PCG64
(`np.random.default_rng`), which is specified bit for bit, and the pixels are
computed with +, -, *, /, sqrt, min, max and comparisons only. IEEE 754
rounds those exactly, whatever the CPU or SIMD width; sin, cos, exp and log
are not (their last bit depends on the maths library), so this file never
calls them: rotations come from random unit vectors, drawn by rejection
sampling, and the polygons' corners are written out as numbers. Reductions
(sum, matmul) are avoided too, since their summation order may vary.

Notation: N images, C = 3 colour channels, H = W = image_size, and K the
number of images of one class inside a chunk.
"""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring",
    "star", "bar", "arrow", "hexagon", "crescent",
)

TRAIN_SIZE = 6000    # default number of images of load_shapes("train")
VAL_SIZE = 2000      # default number of images of load_shapes("val")

# Difficulty knobs (colours are in [0, 1]).
RADIUS_RANGE = (0.22, 0.42)   # shape radius, as a fraction of image_size
GRADIENT = 0.3                # largest colour change across the background
TEXTURE = (0.2, 0.1)          # amplitude of the 4x4 and 8x8 value-noise octaves
SHAPE_TEXTURE = 0.3           # how much of the background texture the shape gets
BACKGROUND_RANGE = (0.0, 0.4)  # each channel of the background's base colour (dark)
SHAPE_RANGE = (0.6, 1.0)       # each channel of the shape's colour (bright)
PIXEL_NOISE = 0.08            # half-width of the per-pixel noise
CHUNK = 1000                  # images drawn at once (bounds the memory)

# ----------------------------------------------------------------------------
# Polygons, corners in counter-clockwise order, radius about 1.
# Written as decimals (not cos/sin) so they are the same bits everywhere.
# ----------------------------------------------------------------------------
_S3 = 0.8660254037844386  # sqrt(3) / 2

_POLYGONS = {
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    # equilateral triangle with its centroid at the origin
    "triangle": np.array([[0.0, 1.0], [-_S3, -0.5], [_S3, -0.5]]),
    # plus sign: two bars of half-length 0.95 and half-width 0.3
    "cross": np.array([
        [0.3, -0.95], [0.3, -0.3], [0.95, -0.3], [0.95, 0.3], [0.3, 0.3], [0.3, 0.95],
        [-0.3, 0.95], [-0.3, 0.3], [-0.95, 0.3], [-0.95, -0.3], [-0.3, -0.3], [-0.3, -0.95],
    ]),
    # five-pointed star: outer corners at radius 1, inner corners at radius 0.45
    "star": np.array([
        [0.0, 1.0], [-0.2645033, 0.3640576],
        [-0.9510565, 0.3090170], [-0.4279754, -0.1390576],
        [-0.5877853, -0.8090170], [0.0, -0.45],
        [0.5877853, -0.8090170], [0.4279754, -0.1390576],
        [0.9510565, 0.3090170], [0.2645033, 0.3640576],
    ]),
    # shaft from x=-0.9 to 0.1, head from 0.1 to 0.95
    "arrow": np.array([
        [-0.9, -0.22], [0.1, -0.22], [0.1, -0.62], [0.95, 0.0],
        [0.1, 0.62], [0.1, 0.22], [-0.9, 0.22],
    ]),
    "hexagon": 0.95 * np.array([
        [1.0, 0.0], [0.5, _S3], [-0.5, _S3], [-1.0, 0.0], [-0.5, -_S3], [0.5, -_S3],
    ]),
}


def _polygon_sdf(u: np.ndarray, v: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Exact signed distance from points (u, v) to a polygon (any shape, no holes).

    Distance: the smallest distance to any edge segment. Sign: a point is
    inside when a ray from it to the right crosses the boundary an odd number
    of times (the even-odd rule; Inigo Quilez's sdPolygon).
    """
    dist2 = np.full(u.shape, np.inf, dtype=u.dtype)
    inside = np.zeros(u.shape, dtype=bool)
    pts = corners.tolist()               # Python floats keep u's dtype (float32)
    for i in range(len(pts)):
        ax, ay = pts[i - 1]              # edge from corner a ...
        bx, by = pts[i]                  # ... to corner b
        ex, ey = ax - bx, ay - by
        wx, wy = u - bx, v - by
        # closest point on the segment: b + t e, with t clipped to [0, 1]
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dx, dy = wx - t * ex, wy - t * ey
        np.minimum(dist2, dx * dx + dy * dy, out=dist2)
        # does the horizontal ray from (u, v) to the right cross this edge?
        straddles = (v >= by) != (v >= ay)
        crosses = straddles & ((ex * wy > ey * wx) == (ay > by))
        inside ^= crosses
    d = np.sqrt(dist2)
    return np.where(inside, -d, d)


def _sdf(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance of class `name` at local coordinates (u, v): < 0 inside."""
    if name in _POLYGONS:
        return _polygon_sdf(u, v, _POLYGONS[name])
    r = np.sqrt(u * u + v * v)
    if name == "circle":
        return r - 0.85
    if name == "ring":                       # |distance to the middle circle| - half-width
        return np.abs(r - 0.72) - 0.26
    if name == "bar":                        # capsule: segment (-0.9,0)-(0.9,0) grown by 0.26
        dx = np.maximum(np.abs(u) - 0.9, 0.0)
        return np.sqrt(dx * dx + v * v) - 0.26
    if name == "crescent":                   # disc minus a disc shifted to the right
        du = u - 0.45
        return np.maximum(r - 0.9, 0.78 - np.sqrt(du * du + v * v))
    raise KeyError(name)


# ----------------------------------------------------------------------------
# Random helpers, built from uniform numbers and arithmetic only.
# ----------------------------------------------------------------------------

def _unit_vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n random directions, uniform in angle: (cos a, sin a) without calling cos/sin.

    Points drawn uniformly in the square [-1, 1]^2 and kept when inside the
    unit disc (and not too near its centre) point in a uniform direction.
    """
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        p = rng.random((2 * n + 16, 2)) * 2.0 - 1.0          # (M, 2)
        r2 = p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1]
        p = p[(r2 <= 1.0) & (r2 >= 0.01)]
        found.append(p)
        count += len(p)
    p = np.concatenate(found)[:n]                              # (n, 2)
    r = np.sqrt(p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1])
    return p[:, 0] / r, p[:, 1] / r


def _value_noise(rng: np.random.Generator, n: int, cells: int, size: int) -> np.ndarray:
    """Smooth random colour fields: (n, 3, size, size), values in [-1, 1].

    Random values at the corners of a `cells` x `cells` grid, blended between
    neighbouring corners with the smoothstep weight 3t^2 - 2t^3.
    """
    grid = (rng.random((n, 3, cells + 1, cells + 1), dtype=np.float32) * 2 - 1)
    pos = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(cells / size)  # (size,)
    i0 = pos.astype(np.int64)                                  # left/top grid corner
    t = pos - i0
    t = t * t * (3 - 2 * t)                                   # smoothstep
    # along x: (n, 3, cells+1, size)
    rows = grid[:, :, :, i0] * (1 - t) + grid[:, :, :, i0 + 1] * t
    # along y: (n, 3, size, size)
    return rows[:, :, i0, :] * (1 - t)[:, None] + rows[:, :, i0 + 1, :] * t[:, None]


def _draw(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Draw one chunk of images as float32 (N, 3, H, W) in [0, 1]."""
    N = len(labels)
    f32 = np.float32

    # --- background: base colour + gradient + two octaves of value noise
    lo, hi = BACKGROUND_RANGE
    base = f32(lo) + rng.random((N, 3), dtype=f32) * f32(hi - lo)             # (N, 3)
    gx, gy = _unit_vectors(rng, N)
    grad_amp = (rng.random((N, 3), dtype=f32) * 2 - 1) * f32(GRADIENT)
    ramp = (np.arange(size, dtype=f32) + 0.5) / f32(size) - f32(0.5)          # (W,) in (-0.5, 0.5)
    # (N, 1, H, W): position along the gradient direction
    along = (gx.astype(f32)[:, None, None, None] * ramp[None, None, None, :]
             + gy.astype(f32)[:, None, None, None] * ramp[None, None, :, None])
    texture = (f32(TEXTURE[0]) * _value_noise(rng, N, 4, size)
               + f32(TEXTURE[1]) * _value_noise(rng, N, 8, size))           # (N, 3, H, W)
    background = base[:, :, None, None] + grad_amp[:, :, None, None] * along + texture

    # --- shape colour: brighter than the background in every channel
    lo, hi = SHAPE_RANGE
    colour = f32(lo) + rng.random((N, 3), dtype=f32) * f32(hi - lo)           # (N, 3)

    # --- geometry: centre, radius (pixels), rotation
    radius = (RADIUS_RANGE[0] + rng.random(N) * (RADIUS_RANGE[1] - RADIUS_RANGE[0])) * size
    # centre anywhere that keeps most of the shape (80% of its radius) inside
    margin = 0.8 * radius
    cx = margin + rng.random(N) * (size - 2 * margin)
    cy = margin + rng.random(N) * (size - 2 * margin)
    cos_a, sin_a = _unit_vectors(rng, N)
    pix = np.arange(size) + 0.5                                   # pixel centres
    dx = pix[None, None, :] - cx[:, None, None]                   # (N, 1, W)
    dy = pix[None, :, None] - cy[:, None, None]                   # (N, H, 1)
    # rotate by -a and divide by the radius: the shape's own frame, (N, H, W)
    inv_r = (1.0 / radius)[:, None, None]
    u = ((cos_a[:, None, None] * dx + sin_a[:, None, None] * dy) * inv_r).astype(f32)
    v = ((cos_a[:, None, None] * dy - sin_a[:, None, None] * dx) * inv_r).astype(f32)

    coverage = np.empty((N, size, size), dtype=f32)
    for k, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == k)
        if len(idx):
            d = _sdf(name, u[idx], v[idx])                        # (K, H, W), in radii
            coverage[idx] = np.clip(0.5 - d * radius[idx, None, None].astype(f32), 0.0, 1.0)
    coverage = coverage[:, None]                                   # (N, 1, H, W)

    # --- compose, then per-pixel noise (triangular, from two uniforms)
    shape = colour[:, :, None, None] + f32(SHAPE_TEXTURE) * texture
    img = background + coverage * (shape - background)
    noise = rng.random(img.shape, dtype=f32) - rng.random(img.shape, dtype=f32)
    img += f32(PIXEL_NOISE) * noise
    return img


def _generate(rng: np.random.Generator, n: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)     # balanced ...
    labels = rng.permutation(labels)                         # ... in random order
    images = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        img = _draw(rng, labels[start:stop], image_size)
        np.clip(img, 0.0, 1.0, out=img)
        images[start:stop] = (img * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    return images, labels


def _check(n, image_size) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"shapes: n={n!r} is not a positive integer; expected the number of "
                         "images to draw, e.g. n=1000; pass an int >= 1.")
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 16:
        raise ValueError(f"shapes: image_size={image_size!r} is too small or not an int; expected "
                         "an int >= 16 (default 32); pass image_size=32 or larger.")


def make_shapes(n: int, seed: int = 0, image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` shape images.

    Returns images uint8 (n, 3, image_size, image_size) NCHW and labels int64
    (n,) indexing CLASSES: classes as balanced as n allows, in random order.
    The same seed gives byte-identical arrays on any machine.
    """
    _check(n, image_size)
    return _generate(np.random.default_rng(seed), int(n), int(image_size))


_SPLITS = {"train": (0, TRAIN_SIZE), "val": (1, VAL_SIZE)}


def load_shapes(split: str = "train", n: int | None = None, seed: int = 0, image_size: int = 32):
    """The shapes data set, split "train" (6000 images) or "val" (2000 images).

    The two splits come from different random streams derived from `seed`
    (np.random.default_rng([seed, 0]) and [seed, 1], which never coincide
    with make_shapes' default_rng(seed)), so they share no image.
    Returns (images uint8 NCHW, labels int64).
    """
    if split not in _SPLITS:
        raise ValueError(f"load_shapes: unknown split {split!r}; expected 'train' or 'val'; "
                         "pass split='train' or split='val'.")
    stream, default_n = _SPLITS[split]
    n = default_n if n is None else n
    _check(n, image_size)
    return _generate(np.random.default_rng([seed, stream]), int(n), int(image_size))
