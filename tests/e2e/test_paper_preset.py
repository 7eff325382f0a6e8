"""The configuration a user runs on ImageNet, end to end on the CPU: `harness preset ilsvrc2012`
(the full-width two-tower net at 256/224 stored/cropped, the paper's N(0, 0.01) init with unit
biases, raw 0-255 inputs, SGD 0.01/0.9/5e-4 with the plateau schedule, JPEG shards, centre and
10-patch evaluation) applied to an ILSVRC-2012 layout built from the real sample JPEGs, then
`dvc repro`.

What is cut, and only that (everything else is the preset's value):
  - train.seeds [1, 2, 3, 4, 5] -> [1]
  - train.epochs 90 -> 1, and so the steps: 132 training images (22 copies of each of the 6
    classes' JPEGs) make exactly one step of the paper's batch of 128
  - train.devices [cuda:0, cuda:1] -> [cpu, cpu] (still one tower per device, paper 3.2), and this
    2-core machine's train.threads 8 -> 2 and train.num_workers 8 -> 0, and train.decode_device
    cuda -> cpu (JPEG shards decoded on the CPU, as a machine without a GPU must)
The full-width net trains at about 18 images/s here, so the step takes seconds, not hours.
"""

import json
import subprocess
import sys

import imagenet_fixtures as FX
import numpy as np
import pytest
import torch
from repo_utils import copy_repo, deep_update, dvc, env_for, get_params, ran_stages, set_params

pytestmark = pytest.mark.slow

CUT = {"train": {"seeds": [1], "epochs": 1, "devices": ["cpu", "cpu"], "threads": 2, "num_workers": 0,
                 "decode_device": "cpu"}}


def test_the_paper_preset_runs_end_to_end(tmp_path):
    FX.sample_dir()
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=True, train_copies=22)
    repo = copy_repo(tmp_path / "repo", {})  # the repository's own params.yaml, then the preset
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "preset", "ilsvrc2012", "--root", str(root)],
                          cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    preset = get_params(repo)
    set_params(repo, deep_update(preset, CUT))
    out = dvc(repo, "repro")
    assert {"prepare", "train@1", "evaluate@1", "ensemble", "compare", "report"} <= ran_stages(out)

    p = get_params(repo)  # what ran: the preset, cut only as the docstring says
    assert (p["profile"], p["data"]["image_size"], p["data"]["encoding"]) == ("paper", 256, "jpeg")
    assert {k: p["model"][k] for k in ("arch", "width", "towers", "input_size", "init", "input_scale")} == \
        {"arch": "paper", "width": 1.0, "towers": 2, "input_size": 224, "init": "paper", "input_scale": 1.0}
    assert (p["train"]["batch_size"], p["train"]["lr"], p["train"]["schedule"]) == (128, 0.01, "plateau")
    assert p["evaluate"]["protocols"] == ["center", "ten_patch"]

    m = json.loads((repo / "artifacts/data/manifest.json").read_text())
    assert m["counts"]["train"] == 6 * 22 and m["counts"]["val"] == len(FX.VAL_WNIDS)
    model = torch.load(repo / "artifacts/models/seed-1/model.pt", weights_only=True)
    w = model["state_dict"]
    shapes = sorted(tuple(v.shape) for v in w.values())
    assert (96, 3, 11, 11) in shapes and (4096, 9216) in shapes and (4096, 4096) in shapes  # full width, 6x6x256
    assert len({v.data_ptr() for v in w.values()}) == len(w)  # each tensor under one name
    assert sum(v.numel() for v in w.values()) == 60_965_224 - 4097 * 1000 + 4097 * 6  # the paper net, with 6 classes
    train = json.loads((repo / "reports/metrics/train/seed-1.json").read_text())
    assert train["epochs"] == 1 and np.isfinite(train["final_train_loss"])
    ev = json.loads((repo / "reports/metrics/evaluate/seed-1.json").read_text())
    assert set(ev["protocols"]) == {"center", "ten_patch"} and ev["n_images"] == len(FX.VAL_WNIDS)
    ten = np.load(repo / "artifacts/predictions/seed-1/ten_patch.npy")
    assert ten.shape == (len(FX.VAL_WNIDS), 6) and np.allclose(ten.sum(1), 1, atol=1e-5)
    report = (repo / "reports/report.md").read_text()
    assert "ilsvrc2012" in report
