"""Prepared-data format, the synthetic dataset, and the paper's statistics (mean image, PCA)."""

import json

import numpy as np
import pytest

from harness.config import DataConfig, SyntheticConfig
from harness.data import shards
from harness.errors import UserError
from harness.prepare import synthetic, writer

TINY = DataConfig(image_size=24, shard_size=50,
                  synthetic=SyntheticConfig(num_classes=5, train_per_class=16, val_per_class=6, clutter=2))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    manifest = writer.prepare(TINY, out, workers=1)
    return out, manifest


def test_layout_and_manifest(prepared):
    out, manifest = prepared
    assert manifest["counts"] == {"train": 80, "val": 30}
    assert len(manifest["classes"]) == 5 and manifest["skipped"] == []
    assert sorted(p.name for p in (out / "train").glob("shard-*.npy")) == ["shard-00000.npy", "shard-00001.npy"]
    assert json.loads((out / "manifest.json").read_text())["digest"] == writer.content_digest(out)
    split = shards.load_split(out, "train")
    assert len(split) == 80 and split.shards[0].dtype == np.uint8
    assert np.array_equal(np.load(out / "train" / "labels.npy"), split.labels)
    np.testing.assert_array_equal(np.bincount(split.labels), [16] * 5)


def test_images_match_a_direct_render(prepared):
    out, _ = prepared
    split = shards.load_split(out, "val")
    idx = np.array([0, 7, 29])
    direct = np.stack([synthetic.generate(TINY.synthetic, "val", 24, i, i + 1)[0][0] for i in idx])
    np.testing.assert_array_equal(split.images(idx), direct)


def test_deterministic_bytes(prepared, tmp_path):
    out, manifest = prepared
    again = writer.prepare(TINY, tmp_path / "again", workers=2)
    assert again["digest"] == manifest["digest"]


def test_mean_image_and_pca_match_numpy(prepared):
    out, _ = prepared
    images = shards.load_split(out, "train").images(np.arange(80)).astype(np.float64)
    mean, pca = shards.load_stats(out)
    np.testing.assert_allclose(mean, images.mean(0), rtol=1e-5)
    # the PCA is over every 4th row and column of each image (writer.PCA_STRIDE) ...
    cov = np.cov(images[:, ::4, ::4].reshape(-1, 3).T, bias=True)
    vals, vecs = np.linalg.eigh(cov)
    np.testing.assert_allclose(pca["eigenvalues"], vals[::-1], rtol=1e-6)
    # ... which is close to the covariance of all pixels
    full = np.linalg.eigvalsh(np.cov(images.reshape(-1, 3).T, bias=True))[::-1]
    np.testing.assert_allclose(pca["eigenvalues"], full, rtol=0.1)
    got = np.asarray(pca["eigenvectors"])
    for i in range(3):  # eigenvectors are defined up to sign
        assert abs(abs(got[:, i] @ vecs[:, ::-1][:, i]) - 1) < 1e-6


def test_classes_differ_visibly():
    """Class identity is in the pixels: two renders of a class differ, yet labels cycle."""
    images, labels = synthetic.generate(SyntheticConfig(num_classes=4), "train", 32, 0, 8)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert not np.array_equal(images[0], images[4])


def test_missing_prepared_data_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="manifest.json is missing"):
        shards.load_manifest(tmp_path)


def test_unsupported_source(tmp_path):
    with pytest.raises(UserError, match="data.source"):
        writer.prepare(DataConfig(source="synthetic", image_size=24).__class__(
            **{**TINY.__dict__, "source": "imagenet"}), tmp_path)
