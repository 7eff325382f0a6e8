"""Decoding, resizing and encoding of single images for the prepare stage and the loader.

Paper section 2: "we down-sampled the images to a fixed resolution of 256 x 256 ... we first
rescaled the image such that the shorter side was of length 256, and then cropped out the
central 256x256 patch". `fit` does exactly that ("crop"), or warps the whole image ("warp").

Speed: JPEG goes through libjpeg-turbo (simplejpeg; same pixels as Pillow's decode, about
1.15x faster), then one antialiased bilinear resize (torch's uint8 kernel, about 3x Pillow's).
data.dct_scaling (off by default) decodes a JPEG at 1/2, 1/4 or 1/8 of its size in
libjpeg-turbo's DCT domain when its shorter side stays at least the stored size (paper 2 does
not say how it down-sampled), then resizes as usual: it changes pixels (benchmarks/data_bench.py
gives the PSNR against the exact path) and saves only on large images. The other scales
(3/8, 5/8, 3/4, 7/8) are not used: libjpeg-turbo has no SIMD code for them and decodes them
more slowly than at full size.
Anything that is not a plain RGB/greyscale JPEG (CMYK, PNG saved as .JPEG, ...) falls back
to Pillow, which real ImageNet needs for a handful of files.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError

JPEG_MAGIC = b"\xff\xd8"
GZIP_MAGIC = b"\x1f\x8b"
RESIZE_MODES = ("crop", "warp")
# Pixels above which an image is refused rather than decoded: Pillow's own decompression-bomb limit
# (2 x Image.MAX_IMAGE_PIXELS, 179 Mpx; the largest ILSVRC photos have about 12 Mpx). A 40000 x
# 40000 PNG of 1.5 MB would otherwise take 4.8 GB of memory to decode, in every worker that meets one.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


class BadImage(Exception):
    """A file that cannot become an RGB image; str() is the reason for the manifest."""


def decode_rgb(data: bytes, min_side: int = 0) -> np.ndarray:
    """Bytes of an image file -> uint8 [H, W, 3] RGB; raises BadImage with the reason.

    min_side > 0 (data.dct_scaling): a JPEG may come out at 1/2, 1/4 or 1/8 of its size, the
    smallest whose shorter side is still >= min_side (dct_factor).
    """
    if len(data) == 0:
        raise BadImage("zero-byte file")
    if data[:2] == GZIP_MAGIC:  # a few ILSVRC-2010 files are gzipped JPEGs (fuel's converter)
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BadImage(f"corrupt gzip-compressed image: {exc}") from None
    if data[:2] == JPEG_MAGIC:
        arr = _decode_jpeg(data, min_side)
        if arr is not None:
            return arr
    return _decode_pillow(data)


def dct_factor(h: int, w: int, min_side: int) -> int:
    """The largest of 8, 4, 2 (else 1) that keeps the shorter side >= min_side once divided
    (libjpeg-turbo rounds a scaled side up); 1 when min_side is 0."""
    for f in (8, 4, 2):
        if min_side and -(-min(h, w) // f) >= min_side:
            return f
    return 1


def _decode_jpeg(data: bytes, min_side: int = 0) -> np.ndarray | None:
    """libjpeg-turbo decode; None for colour spaces Pillow handles better."""
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise BadImage(f"corrupt JPEG header: {exc}") from None
    _check_pixels(w, h)
    if colorspace not in ("Gray", "YCbCr", "RGB") or min(h, w) < 1:
        return None  # CMYK / YCCK (Adobe): Pillow applies the inversion convention
    f = dct_factor(h, w, min_side)
    # simplejpeg picks the smallest scale M/8 that gives at least these sides: exactly 1/f
    scale = dict(min_height=-(-h // f), min_width=-(-w // f)) if f > 1 else {}
    try:
        # strict: libjpeg warnings (truncated data, corrupt huffman codes) raise instead of
        # silently returning a half-grey image.
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True, **scale)
    except ValueError as exc:
        raise BadImage(f"corrupt or truncated JPEG: {exc}") from None


def _check_pixels(w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise BadImage(f"image too large to decode safely: {w} x {h} pixels (more than {MAX_PIXELS:,}; "
                       "a decompression bomb?)")


def _decode_pillow(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_pixels(*im.size)  # before any pixel is decoded
            im.load()
            return np.array(im.convert("RGB"))  # writable: torch refuses read-only views
    except UnidentifiedImageError:
        raise BadImage("not an image file (unrecognised format)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own check at open, the same limit as ours
        raise BadImage(f"image too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"corrupt or truncated image: {exc}") from None


def fit(arr: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """Shorter side to `size`, then the central size x size patch ("crop"), or a warp.

    The central square is cut before resizing (same patch as resize-then-crop up to half a
    pixel of alignment, and about 1.4x less work for a 4:3 image).
    """
    if mode == "crop":
        h, w = arr.shape[:2]
        m = min(h, w)
        top, left = (h - m) // 2, (w - m) // 2
        arr = arr[top:top + m, left:left + m]
    return np.ascontiguousarray(_resize(arr, size, size))


def _resize(arr: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Antialiased bilinear resize of uint8 HWC (torch's uint8 kernel, about 2x Pillow's)."""
    if arr.shape[0] == th and arr.shape[1] == tw:
        return arr
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    x = x.contiguous(memory_format=torch.channels_last)  # the fast uint8 AVX2 kernel wants NHWC
    y = torch.nn.functional.interpolate(x, size=(th, tw), mode="bilinear", antialias=True,
                                        align_corners=False)
    return y[0].permute(1, 2, 0).numpy()


def load_fitted(data: bytes, size: int, mode: str = "crop", dct_scaling: bool = False) -> np.ndarray:
    """Bytes of any image file -> uint8 [size, size, 3] as paper section 2 prepares it."""
    return fit(decode_rgb(data, size if dct_scaling else 0), size, mode)


def encode_jpeg(arr: np.ndarray, quality: int) -> bytes:
    # 4:4:4: no chroma subsampling, so colour (PCA augmentation acts on it) is kept at full
    # resolution; deterministic for a given libjpeg-turbo.
    return simplejpeg.encode_jpeg(np.ascontiguousarray(arr), quality=quality, colorspace="RGB",
                                  colorsubsampling="444")


def decode_stored(data) -> np.ndarray:
    """A JPEG written by encode_jpeg -> uint8 [S, S, 3]."""
    return simplejpeg.decode_jpeg(data, colorspace="RGB")
