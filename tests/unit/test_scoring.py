"""The one top-k rule (harness/analysis/scoring.py), by hand, on numpy and torch alike."""

import numpy as np
import torch

from harness.analysis import scoring
from harness.train import loop


def test_ties_count_against_the_true_class_by_hand():
    scores = np.array([[0.1, 0.5, 0.4],    # label 1: top-1 right
                       [0.3, 0.3, 0.4],    # label 0 tied with class 1 for second place: top-1 wrong, top-2 wrong
                       [0.2, 0.2, 0.2]],   # constant prediction: never right by luck, not even top-2
                      np.float32)
    labels = np.array([1, 0, 2])
    assert scoring.topk_correct(scores, labels, 1).tolist() == [True, False, False]
    assert scoring.topk_correct(scores, labels, 2).tolist() == [True, False, False]
    assert scoring.topk_correct(scores, labels, 3).tolist() == [True, True, True]
    assert scoring.topk_correct(scores, labels, 5).tolist() == [True, True, True]  # k beyond C: all right


def test_numpy_and_torch_agree_and_keep_their_kind():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(500, 10)).astype(np.float32)  # many ties
    labels = rng.integers(0, 10, size=500)
    for k in (1, 5):
        a = scoring.topk_correct(scores, labels, k)
        b = scoring.topk_correct(torch.from_numpy(scores), torch.from_numpy(labels), k)
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
        assert np.array_equal(a, b.numpy())


def test_the_validation_the_schedule_sees_counts_like_the_evaluation():
    """Validation errors in training (which drive the plateau rule) use the same rule as the
    evaluate stage: on tied logits they agree with scoring.error_summary of the same scores."""
    logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 0, 1])

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return logits[x[:, 0, 0, 0].long()] + 0 * self.p

    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 1, 1)
    loss, w1, w5, n = loop.validate_sums(Fixed(), [(x, y)])
    summary = scoring.error_summary(logits.numpy(), y.numpy())
    assert (w1, n) == (summary["top1_wrong"], 4) and w1 == 3  # both ties and the constant row count as wrong
