"""The train stage's GPU path on the CPU: params, bf16 + channels_last
training, evaluation, cuDNN mode, compile fallback, deferred NaN check and device-side JPEG
decoding + augmentation against TrainView."""

import math
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch
import yaml

from harness import accel, runtime
from harness import config as C
from harness.config import DataConfig, TrainConfig
from harness.data import shards, transforms
from harness.errors import UserError
from harness.evaluate import inference
from harness.model import build_model
from harness.prepare import writer
from harness.train import setup as S
from harness.train import loop, recipe

DATA = tiny.data(train_per_class=8)
MODEL = tiny.MODEL


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    writer.prepare(DATA, out, workers=1)
    return out


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jpeg")
    writer.prepare(DataConfig(**{**DATA.__dict__, "encoding": "jpeg"}), out, workers=1)
    return out


@pytest.fixture
def torch_flags():
    """Leave the process-wide torch switches as the test found them."""
    flags = (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    yield
    torch.backends.cudnn.benchmark = flags[0]
    torch.use_deterministic_algorithms(flags[1], warn_only=True)
    torch.set_num_threads(flags[2])


def train_view(root: Path, seed: int = 5, scale: float = 1 / 64):
    mean, pca = shards.load_stats(root)
    return transforms.TrainView(shards.load_split(root, "train"), transforms.Normaliser(mean, scale), pca, 64, seed, 0.1)


# --- params -------------------------------------------------------------------------------------

def test_gpu_params_default_to_todays_training_and_are_validated():
    t = TrainConfig()
    assert (t.precision, t.channels_last, t.compile, t.deterministic, t.decode_device) == \
        ("fp32", False, False, True, "cpu")
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())["train"]
    assert {k: shipped[k] for k in ("precision", "channels_last", "compile", "deterministic", "decode_device")} == \
        {"precision": "fp32", "channels_last": False, "compile": False, "deterministic": True, "decode_device": "cpu"}
    ok = C.from_dict({"precision": "bf16", "channels_last": True, "compile": True, "deterministic": False,
                      "decode_device": "cuda", "devices": ["cuda:0"]}, TrainConfig, "train.")
    assert ok.precision == "bf16" and ok.decode_device == "cuda"
    for bad, key in [({"precision": "fp16"}, "train.precision"), ({"channels_last": "yes"}, "train.channels_last"),
                     ({"compile": 1}, "train.compile"), ({"deterministic": None}, "train.deterministic"),
                     ({"decode_device": "gpu"}, "train.decode_device"),
                     ({"decode_device": "cuda"}, "train.decode_device")]:  # cuda decode, cpu training
        with pytest.raises(C.ConfigError, match=key.replace(".", r"\.")):
            C.from_dict(bad, TrainConfig, "train.")


def test_only_bf16_is_a_departure_from_the_paper():
    from harness.report.deviations import deviations
    base = {r["key"] for r in deviations(C.Config())}
    fast = C.Config(train=TrainConfig(channels_last=True, compile=True, deterministic=False))
    assert {r["key"] for r in deviations(fast)} == base
    bf16 = {r["key"]: r for r in deviations(C.Config(train=TrainConfig(precision="bf16")))}
    assert set(bf16) - base == {"train.precision"} and bf16["train.precision"]["paper"] == "fp32"


# --- training and evaluation in bf16 + channels_last --------------------------------------------

def short_fit(root: Path, cfg: TrainConfig):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    view = train_view(root)
    mean, _ = shards.load_stats(root)
    val = shards.load_split(root, "val")
    val_loader = transforms.batch_loader(
        transforms.EvalView(val, transforms.Normaliser(mean, 1 / 64), 64, "center"), transforms.eval_batches(len(val), 8), 0)
    model = build_model(MODEL, 4)
    if cfg.channels_last:
        accel.to_channels_last(model)
    opt = recipe.make_optimizer(model, cfg)
    losses = []
    hist = loop.fit(model, opt, view, lambda b: transforms.batch_loader(view, b, 0), val_loader, cfg, 5, loop.TrainState(),
                 loop.Hooks(on_step=lambda s, loss, lr: losses.append(loss)))
    return model, losses, hist


def test_bf16_channels_last_training_is_finite_and_close_to_fp32(raw):
    base = dict(epochs=1, batch_size=8, lr=0.01, threads=1)
    _, fp32, h32 = short_fit(raw, TrainConfig(**base))
    model, bf16, h16 = short_fit(raw, TrainConfig(**base, precision="bf16", channels_last=True))
    assert len(bf16) == len(fp32) == 4 and all(math.isfinite(x) for x in bf16)
    assert bf16 != fp32  # bf16 did run
    # bf16 keeps 8 mantissa bits: the loss agrees to about a percent over these few steps
    assert bf16 == pytest.approx(fp32, rel=3e-2)
    assert h16[0].val_loss == pytest.approx(h32[0].val_loss, rel=3e-2)
    assert model.conv1.weight.dtype == torch.float32  # master weights stay fp32
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_predict_in_bf16_channels_last_matches_fp32(raw):
    torch.manual_seed(0)
    mean, _ = shards.load_stats(raw)
    val = shards.load_split(raw, "val")
    view = transforms.EvalView(val, transforms.Normaliser(mean, 1 / 64), 64, "ten_patch")
    model = build_model(MODEL, 4)

    def loader():
        return transforms.batch_loader(view, transforms.eval_batches(len(val), 8), 0)

    ref = inference.predict(model, loader(), len(val), "fp32")
    accel.to_channels_last(model)
    fast = inference.predict(model, loader(), len(val), "bf16", precision="bf16", channels_last=True)
    assert fast.dtype == np.float32 and fast.shape == ref.shape
    np.testing.assert_allclose(fast.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fast, ref, atol=2e-2)


def test_not_deterministic_turns_on_cudnn_autotuning(torch_flags):
    runtime.set_determinism(1, 1, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert accel.configure_cudnn(TrainConfig(deterministic=False).deterministic)["cudnn_benchmark"] is True
    runtime.set_determinism(1, 1, deterministic=TrainConfig().deterministic)
    assert torch.are_deterministic_algorithms_enabled()
    assert accel.configure_cudnn(TrainConfig().deterministic)["cudnn_benchmark"] is False


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch, capsys):
    model = build_model(MODEL, 4)
    assert S.compile_model(model, TrainConfig(), 64, 1) == (model, "off")
    monkeypatch.setattr(accel, "try_compile", lambda m, x: (m, "BackendCompilerFailed: no compiler"))
    same, how = S.compile_model(model, TrainConfig(compile=True, batch_size=4), 64, 1)
    assert same is model and how.startswith("failed, eager") and "no compiler" in how
    assert "train.compile" in capsys.readouterr().err


def test_compile_leaves_the_dropout_rng_alone(monkeypatch):
    """The example forward of compiling draws dropout masks; a resumed run must not see that."""
    model = build_model(MODEL, 4)
    real = accel.try_compile
    monkeypatch.setattr(accel, "try_compile", lambda m, x: real(m, x, backend="eager"))
    torch.manual_seed(3)
    before = torch.get_rng_state()
    compiled, how = S.compile_model(model, TrainConfig(compile=True, batch_size=4), 64, 1)
    assert how == "inductor" and compiled is not model
    assert torch.equal(torch.get_rng_state(), before)


def test_deferred_nan_check_names_the_step_and_skips_the_checkpoint(raw, monkeypatch):
    """The loss is read every SYNC_EVERY steps, yet a NaN is reported at the step it happened and
    no checkpoint is written after it."""
    monkeypatch.setattr(loop, "SYNC_EVERY", 100)
    torch.manual_seed(0)
    view = train_view(raw)
    model = build_model(MODEL, 4)
    cfg = TrainConfig(epochs=1, batch_size=4, threads=1)

    def poisoned(batches):
        for i, (x, y) in enumerate(transforms.batch_loader(view, batches, 0)):
            yield (torch.full_like(x, math.nan) if i == 2 else x), y

    saved, seen = [], []
    hooks = loop.Hooks(on_step=lambda s, loss, lr: seen.append(s), on_checkpoint=lambda st: saved.append(st.global_step))
    with pytest.raises(loop.NonFiniteLoss, match="loss became nan at epoch 1, step 2"):
        loop.fit(model, recipe.make_optimizer(model, cfg), view, poisoned, None, cfg, 5, loop.TrainState(), hooks)
    assert saved == [] and seen == [1, 2]  # the steps before the bad one still reach the hooks


# --- JPEG decoding and augmentation on the device ------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 1 / 64])
def test_device_batches_equal_train_view(jpeg, scale):
    """Same crops, flips, mean image and PCA colour as TrainView, on "cpu" (decode_jpeg runs
    there too). Finding: torchvision's CPU decoder (libjpeg-turbo) and simplejpeg agree pixel for
    pixel on these JPEGs, and the batches are then bitwise equal; nvJPEG on a GPU may differ by
    a unit per pixel, which the tolerance allows."""
    view = train_view(jpeg, scale=scale)
    dev = transforms.DeviceTrainBatches.from_view(view, "cpu")
    assert len(dev) == len(view) == 32
    for epoch in (0, 3):
        view.set_epoch(epoch)
        dev.set_epoch(epoch)
        idx = np.array([5, 0, 31, 17, 9, 22, 3, 30])
        assert view.draws.flip[idx].any() and not view.draws.flip[idx].all()  # both branches covered
        (a, ya), (b, yb) = view[idx], dev[idx]
        assert b.shape == a.shape == (8, 3, 64, 64) and b.dtype == a.dtype and b.is_contiguous()
        assert torch.equal(ya, yb)
        pixels = view.split.images(idx)  # simplejpeg
        tv = dev.decode(idx).numpy()  # torchvision.io.decode_jpeg
        assert np.abs(pixels.astype(int) - tv.astype(int)).max() <= 1
        torch.testing.assert_close(b, a, rtol=0, atol=1.01 * scale + 1e-4)  # a decoder unit at most
        if np.array_equal(pixels, tv):  # same float32 operations in the same order
            assert torch.equal(b, a)
    batches = [np.array([0, 1]), np.array([2, 3])]
    got = list(dev.loader(batches))
    assert len(got) == 2 and torch.equal(got[1][1], torch.from_numpy(view.split.labels[[2, 3]]))


def test_device_batches_refuse_raw_shards_and_a_missing_gpu(raw, jpeg):
    with pytest.raises(UserError, match="train.decode_device.*JPEG.*data.encoding: jpeg"):
        transforms.DeviceTrainBatches.from_view(train_view(raw), "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="train.decode_device.*no usable CUDA device"):
            transforms.DeviceTrainBatches.from_view(train_view(jpeg), "cuda:0")


def test_train_input_picks_the_decoder(jpeg):
    view = train_view(jpeg)
    cfg = C.Config()
    same, make = S.train_input(cfg, view)
    assert same is view and isinstance(make([np.array([0, 1])]), torch.utils.data.DataLoader)
    gpu = C.Config(train=TrainConfig(devices=("cuda:0",), decode_device="cuda"))
    if torch.cuda.is_available():
        dev, make = S.train_input(gpu, view)
        assert isinstance(dev, transforms.DeviceTrainBatches) and dev.device.type == "cuda"
    else:
        with pytest.raises(UserError, match="no usable CUDA device"):
            S.train_input(gpu, view)
