"""A learnable CIFAR-10 in the distributed python-pickle layout, made by the tests (no download).

cifar-10-batches-py/: data_batch_1..5 and test_batch, each a dict with b"data" uint8 [N, 3072]
(1024 red, 1024 green, 1024 blue values, row-major 32x32), b"labels", b"batch_label" and
b"filenames", plus batches.meta with b"label_names" (Python 2 pickles, protocol 2), as in
cifar-10-python.tar.gz. Unlike tests/imagenet_fixtures.py's noise images, each class has its own
colour and stripe orientation under noise, so the nets learn it in a few steps.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np

LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def image(label: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [32, 32, 3]: a class colour, stripes of a class orientation and period, noise."""
    hue = np.array([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256], np.float64)
    y, x = np.mgrid[0:32, 0:32]
    angle = np.pi * label / 10
    stripes = np.sin((np.cos(angle) * x + np.sin(angle) * y) * (2 * np.pi / (4 + label % 3)))
    img = 0.6 * hue + 60 * stripes[..., None] + rng.normal(0, 25, (32, 32, 3)) + 40
    return np.clip(img, 0, 255).astype(np.uint8)


def batch(name: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    labels = [int(v) for v in rng.integers(0, 10, n)]
    pixels = np.stack([image(lab, rng) for lab in labels])  # [N, 32, 32, 3]
    data = pixels.transpose(0, 3, 1, 2).reshape(n, 3072)  # channel-planar rows, as distributed
    return {b"batch_label": f"{name} of 1".encode(), b"labels": labels, b"data": data,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}


def make_cifar10(dst: Path, per_batch: int = 30, as_tar: bool = False, seed: int = 0) -> Path:
    """dst/cifar-10-batches-py/ (returned), or dst/cifar-10-python.tar.gz with as_tar: 5 x per_batch
    training images and per_batch test images."""
    folder = Path(dst) / (".build" if as_tar else "") / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch(name, per_batch, seed), protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"num_vis": 3072, b"label_names": [n.encode() for n in LABEL_NAMES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    if not as_tar:
        return folder
    tar = Path(dst) / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(folder, arcname="cifar-10-batches-py")
    shutil.rmtree(folder.parent)  # only the archive, as downloaded
    return tar
