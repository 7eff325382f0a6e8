"""The paper's update rule and schedule against hand computations; exact in-process resume."""

import math
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch

from harness.config import TrainConfig
from harness.data import shards, transforms
from harness.model import build_model
from harness.prepare import writer
from harness.train import checkpoint, loop, recipe


def scalar_run(opt_cls, lrs, **kw):
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = opt_cls([w], lr=lrs[0], momentum=0.9, weight_decay=0.0005, **kw)
    out = []
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        (w * 2.0).sum().backward()  # gradient 2
        opt.step()
        out.append(w.item())
    return out


def test_paper_rule_by_hand():
    """v <- 0.9 v - 0.0005 lr w - lr g; w <- w + v, with g = 2, from w = 1."""
    lrs = [0.1, 0.1, 0.01]
    w, v, want = 1.0, 0.0, []
    for lr in lrs:
        v = 0.9 * v - 0.0005 * lr * w - lr * 2.0
        w = w + v
        want.append(w)
    assert scalar_run(recipe.PaperSGD, lrs) == pytest.approx(want, rel=1e-6)


def test_paper_rule_equals_torch_at_constant_lr_and_differs_after_a_drop():
    const = [0.05] * 6
    assert scalar_run(recipe.PaperSGD, const) == pytest.approx(scalar_run(torch.optim.SGD, const), rel=1e-5)
    drop = [0.05] * 3 + [0.005] * 3
    paper, torch_sgd = scalar_run(recipe.PaperSGD, drop), scalar_run(torch.optim.SGD, drop)
    # torch rescales its whole momentum buffer by the new lr; the paper keeps the velocity
    assert paper[3] < torch_sgd[3] - 0.01


def test_plateau_schedule():
    cfg = TrainConfig(schedule="plateau", patience=2, max_drops=2, lr=0.01)
    st = loop.TrainState()
    drops = [recipe.update_plateau(cfg, st, e) for e in [50, 40, 41, 42, 39, 39, 39, 39, 39, 39]]
    assert drops == [False, False, False, True, False, False, True, False, False, False]
    assert st.drops == 2 and recipe.lr_at(cfg, st, 5.0) == pytest.approx(1e-4)


def test_step_schedule_and_warmup():
    cfg = TrainConfig(schedule="steps", lr_steps=(3, 5), lr=0.1, warmup_epochs=1.0)
    st = loop.TrainState()
    assert recipe.lr_at(cfg, st, 0.5) == pytest.approx(0.1 * 0.501)
    assert [recipe.lr_at(cfg, st, e) for e in (1.0, 2.99, 3.0, 5.0)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = loop.epoch_batches(100, 16, seed=1, epoch=0)
    assert len(a) == 6 and all(len(b) == 16 for b in a)
    assert np.array_equal(np.concatenate(a), np.concatenate(loop.epoch_batches(100, 16, 1, 0)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(loop.epoch_batches(100, 16, 1, 1)))


# --- exact resume, in process -----------------------------------------------------------------

DATA, MODEL = tiny.DATA, tiny.MODEL
TRAIN = TrainConfig(epochs=2, batch_size=8, lr=0.01, schedule="plateau", patience=1,
                    update_rule="paper", checkpoint_every=2, threads=1, warmup_epochs=0.5)


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    writer.prepare(DATA, out, workers=1)
    return out


def make_run(prepared: Path, seed: int, torch_seed: int | None = None):
    torch.manual_seed(seed if torch_seed is None else torch_seed)
    mean, pca = shards.load_stats(prepared)
    norm = transforms.Normaliser(mean, MODEL.input_scale)
    view = transforms.TrainView(shards.load_split(prepared, "train"), norm, pca, 64, seed, 0.1)
    val = shards.load_split(prepared, "val")
    val_loader = transforms.batch_loader(transforms.EvalView(val, norm, 64, "center"),
                                         transforms.eval_batches(len(val), 16), 0)
    model = build_model(MODEL, 4)
    return model, recipe.make_optimizer(model, TRAIN), view, val_loader


def fit(prepared, state, model, opt, view, val_loader, hooks):
    return loop.fit(model, opt, view, lambda b: transforms.batch_loader(view, b, 0), val_loader,
                 TRAIN, 7, state, hooks)


def test_resume_mid_epoch_is_bitwise_identical(prepared, tmp_path):
    torch.set_num_threads(1)
    model, opt, view, val = make_run(prepared, 7)
    clean_state = loop.TrainState()
    # checkpoints without saving: the stage always checkpoints, and a checkpoint is also a read of the sums
    no_op = loop.Hooks(on_checkpoint=lambda st: None)
    clean = fit(prepared, clean_state, model, opt, view, val, no_op)
    clean_weights = {k: v.clone() for k, v in model.state_dict().items()}

    ck = tmp_path / "ck.pt"
    model, opt, view, val = make_run(prepared, 7)

    def save(st):
        checkpoint.save(ck, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "state": st.to_dict(), "torch_rng": torch.get_rng_state()})

    def crash(step, loss, lr):
        if step == 9:  # mid-epoch 2 (6 steps per epoch), one step after the checkpoint at 8
            raise Stop()

    with pytest.raises(Stop):
        fit(prepared, loop.TrainState(), model, opt, view, val, loop.Hooks(on_step=crash, on_checkpoint=save))

    payload = checkpoint.load(ck)
    model, opt, view, val = make_run(prepared, 7, torch_seed=999)  # the checkpoint must restore the RNG
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"])
    state = loop.TrainState.from_dict(payload["state"])
    assert (state.epoch, state.step_in_epoch, state.global_step) == (1, 2, 8)
    resumed = fit(prepared, state, model, opt, view, val, no_op)
    for k, v in model.state_dict().items():
        assert torch.equal(v, clean_weights[k]), k
    assert [r.train_loss for r in resumed] == [r.train_loss for r in clean]
    assert [r.val_top1_error for r in resumed] == [r.val_top1_error for r in clean]
    assert state.windows == clean_state.windows  # the step-resolution series survives the kill too


def test_training_error_is_recorded_per_window_of_steps(prepared):
    """TrainState.windows: one row per read of the device sums (every SYNC_EVERY steps, before each
    checkpoint, at each epoch end), whose counts add up to the epoch's training error."""
    torch.set_num_threads(1)
    model, opt, view, val = make_run(prepared, 3)
    state = loop.TrainState()
    history = fit(prepared, state, model, opt, view, val, loop.Hooks(on_checkpoint=lambda st: None))
    steps = [w[0] for w in state.windows]
    assert steps == [2, 4, 6, 8, 10, 12]  # 6 steps an epoch, reads at the checkpoints (every 2) and epoch ends
    for epoch, r in enumerate(history, 1):
        rows = [w for w in state.windows if w[1] == epoch]
        images, wrong, wrong5 = (sum(w[i] for w in rows) for i in (2, 3, 4))
        assert images == 6 * TRAIN.batch_size
        assert 100.0 * wrong / images == pytest.approx(r.train_top1_error)
        assert 100.0 * wrong5 / images == pytest.approx(r.train_top5_error)
        assert sum(w[5] for w in rows) / images == pytest.approx(r.train_loss)


def test_nan_loss_stops_with_a_clear_error(prepared):
    model, opt, view, val = make_run(prepared, 1)
    with torch.no_grad():
        model.fc8.bias.fill_(math.nan)
    with pytest.raises(loop.NonFiniteLoss, match="loss became nan"):
        fit(prepared, loop.TrainState(), model, opt, view, val, loop.Hooks())
