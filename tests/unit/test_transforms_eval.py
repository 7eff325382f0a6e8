"""Augmentation, test views, top-k and ensembles, against hand computations."""

import numpy as np
import pytest
import torch

from harness.analysis import ensemble, scoring
from harness.data import transforms
from harness.data.shards import PreparedSplit


def split_of(images, labels):
    n = len(labels)
    return PreparedSplit((images,), np.zeros(n, int), np.arange(n), np.asarray(labels))


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 10, 10, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (10, 10, 3)).astype(np.float32)
    return split_of(images, [0, 1, 2, 0, 1, 2]), transforms.Normaliser(mean, 0.5)


def test_ten_patch_views_are_corners_centre_and_mirrors(tiny):
    split, norm = tiny
    x, y = transforms.EvalView(split, norm, 8, "ten_patch")[np.array([1])]
    assert x.shape == (1, 10, 3, 8, 8)
    img = split.shards[0][1].astype(np.float32)
    for v, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]):
        want = (img[r:r + 8, c:c + 8] - norm.mean[r:r + 8, c:c + 8]) * 0.5
        torch.testing.assert_close(x[0, v], torch.from_numpy(want.transpose(2, 0, 1)))
        torch.testing.assert_close(x[0, v + 5], x[0, v].flip(-1))


@pytest.mark.parametrize("scale", [0.5, 1 / 64, 0.3])
def test_eval_views_equal_the_normaliser_bit_for_bit(scale):
    """The views are built for the whole batch at once; each is exactly Normaliser's patch
    (float32 subtraction of the mean image's patch, then the scale), and its mirror."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    norm = transforms.Normaliser(rng.uniform(0, 255, (12, 12, 3)).astype(np.float32), scale)
    split = split_of(images, [0] * 5)
    idx = np.array([4, 0, 2])
    ten, _ = transforms.EvalView(split, norm, 9, "ten_patch")[idx]
    centre, _ = transforms.EvalView(split, norm, 9, "center")[idx]
    offsets = transforms.patch_offsets(12, 9)
    for v, (r, c) in enumerate(offsets):
        want = norm(images[idx, r:r + 9, c:c + 9], np.full(3, r), np.full(3, c), 9).transpose(0, 3, 1, 2)
        assert torch.equal(ten[:, v], torch.from_numpy(np.ascontiguousarray(want)))
        assert torch.equal(ten[:, v + 5], torch.from_numpy(np.ascontiguousarray(want[..., ::-1])))
    assert torch.equal(centre, ten[:, 4]) and centre.shape == (3, 3, 9, 9) and centre.is_contiguous()


def test_train_view_is_independent_of_batching(tiny):
    split, norm = tiny
    pca = {"eigenvalues": [3000.0, 500.0, 100.0], "eigenvectors": np.eye(3).tolist()}
    view = transforms.TrainView(split, norm, pca, 8, seed=3, pca_std=0.1)
    view.set_epoch(2)
    whole, _ = view[np.arange(6)]
    parts = torch.cat([view[np.array([4, 5])][0], view[np.array([0, 1, 2, 3])][0]])
    torch.testing.assert_close(whole, parts[[2, 3, 4, 5, 0, 1]])
    view.set_epoch(3)
    assert not torch.equal(view[np.arange(6)][0], whole)


def test_pca_shift_hand_computed():
    pca = {"eigenvalues": [65025.0 * 0.2, 65025.0 * 0.02, 0.0], "eigenvectors": np.eye(3).tolist()}
    alpha = np.array([[0.1, -0.5, 1.0]], np.float32)
    # eigenvalue_01: l on 0-1 pixels = 0.2, 0.02; shift on 0-255 = 255 * alpha * l
    got = transforms.pca_shift(alpha, pca, 1.0, "eigenvalue_01")
    np.testing.assert_allclose(got, [[255 * 0.1 * 0.2, 255 * -0.5 * 0.02, 0.0]], rtol=1e-5)
    got = transforms.pca_shift(alpha, pca, 1.0, "sqrt_eigenvalue")
    np.testing.assert_allclose(got, [[0.1 * np.sqrt(13005), -0.5 * np.sqrt(1300.5), 0]], rtol=1e-5)


def test_topk_hand_example():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0.2, 0.2, 0.6]])
    labels = np.array([0, 2, 1, 1])
    assert scoring.topk_correct(probs, labels, 1).tolist() == [True, False, False, False]
    # row 2 ties the label at the top: wrong at k=1 (ties count against it), right at k=2
    assert scoring.topk_correct(probs, labels, 2).tolist() == [True, True, True, False]
    s = scoring.error_summary(probs, labels)
    assert s["top1_wrong"] == 3 and s["top1_error"] == 75.0


def test_ensemble_sizes_and_subsets():
    labels = np.array([0, 1, 2, 0])
    eye = np.eye(3)
    p1 = eye[[0, 1, 2, 1]] * 0.9 + 0.1 / 3
    p2 = eye[[0, 2, 2, 0]] * 0.9 + 0.1 / 3
    p3 = eye[[1, 1, 2, 0]] * 0.6 + 0.4 / 3
    rows = ensemble.ensemble_errors([p1, p2, p3], labels, max_subsets=10, seed=0)
    assert [r["k"] for r in rows] == [1, 2, 3] and [r["n_subsets"] for r in rows] == [3, 3, 1]
    assert rows[0]["top1_error_mean"] == pytest.approx(25.0)  # each model misses one image
    avg = (p1 + p2 + p3) / 3
    assert rows[2]["top1_error_mean"] == 100 * (avg.argmax(1) != labels).mean()
    assert len(ensemble.subsets(10, 5, 7, 0)) == 7  # 252 subsets sampled down to 7
