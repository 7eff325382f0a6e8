"""Decoding what real ImageNet contains, paper-section-2 resizing, and the stored JPEGs."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import imaging


def sample() -> Path:
    import imagenet_fixtures
    return imagenet_fixtures.sample_dir()  # skips when the real JPEGs are not on this machine


def encode(arr, fmt="JPEG", mode=None, **kw):
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def halves(h, w):
    """Left half red, right half blue: where the crop is taken is visible."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2, 0] = 255
    arr[:, w // 2:, 2] = 255
    return arr


def test_centre_crop_of_a_wide_image_keeps_the_middle():
    # 400x200 -> shorter side 200 is already... resized to 100: the central 200x200 of the
    # original becomes the output, so columns 0..49 are red and 50..99 blue.
    out = imaging.fit(halves(200, 400), 100, "crop")
    assert out.shape == (100, 100, 3)
    assert (out[:, :48, 0] == 255).all() and (out[:, 52:, 2] == 255).all()


def test_centre_crop_of_a_tall_image_drops_top_and_bottom():
    arr = np.zeros((300, 100, 3), np.uint8)
    arr[:100] = 255  # white top third: cut away by the centre crop (rows 100..199 kept)
    out = imaging.fit(arr, 50, "crop")
    assert out[1:].max() == 0 and out.shape == (50, 50, 3)


def test_warp_keeps_the_whole_image():
    arr = np.zeros((300, 100, 3), np.uint8)
    arr[:100] = 255
    out = imaging.fit(arr, 60, "warp")
    assert (out[:18] == 255).all() and (out[22:] == 0).all()


def test_resize_agrees_with_pillow_antialiased_bilinear():
    rng = np.random.default_rng(0)
    arr = (rng.random((240, 240, 3)) * 255).astype(np.uint8)
    ours = imaging.fit(arr, 96, "crop")
    ref = np.asarray(Image.fromarray(arr).resize((96, 96), Image.BILINEAR))
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 2


def test_jpeg_decode_matches_pillow_on_real_imagenet_files():
    for path in sorted(sample().glob("*.JPEG"))[:40]:
        with Image.open(path) as im:
            ref = np.asarray(im.convert("RGB"))
        assert np.array_equal(imaging.decode_rgb(path.read_bytes()), ref), path.name


def test_greyscale_jpeg_becomes_rgb():
    grey = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    arr = imaging.load_fitted(encode(grey, mode="L"), 32)
    assert arr.shape == (32, 32, 3)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])


def test_cmyk_jpeg_becomes_rgb():
    red = np.zeros((48, 48, 3), np.uint8)
    red[..., 0] = 200
    arr = imaging.load_fitted(encode(red, mode="CMYK"), 32)
    assert arr.shape == (32, 32, 3)
    assert abs(int(arr[..., 0].mean()) - 200) < 8 and arr[..., 1].mean() < 10


def test_png_with_a_jpeg_name_is_decoded():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = imaging.load_fitted(encode(arr, "PNG"), 40)
    assert np.array_equal(out, arr)  # lossless and no resize needed: exact


@pytest.mark.parametrize("data,reason", [
    (b"", "zero-byte"),
    (b"hello, I am not an image\n" * 20, "not an image"),
])
def test_non_images_are_bad_with_a_reason(data, reason):
    with pytest.raises(imaging.BadImage, match=reason):
        imaging.load_fitted(data, 32)


def test_truncated_jpeg_is_bad_not_grey():
    rng = np.random.default_rng(2)
    raw = encode(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), quality=90)
    with pytest.raises(imaging.BadImage, match="JPEG"):
        imaging.load_fitted(raw[: len(raw) // 2], 32)


def test_truncated_png_is_bad():
    rng = np.random.default_rng(3)
    raw = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "PNG")
    with pytest.raises(imaging.BadImage, match="truncated|corrupt"):
        imaging.load_fitted(raw[: len(raw) // 2], 32)


def test_stored_jpeg_round_trip_is_close_and_deterministic():
    rng = np.random.default_rng(4)
    arr = imaging.fit((rng.random((80, 80, 3)) * 255).astype(np.uint8), 64)
    smooth = np.asarray(Image.fromarray(arr).resize((16, 16)).resize((64, 64), Image.BILINEAR))
    a, b = imaging.encode_jpeg(smooth, 90), imaging.encode_jpeg(smooth, 90)
    assert a == b
    assert psnr(imaging.decode_stored(a), smooth) > 35


def test_dct_factor_hand_cases():
    """The largest of 8, 4, 2 that keeps the shorter side >= the target (sides round up)."""
    assert imaging.dct_factor(375, 500, 256) == 1  # 188 < 256
    assert imaging.dct_factor(511, 700, 256) == 2 and imaging.dct_factor(510, 700, 256) == 1
    assert imaging.dct_factor(1024, 1500, 256) == 4 and imaging.dct_factor(2048, 2048, 256) == 8
    assert imaging.dct_factor(4000, 3000, 0) == 1  # data.dct_scaling off


def test_dct_scaled_decode_equals_pillows_draft_on_real_imagenet_files():
    """libjpeg-turbo's DCT-domain scaling reached two ways (simplejpeg's output size, Pillow's
    draft): the same pixels, at the factor dct_factor chose."""
    scaled = 0
    for path in sorted(sample().glob("*.JPEG"))[:60]:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            f = imaging.dct_factor(h, w, 128)
            im.draft("RGB", (w // f, h // f))
            ref = np.asarray(im.convert("RGB"))
        got = imaging.decode_rgb(data, 128)
        assert got.shape == (-(-h // f), -(-w // f), 3) and np.array_equal(got, ref), path.name
        scaled += f > 1
    assert scaled > 40


def test_dct_scaling_changes_only_large_images_and_only_a_little():
    """At 256 px only JPEGs with a shorter side >= 512 decode smaller; the stored 256x256 result
    stays within 30 dB PSNR of the exact path (benchmarks/data_bench.py reports the figures)."""
    changed = 0
    for path in sorted(sample().glob("*.JPEG")):
        data = path.read_bytes()
        exact, fast = imaging.load_fitted(data, 256), imaging.load_fitted(data, 256, dct_scaling=True)
        with Image.open(path) as im:
            large = min(im.size) >= 512
        if not large:
            assert np.array_equal(exact, fast), path.name
        else:
            changed += 1
            assert psnr(exact, fast) > 30, path.name
    assert changed >= 5
