"""The embedded default dataset: procedurally drawn textured shapes on cluttered scenes.

A class is a (shape, texture) pair, e.g. "striped star". Each image varies scale, position,
rotation, foreground/background colour, a lighting gradient, distractor shapes and pixel
noise, so a small AlexNet learns it well above chance but not perfectly in a CPU budget.
Everything derives from (dataset seed, split, image index): the same params give the
same bytes, on any machine. So the drawing uses only correctly rounded IEEE operations
(+, -, *, /, sqrt, comparisons) and PCG64's raw integers and doubles, never numpy's sin, cos,
arctan2, hypot or Generator.normal, whose last bits depend on the CPU (harness/prepare/portable.py).
"""

from __future__ import annotations

import numpy as np

from harness.config import SyntheticConfig
from harness.prepare import portable
from harness.prepare.portable import PI, SQRT3

SHAPES = ("disc", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent")
TEXTURES = ("solid", "stripes", "checker", "dots")
SPLIT_IDS = {"train": 0, "val": 1}


def class_names(num_classes: int) -> list[str]:
    """Class k = SHAPES[k % 8] x TEXTURES[k // 8 % 4]; up to 32 distinct classes."""
    pairs = [f"{TEXTURES[t]}-{SHAPES[s]}" for t in range(len(TEXTURES)) for s in range(len(SHAPES))]
    if num_classes > len(pairs):
        raise ValueError(f"synthetic data has at most {len(pairs)} classes")
    return pairs[:num_classes]


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a unit-size shape in rotated, scaled coordinates (u, v)."""
    r2 = u * u + v * v
    if kind == "disc":
        return r2 < 1.0
    if kind == "square":
        return np.maximum(abs(u), abs(v)) < 0.8
    if kind == "triangle":
        return (v > -0.6) & (v < 1.1 - 1.9 * abs(u)) & (v < 1.0)
    if kind == "star":  # r < 0.55 + 0.45 cos^2(5a), a the polar angle: cos 5a = Re((u + iv)^5) / r^5
        r = np.sqrt(r2)
        u2, v2 = u * u, v * v
        re5 = u * (u2 * u2 - 10.0 * u2 * v2 + 5.0 * v2 * v2)
        cos5 = re5 / np.maximum(r2 * r2 * r, 1e-300)  # at the centre re5 = 0: cos5 = 0
        return r < 0.55 + 0.45 * (cos5 * cos5)
    if kind == "cross":
        return ((abs(u) < 0.3) & (abs(v) < 1.0)) | ((abs(v) < 0.3) & (abs(u) < 1.0))
    if kind == "ring":
        return (r2 < 1.0) & (r2 > 0.36)
    if kind == "hexagon":  # |projection| on the normals at 0, 60 and 120 degrees
        h = SQRT3 / 2
        return np.maximum(abs(u), np.maximum(abs(0.5 * u + h * v), abs(-0.5 * u + h * v))) < 0.85
    if kind == "crescent":
        du = u - 0.45
        return (r2 < 1.0) & (du * du + v * v > 0.5625)
    raise ValueError(kind)


def _texture(kind: str, u: np.ndarray, v: np.ndarray, freq: float) -> np.ndarray:
    """Texture intensity in [0, 1] in the shape's own coordinates."""
    if kind == "solid":
        return np.ones_like(u)
    if kind == "stripes":
        return (portable.sin(u * freq) > 0).astype(np.float64)
    if kind == "checker":
        return ((portable.sin(u * freq) > 0) ^ (portable.sin(v * freq) > 0)).astype(np.float64)
    if kind == "dots":
        return ((portable.sin(u * freq) * portable.sin(v * freq)) > 0.35).astype(np.float64)
    raise ValueError(kind)


def _draw(canvas, yy, xx, rng, shape, texture, size, colour, alpha=1.0):
    cx, cy = portable.uniform(rng, 0.25, 0.75, 2) * canvas.shape[0]
    theta = portable.uniform(rng, 0, 2 * PI)
    c, s = portable.cos(theta), portable.sin(theta)
    u = ((xx - cx) * c + (yy - cy) * s) / size
    v = (-(xx - cx) * s + (yy - cy) * c) / size
    mask = _shape_mask(shape, u, v)
    tex = _texture(texture, u, v, freq=portable.uniform(rng, 5.0, 7.0))
    shade = 0.35 + 0.65 * tex  # textured shapes stay visible against the background
    paint = colour[None, None, :] * shade[..., None]
    m = (mask * alpha)[..., None]
    canvas[:] = canvas * (1 - m) + paint * m


def render_image(cfg: SyntheticConfig, size: int, label: int, rng: np.random.Generator) -> np.ndarray:
    """One HxWx3 uint8 image of class `label`."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    bg = portable.uniform(rng, 0, 255, 3)
    grad = portable.normal(rng, 40.0, 3)
    direction = portable.uniform(rng, 0, 2 * PI)
    ramp = (portable.cos(direction) * xx + portable.sin(direction) * yy) / size - 0.5
    canvas = bg[None, None, :] + ramp[..., None] * grad[None, None, :]
    for _ in range(cfg.clutter):  # distractors: smaller, fainter, any shape/texture
        _draw(canvas, yy, xx, rng, SHAPES[rng.integers(len(SHAPES))],
              TEXTURES[rng.integers(len(TEXTURES))], portable.uniform(rng, 0.05, 0.12) * size,
              portable.uniform(rng, 0, 255, 3), alpha=portable.uniform(rng, 0.3, 0.7))
    shape = SHAPES[label % len(SHAPES)]
    texture = TEXTURES[label // len(SHAPES) % len(TEXTURES)]
    _draw(canvas, yy, xx, rng, shape, texture, portable.uniform(rng, 0.18, 0.32) * size,
          portable.uniform(rng, 0, 255, 3))
    light = portable.uniform(rng, 0.6, 1.3)  # global lighting
    canvas = canvas * light + portable.normal(rng, cfg.noise, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def generate(cfg: SyntheticConfig, split: str, size: int, start: int, stop: int):
    """Images [stop-start, size, size, 3] uint8 and labels for indices start..stop-1.

    Labels cycle through the classes (balanced); the RNG of image i depends only on
    (cfg.seed, split, i), so any shard can be regenerated on its own.
    """
    per_class = cfg.train_per_class if split == "train" else cfg.val_per_class
    n = per_class * cfg.num_classes
    stop = min(stop, n)
    images = np.empty((stop - start, size, size, 3), np.uint8)
    labels = np.empty(stop - start, np.int64)
    for j, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([cfg.seed, SPLIT_IDS[split], i])
        labels[j] = i % cfg.num_classes
        images[j] = render_image(cfg, size, int(labels[j]), rng)
    return images, labels


def split_size(cfg: SyntheticConfig, split: str) -> int:
    per_class = cfg.train_per_class if split == "train" else cfg.val_per_class
    return per_class * cfg.num_classes
