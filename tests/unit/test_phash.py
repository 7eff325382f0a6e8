"""The perceptual hash and lookup of the Fall-2011 near-duplicate check (harness/prepare/phash.py):
the hash against one computed from scipy's DCT, the lookup against a plain loop, and the real sample
JPEGs: re-posted copies within the default radius, flips and other photographs beyond it."""

from __future__ import annotations

import io

import imagenet_fixtures as fx
import numpy as np
import pytest
from PIL import Image
from scipy import fft

from benchmarks.near_duplicates import make_copy
from harness.config import ConfigError, Fall2011Config, from_dict
from harness.prepare import phash

RADIUS = Fall2011Config().exclude_near


def test_hash_is_the_median_threshold_of_scipys_low_dct():
    rng = np.random.default_rng(7)
    for _ in range(5):
        grey = rng.uniform(0, 255, (32, 32))
        low = fft.dctn(grey, type=2)[:8, :8].ravel()  # scipy's own DCT-II, factor 2 included
        bits = "".join("1" if c > np.median(low) else "0" for c in low)
        assert phash.hash_grey(grey) == int(bits, 2)  # bit 63 = coefficient (0, 0), row-major


def test_a_horizontal_cosine_sets_its_own_coefficient():
    # 128 + 100 cos(pi k (2n + 1) / 64) along the columns: of the 64 low coefficients only the DC
    # (0, 0) and (0, k) are far from zero, so both lie above the median (the rest is rounding noise)
    n = np.arange(32)
    for k in (3, 5):
        grey = 128 + 100 * np.cos(np.pi * k * (2 * n + 1) / 64)[None, :].repeat(32, 0)
        h = phash.hash_grey(grey)
        assert h >> 63 & 1 and h >> (63 - k) & 1, k


def test_nearest_is_the_brute_force_with_ties_to_the_lowest_index():
    rng = np.random.default_rng(0)
    refs = [int(x) for x in rng.integers(0, 2 ** 62, 300, dtype=np.int64)]
    refs.append(refs[10])  # an equal copy later: index 10 must win
    queries = [refs[10] ^ 0b111, refs[42] ^ (1 << 60), refs[5] ^ (2 ** 9 - 1), 12345]
    for radius in (0, 3, 8, 9):
        idx, dist = phash.nearest(queries, refs, radius, chunk=3)
        for q, i, d in zip(queries, idx, dist):
            ds = [(q ^ r).bit_count() for r in refs]
            want = (ds.index(min(ds)), min(ds)) if min(ds) <= radius else (-1, -1)
            assert (i, d) == want, (radius, q)
    assert phash.nearest(queries, [], 8)[0].tolist() == [-1] * 4


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _hash(data: bytes) -> int:
    from harness.data import imaging

    return phash.hash_rgb(imaging.decode_rgb(data))


def test_real_copies_are_within_the_radius_and_other_images_beyond():
    files = sorted(fx.sample_dir().glob("*.JPEG"))[:24]
    raw = [f.read_bytes() for f in files]
    hashes = [_hash(b) for b in raw]
    for h, b in zip(hashes, raw):
        for kind in ("jpeg_q30", "half_size", "quarter_size", "png", "brighter", "warp_256"):
            assert (h ^ _hash(make_copy(b, kind))).bit_count() <= RADIUS, kind
        flipped = _jpeg(Image.open(io.BytesIO(b)).convert("RGB").transpose(Image.FLIP_LEFT_RIGHT))
        assert (h ^ _hash(flipped)).bit_count() > RADIUS  # a mirror image is another image
    assert min((a ^ b).bit_count() for i, a in enumerate(hashes) for b in hashes[i + 1:]) > RADIUS


def test_an_undecodable_file_has_no_hash(tmp_path):
    (tmp_path / "bad.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    assert phash.hash_file(str(tmp_path / "bad.JPEG")) is None


def test_radius_is_bounded_and_null_turns_it_off():
    with pytest.raises(ConfigError, match=r"data\.fall2011\.exclude_near: must be <= 32, got 40"):
        from_dict({"data": {"source": "fall2011", "fall2011": {"exclude_near": 40}}})
    assert from_dict({"data": {"source": "fall2011", "fall2011": {"exclude_near": None}}}).data.fall2011.exclude_near is None


def test_the_benchmark_writes_its_key_and_keeps_the_others(tmp_path):
    import json
    import shutil

    from benchmarks import near_duplicates

    sample = tmp_path / "sample"
    sample.mkdir()
    for f in sorted(fx.sample_dir().glob("*.JPEG"))[:4]:
        shutil.copy(f, sample / f.name)
    out = tmp_path / "b.json"
    out.write_text(json.dumps({"arms": {"x": 1}}))
    near_duplicates.main(["--sample", str(sample), "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["arms"] == {"x": 1}
    nd = res["near_duplicates"]
    assert nd["n_images"] == 4 and nd["n_distinct_pairs"] == 6 and nd["distinct_within"]["8"] == 0
    assert nd["copies"]["png"]["max_bits"] == 0 and nd["copies"]["png"]["caught"]["8"] == 1.0
    assert nd["lookup"]["n_ref"] == 50_000 and nd["lookup"]["us_per_query"] > 0
