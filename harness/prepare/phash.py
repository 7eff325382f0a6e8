"""Perceptual hashes and an exact Hamming-radius lookup: the near-duplicate check of the Fall-2011
path (paper 6 pre-trains on Fall 2011 and reports on ILSVRC-2012 val; docs/paper.md, "The Fall-2011
path").

The hash is the DCT hash of Zauner (2010), the `phash` of the imagehash package: the whole decoded
image (no crop), resized to 32 x 32 (antialiased bilinear; imagehash turns to grey first, the same
up to rounding as both are linear), turned to grey (ITU-R 601 luma), its 2-D DCT-II, the 8 x 8
lowest frequencies, one bit per coefficient: 1 when it is above their median.
A re-encoding, a resize, a PNG copy or a mild change of brightness moves a few of the 64 bits; a
different photograph moves about half of them. benchmarks/near_duplicates.py measures both on the
real sample JPEGs. A crop moves the whole frame and many bits: crops are not caught.

The lookup compares every query with every reference hash (XOR and popcount, 256 queries at a
time): about 50 microseconds per query against ILSVRC-2012 val's 50,000 on one core (the median
of 5 runs; single runs took up to 130), so 12 to 30 minutes for the 14.2M images of Fall 2011,
about 4% of the time it takes to decode and hash them. A multi-index (Norouzi, Punjani &
Fleet 2012) measured about 3 times faster here, not worth its code.
"""

from __future__ import annotations

import numpy as np

from harness.data import imaging

SIDE = 32  # the grey thumbnail
LOW = 8  # LOW x LOW lowest frequencies: 64 bits
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's convert("L")


def _dct_rows(n: int) -> np.ndarray:
    """The DCT-II as a matrix (without scipy's factor 2, which no median threshold sees)."""
    k = np.arange(n)
    return np.cos(np.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n))


_DCT = _dct_rows(SIDE)


def hash_grey(grey: np.ndarray) -> int:
    """The 64-bit hash of a SIDE x SIDE grey image: bit 63 is coefficient (0, 0), then row-major."""
    coeffs = (_DCT @ grey @ _DCT.T)[:LOW, :LOW].ravel()
    bits = coeffs > np.median(coeffs)
    return int(np.packbits(bits).view(">u8")[0])


def hash_rgb(rgb: np.ndarray) -> int:
    """The hash of a uint8 [H, W, 3] image."""
    small = imaging.fit(rgb, SIDE, "warp").astype(np.float64)
    return hash_grey(small @ LUMA)


def hash_file(path: str) -> int | None:
    """The hash of an image file, decoded in full; None when it cannot be decoded (the
    preparation reports that file with its reason later)."""
    try:
        with open(path, "rb") as f:
            return hash_rgb(imaging.decode_rgb(f.read()))
    except (OSError, imaging.BadImage):
        return None


def nearest(queries, refs, radius: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) per query: the nearest reference hash within `radius` bits (the lowest
    index among equals), or (-1, -1) when none is that near."""
    q = np.asarray(queries, dtype=np.uint64).reshape(-1)
    ref = np.asarray(refs, dtype=np.uint64).reshape(-1)
    idx = np.full(len(q), -1, dtype=np.int64)
    dist = np.full(len(q), -1, dtype=np.int64)
    if not len(ref):
        return idx, dist
    for s in range(0, len(q), chunk):  # chunk x refs distances at a time: 100 MB at 50,000 refs
        d = np.bitwise_count(q[s:s + chunk, None] ^ ref[None, :])
        i = d.argmin(1)
        m = d[np.arange(len(i)), i].astype(np.int64)
        ok = m <= radius
        idx[s:s + chunk] = np.where(ok, i, -1)
        dist[s:s + chunk] = np.where(ok, m, -1)
    return idx, dist
