"""harness.accel on the CPU: precision contexts, channels_last, cuDNN flags, compile fallback."""

from dataclasses import replace

import pytest
import tiny
import torch

from harness import accel
from harness.model import build_model

TINY = replace(tiny.MODEL, input_scale=1.0)


def test_autocast_fp32_is_a_no_op_and_bf16_casts():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with accel.autocast("cpu", "fp32"):
        assert lin(x).dtype == torch.float32
    with accel.autocast("cpu", "bf16"):
        assert lin(x).dtype == torch.bfloat16
    assert lin.weight.dtype == torch.float32  # master weights stay fp32
    with pytest.raises(ValueError, match="precision"):
        accel.autocast("cpu", "fp16")


def test_channels_last_model_computes_the_same_function():
    torch.manual_seed(0)
    model = build_model(TINY, 10).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        accel.to_channels_last(model)
        assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        xc = accel.to_device(x, "cpu", channels_last=True)
        assert xc.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(xc), ref, rtol=1e-4, atol=1e-5)


def test_cudnn_autotuning_only_when_not_deterministic():
    before = torch.backends.cudnn.benchmark
    try:
        assert accel.configure_cudnn(deterministic=False)["cudnn_benchmark"] is True
        assert accel.configure_cudnn(deterministic=True)["cudnn_benchmark"] is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_pin_is_harmless_without_cuda():
    x = torch.zeros(2, 3)
    assert torch.equal(accel.pin(x), x)


def test_compile_falls_back_to_eager_with_the_reason():
    model = torch.nn.Linear(4, 2)
    x = torch.randn(1, 4)
    compiled, err = accel.try_compile(model, x, backend="eager")
    assert err is None
    torch.testing.assert_close(compiled(x), model(x))
    same, err = accel.try_compile(model, x, backend="no_such_backend")
    assert same is model and err
