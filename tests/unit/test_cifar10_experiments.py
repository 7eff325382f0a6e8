"""The machinery of the CIFAR-10 experiments without DVC: the test-made CIFAR-10 pickles, no-augmentation
views, the learning-rate selection, arms compared with a base arm, the presets and the report section."""

from __future__ import annotations

import copy
import math
import dataclasses
import pickle
from pathlib import Path

import cifar_fixtures as cf
import numpy as np
import pytest
import torch
import yaml
from scipy import stats as sps

from harness import config as C
from harness import presets
from harness.analysis.claims import load_claims
from harness.analysis.compare import CompareInputs, CompareSettings, build_compare
from harness.data import shards, transforms
from harness.model import build_model
from harness.prepare import writer
from harness.prepare.sources import load_cifar_batch
from harness.stages.compare import differs as compare_differs
from harness.train import loop, lr_select, recipe

REPO = Path(__file__).resolve().parents[2]


def test_fixture_has_the_distributed_layout(tmp_path):
    folder = cf.make_cifar10(tmp_path, per_batch=7)
    raw = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")
    images, labels = load_cifar_batch(folder / "data_batch_2")
    assert raw[b"data"].shape == (7, 3072) and raw[b"data"].dtype == np.uint8 and len(raw[b"labels"]) == 7
    # row r: 1024 red values, then green, then blue, each 32x32 row-major
    assert np.array_equal(images[3, :, :, 1].ravel(), raw[b"data"][3, 1024:2048])
    assert list(labels) == raw[b"labels"]
    meta = pickle.loads((folder / "batches.meta").read_bytes(), encoding="bytes")
    assert [n.decode() for n in meta[b"label_names"]] == list(cf.LABEL_NAMES)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = cf.make_cifar10(tmp_path_factory.mktemp("src"), per_batch=32)
    out = tmp_path_factory.mktemp("data")
    writer.prepare(C.DataConfig(source="cifar10", root=str(root), image_size=32, shard_size=100), out, workers=1)
    return out


MODEL = C.ModelConfig(arch="cuda_convnet_80sec", towers=1, dropout=0.0, lrn="cuda_convnet", input_size=32,
                      hidden_bias=0.0)


def views(prepared, crop_flip=False, crop=32, seed=3):
    norm = transforms.Normaliser(shards.load_stats(prepared)[0], 1.0)
    view = transforms.TrainView(shards.load_split(prepared, "train"), norm, None, crop, seed, 0.1,
                                crop_flip=crop_flip)
    val = shards.load_split(prepared, "val")
    val_loader = transforms.batch_loader(transforms.EvalView(val, norm, crop, "center"), [np.arange(16)], 0)
    return view, val_loader


TRAIN = C.TrainConfig(epochs=2, batch_size=16, lr=0.001, weight_decay=0.0, schedule="steps", threads=1,
                      crop_flip=False, lr_select_factors=(0.25, 1.0, 8.0), lr_select_steps=10)


def test_lr_selection_picks_the_fastest_and_the_run_repeats_its_pilot(prepared):
    torch.set_num_threads(1)
    view, val_loader = views(prepared)
    make_loader = lambda b: transforms.batch_loader(view, b, 0)  # noqa: E731
    torch.manual_seed(11)
    model = build_model(MODEL, 10)
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    sel = lr_select.select_lr(model, recipe.make_optimizer, view, make_loader, val_loader, TRAIN, seed=5)
    # the pilots leave the run's weights and its dropout RNG as they were
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    errors = sel["pilot_train_top1_error"]
    assert sel["factors"] == [0.25, 1.0, 8.0] and sel["steps"] == 10 and len(errors) == 3
    assert sel["chosen_factor"] == sel["factors"][int(np.argmin(errors))] and sel["lr"] == 0.001 * sel["chosen_factor"]
    # the run at the chosen rate: its first 10 steps (one epoch: 160 images / 16) are the pilot's
    run_cfg = C.TrainConfig(**{**TRAIN.__dict__, "lr": sel["lr"], "epochs": 1})
    history = loop.fit(model, recipe.make_optimizer(model, run_cfg), view, make_loader, val_loader, run_cfg, 5,
                       loop.TrainState(), loop.Hooks())
    assert history[0].train_top1_error == min(errors)


def test_lr_selection_when_every_rate_diverges(prepared):
    view, val_loader = views(prepared)
    model = build_model(MODEL, 10)
    cfg = C.TrainConfig(**{**TRAIN.__dict__, "lr_select_factors": (1e9, 1e10), "lr_select_steps": 4})
    with pytest.raises(loop.NonFiniteLoss, match="every learning rate"):
        lr_select.select_lr(model, recipe.make_optimizer, view, lambda b: transforms.batch_loader(view, b, 0),
                            val_loader, cfg, seed=5)


# --- arms with a base arm --------------------------------------------------------------------

def params(arms: dict, enabled: list) -> dict:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["ablations"].update(arms={**p["ablations"]["arms"], **arms}, enabled=enabled)
    return p


def load(tmp_path, p) -> C.Config:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    return C.load_config(tmp_path / "params.yaml")


def test_a_base_chooses_the_comparison_not_the_config(tmp_path):
    """The arm trains with its own overrides only, so DVC's params of its stages
    (ablations.arms.<arm>) hold everything it trains with; `base` only says what it is compared with."""
    cfg = load(tmp_path, params({"big": {"model": {"width": 0.5}, "train": {"lr": 0.02}},
                                 "big_no_lrn": {"base": "big", "model": {"width": 0.5, "lrn": "none"},
                                                "train": {"lr": 0.02}}}, ["big", "big_no_lrn"]))
    arm = C.apply_arm(cfg, "big_no_lrn")
    assert (arm.model.width, arm.train.lr, arm.model.lrn) == (0.5, 0.02, "none")
    assert cfg.ablations.arm("big_no_lrn").base == "big" and cfg.ablations.arm("big").base is None
    assert compare_differs(cfg, "big_no_lrn", "big") == {"model.lrn": ["paper", "none"]}
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "ablations.arms.${item.arm}" in dvc["train_ablation"]["params"]


@pytest.mark.parametrize("arms,enabled,words", [
    ({"a": {"base": "nope"}}, [], "ablations.arms.a.base: no arm named 'nope'"),
    ({"a": {"base": "b"}, "b": {"base": "a"}}, [], "cycle"),
    ({"a": {"base": "a"}}, [], "ablations.arms.a.base"),
    ({"a": {}, "b": {"base": "a"}}, ["b"], "base arm 'a', which is not enabled"),
])
def test_bad_bases_are_refused(tmp_path, arms, enabled, words):
    with pytest.raises(C.ConfigError, match=words):
        load(tmp_path, params(arms, enabled))


def evaluation(seed, top1, arm=None):
    e = {"seed": seed, "dataset": "cifar10", "split": "test", "num_classes": 10, "n_images": 10000,
         "protocols": {"center": {"top1_error": top1, "top5_error": 1.0},
                       "ten_patch": {"top1_error": top1 - 0.5, "top5_error": 1.0}}}
    return {**e, "arm": arm} if arm else e


def test_an_arm_is_compared_with_its_base_arm_not_the_baseline(tmp_path):
    """lrn-cifar10 measured as no_lrn minus lrn, while the baseline seeds are another net; one
    build_compare, so every claim of the report is in one Holm family (verdict.finalize)."""
    from harness.analysis.ablation import Series
    from harness.stages.compare import CIFAR10_COUNTS, _context, _with_bases, mark_bases
    p = yaml.safe_load((REPO / "presets" / "cifar10.yaml").read_text())
    cfg = C.from_dict(presets.with_preset(yaml.safe_load((REPO / "params.yaml").read_text()),
                                          {**p, "data": {**p["data"], "root": str(tmp_path)}}))
    claims, settings = load_claims(), CompareSettings(n_boot=200)
    baseline = [evaluation(s, e) for s, e in ((1, 30.0), (2, 31.0), (3, 29.5))]  # Figure 1 ReLU net
    lrn = [evaluation(s, e, "lrn") for s, e in ((1, 11.2), (2, 10.9), (3, 11.4))]
    no_lrn = [evaluation(s, e, "no_lrn") for s, e in ((1, 13.1), (2, 12.7), (3, 13.3))]
    fast, slow = [60.0, 20.0], [90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0]

    def group(results, curve):
        return {"results": results, "curves": {s: curve for s in (1, 2, 3)},
                "series": {s: Series.from_epochs(curve, 390) for s in (1, 2, 3)},
                "train": {s: {"train_time_s": 1.0, "final_val_top1_error": 12.0} for s in (1, 2, 3)},
                "steps_per_epoch": 390}
    arms = {n: {"overrides": cfg.ablations.arm(n).as_dict(), **group(r, c)}
            for n, r, c in (("tanh", baseline, slow), ("lrn", lrn, fast), ("no_lrn", no_lrn, fast))}
    base = group(baseline, fast)
    ablations = {"protocol": "center", "target_train_error": 25.0, "baseline_steps_per_epoch": 390,
                 "baseline_curves": base["curves"], "baseline_series": base["series"],
                 "arms": _with_bases(arms, cfg.ablations)}
    out = build_compare(CompareInputs(baseline, ablations=ablations, train=base["train"]),
                        _context(cfg, baseline, ablations, CIFAR10_COUNTS), claims, settings)
    mark_bases(out, cfg)
    res = out["ablation_results"]["no_lrn"]
    assert res["base"] == "lrn" and out["ablation_results"]["tanh"]["base"] == "baseline"
    assert res["differs_from_base"] == {"model.lrn": ["cuda_convnet", "none"]}
    assert "differs_from_base" not in out["ablation_results"]["tanh"]
    e = res["protocols"]["center"]["top1_error"]
    a, b = [r["protocols"]["center"]["top1_error"] for r in no_lrn], [r["protocols"]["center"]["top1_error"] for r in lrn]
    assert e["paired"] and e["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert e["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    rows = {r["id"]: r for r in out["claims"]}
    row = rows["lrn-cifar10"]
    assert row["tested"] and row["arm"] == "no_lrn" and row["compared_with"] == "lrn" and "vs arm lrn" in row["source"]
    d = np.subtract(a, b)
    assert row["estimate"] == pytest.approx(d.mean())
    # against the printed 2 pp, one run per arm: Var = s_d^2/n + s_x^2 + s_y^2, df n - 1 (docs/statistics.md)
    se = (np.var(d, ddof=1) / 3 + np.var(a, ddof=1) + np.var(b, ddof=1)) ** 0.5
    lo, hi = row["band"]
    p_in = max(sps.t.sf((d.mean() - lo) / se, 2), sps.t.cdf((d.mean() - hi) / se, 2))
    assert row["se"] == pytest.approx(se) and row["p_reproduced"] == pytest.approx(p_in)
    # tanh against the baseline seeds; one window per epoch, each placed at its middle (k - 0.5
    # epochs): ReLU crosses 25% at 0.5 + 35/40 epochs (60 -> 20), tanh at 6.5 + 5/10 (30 -> 20)
    relu = rows["relu-speed"]
    assert relu["tested"] and "compared_with" not in relu and "vs the paper's net" in relu["source"]
    assert relu["estimate"] == pytest.approx((6.5 + 5 / 10) / (0.5 + 35 / 40))
    family = [r for r in out["claims"] if r.get("p_reproduced") is not None]
    assert row["multiplicity"]["family_size"] == relu["multiplicity"]["family_size"] == len(family) >= 2
    assert out["counts"]["claims_tested"] == sum(r["tested"] for r in out["claims"])
    # the levels themselves: each from its own net's seeds, 10-patch, not the baseline's
    for cid, group in (("cifar10-11pct", lrn), ("cifar10-13pct", no_lrn)):
        lvl = rows[cid]
        assert lvl["tested"] and lvl["arm"] == ("lrn" if group is lrn else "no_lrn"), cid
        assert lvl["estimate"] == pytest.approx(np.mean([r["protocols"]["ten_patch"]["top1_error"] for r in group]))


# --- presets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar10", "cifar10-quick"])
def test_cifar_presets_apply_and_validate(tmp_path, name):
    params_path = tmp_path / "params.yaml"
    params_path.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset(name, REPO / "presets", params_path, str(tmp_path))
    cfg = C.load_config(params_path)
    assert cfg.data.source == "cifar10" and cfg.model.arch == "cuda_convnet_80sec"
    assert cfg.train.weight_decay == 0.0 and not cfg.train.crop_flip and not cfg.train.pca_colour
    assert cfg.train.lr_select_factors and cfg.train.stop_at_train_error is not None
    assert {a.name for a in cfg.ablations.arms} == {"tanh", "lrn", "no_lrn"}  # replaced, not merged
    tanh, lrn, no_lrn = (C.apply_arm(cfg, a) for a in ("tanh", "lrn", "no_lrn"))
    assert tanh.model.activation == "tanh" and tanh.train.lr_select_factors == cfg.train.lr_select_factors
    assert lrn.model.arch == no_lrn.model.arch == "cuda_convnet_11pct" and lrn.model.input_size == 24
    assert (lrn.model.lrn, no_lrn.model.lrn) == ("cuda_convnet", "none") and lrn.train.crop_flip
    assert compare_differs(cfg, "no_lrn", "lrn") == {"model.lrn": ["cuda_convnet", "none"]}  # nothing else
    assert cfg.ablations.arm("no_lrn").base == "lrn" and C.evaluated_split(cfg) == "test"
    from harness.report.deviations import interpretations
    from harness.stages.compare import cifar10_protocol_gaps, is_full_paper_model
    assert is_full_paper_model(cfg)  # the authors' nets; how far the run is cut down is another question
    full_data = {"train": 50_000, "val": 10_000}
    gaps = dict(cifar10_protocol_gaps(cfg, full_data))
    if name == "cifar10":  # the full preset on the real archive cuts nothing
        assert gaps == {}
        assert set(dict(cifar10_protocol_gaps(cfg, {"train": 500, "val": 100}))) == {"*"}
    else:  # the quick preset: a 50% stop and a 1-epoch 11% net
        assert set(gaps) == {"relu-speed", "lrn-cifar10", "cifar10-11pct", "cifar10-13pct"}
        assert "the baseline at 50%" in gaps["relu-speed"] and "arm lrn 1" in gaps["lrn-cifar10"]
    for c in (cfg, lrn, no_lrn):  # every reading is reported on every run (docs/fidelity.md)
        rows = {r["switch"]: r["ours"] for r in interpretations(c)}
        assert rows["model.lrn"].startswith(c.model.lrn) and c.model.arch in rows["model.input_size, model.conv1_padding"]
    if name == "cifar10":
        assert len(cfg.train.seeds) >= 3
        assert (cfg.train.stop_at_train_error, cfg.ablations.target_train_error) == (25.0, 25.0)
        assert (lrn.train.epochs, lrn.train.lr_steps, lrn.train.weight_decay) == (450, (430, 440), 0.004)
    else:
        assert "quick" in cfg.profile


# --- the report section ------------------------------------------------------------------------

def report_inputs(tmp_path, with_arms: bool):
    import types

    import pandas as pd
    cfg = C.from_dict(presets.with_preset(yaml.safe_load((REPO / "params.yaml").read_text()),
                                          {**yaml.safe_load((REPO / "presets" / "cifar10.yaml").read_text()),
                                           "data": {"source": "cifar10", "root": str(tmp_path), "image_size": 32}}))
    sel = lambda chosen: {"steps": 200, "base_lr": 0.001, "factors": [0.5, 1.0, 2.0, 4.0], "lr": 0.001 * chosen,  # noqa: E731
                          "chosen_factor": chosen, "pilot_train_top1_error": [80.0, 75.0, 70.0, 72.0]}
    # tanh's record as the search writes it: the grid extended past x4 to x8, x4 interior
    extended = lambda chosen: {  # noqa: E731
        **sel(chosen), "grid": [0.5, 1.0, 2.0, 4.0], "factors": [0.5, 1.0, 2.0, 4.0, 8.0],
        "pilot_train_top1_error": [80.0, 75.0, 70.0, 65.0, 71.0], "at_limit": False}
    run = lambda chosen, errs, record=sel: {  # noqa: E731
        "train": {s: {"epochs": len(errs), "lr_selection": record(chosen),
                      "stopped_at_target": {"reached": True, "steps_per_epoch": 390}}
                  for s in (1, 2)},
        "curves": {s: pd.DataFrame({"epoch": range(1, len(errs) + 1), "train_top1_error": errs}) for s in (1, 2)},
        "evaluations": {s: {"protocols": {"center": {"top1_error": 11.0 + s}}} for s in (1, 2)}}
    effect = {"baseline": {"mean": 12.5, "n": 2}, "arm": {"mean": 14.0, "n": 2}, "diff": 1.5, "lo": 0.5, "hi": 2.5,
              "p_value": 0.03}
    conv = {"target_train_error": 25.0, "tested": True, "resolution_steps": 20.0, "bound": None,
            "baseline_iterations": {"1": 2340, "2": 2340}, "arm_iterations": {"1": 14040.4, "2": 14040},
            "not_reached": {"baseline": [], "arm": [2]}, "ratio": 6.0, "ratio_lo": 5.0, "ratio_hi": 7.0}
    claims = [{"id": "relu-speed", "tested": False, "paper_value": 6.0, "reason": "r", "band": [4.0, 9.0],
               "measured_on_run": {"arm": "tanh", "estimate": 6.0, "lo": 5.5, "hi": 6.5}},
              {"id": "lrn-cifar10", "tested": True, "paper_value": 2.0, "verdict": "inconclusive", "band": [1.0, 3.0],
               "compared_with": "lrn", "arm": "no_lrn", "estimate": 1.5, "lo": 0.5, "hi": 2.5, "interval_level": 0.9}]
    if not with_arms:
        claims = [{"id": c["id"], "tested": False, "paper_value": c["paper_value"], "reason": "needs an arm"}
                  for c in claims]
    compare = {"claims": claims, "ablations": {"protocol": "center"},
               "ablation_results": {"tanh": {"base": "baseline", "convergence": conv},
                                    "no_lrn": {"base": "lrn", "protocols": {"center": {"top1_error": effect}}}}}
    base = run(4.0, [60.0, 40.0, 24.0])
    steps = {1: pd.DataFrame({"step": [20, 40, 60], "train_top1_error": [90.0, 61.5, 23.0]})}  # seed 2: curve only
    return types.SimpleNamespace(params=C.to_dict(cfg), compare=compare, train=base["train"], curves=base["curves"],
                                 evaluations=base["evaluations"], cifar10_costs=None, steps=steps,
                                 arms={"tanh": run(4.0, [80.0, 50.0, 24.0], extended), "lrn": run(1.0, [50.0]),
                                       "no_lrn": run(1.0, [50.0])})


def test_report_section_shows_both_experiments(tmp_path, monkeypatch):
    from harness.report import cifar10
    from harness.report.render import Doc, to_markdown
    drawn = {}
    draw = cifar10.figures.training_error_vs_iterations
    monkeypatch.setattr(cifar10.figures, "training_error_vs_iterations",
                        lambda groups, target: drawn.update(groups) or draw(groups, target))
    doc = Doc()
    cifar10.section(doc, report_inputs(tmp_path, with_arms=True))
    md = to_markdown(doc, "figures")
    assert "### Figure 1: ReLU vs tanh" in md and "figure1.png" in md and "Quick variant" not in md
    # a record written before the search was extended: at the grid's edge, so at its limit
    assert "| 0.004 (x4) | x2: 70.00 | none tried | yes | x0.5: 80.00, x1: 75.00, x2: 70.00, x4: 72.00* |" in md
    assert "Chosen at the limit of the search (ReLU seed 1: x4, ReLU seed 2: x4)" in md
    assert "claim relu-speed is not decided on this run" in md
    # tanh: the chosen rate with the pilot errors of the factors either side; x8 was beyond the grid
    assert "| tanh | 1 | 200 | 0.001 | 0.004 (x4) | x2: 70.00 | x8: 71.00 | no | " \
           "x0.5: 80.00, x1: 75.00, x2: 70.00, x4: 65.00*, x8+: 71.00 |" in md
    assert set(drawn) == {"ReLU (baseline), lr 0.004", "tanh (tanh), lr 0.004"}  # Figure 1's legend
    assert "| relu-speed | 6x | 6.00 [5.00, 7.00] | 6.00 [5.50, 6.50] | [4.00, 9.00] | not tested: r |" in md
    assert "| tanh | tanh | 2 | 0.004 | 3 | 14,040 | no (censored) |" in md
    assert "| lrn-cifar10 | 2 pp (13% -> 11%) | 1.50 [0.50, 2.50] (90%) | [1.00, 3.00] | inconclusive |" in md
    assert "cuda_convnet_11pct" in md and "450 epochs, lr / 10 at epochs 430, 440" in md and "every 20 steps" in md
    assert any(b[0] == "fig" and b[3][:4] == b"\x89PNG" for b in doc.blocks)


def test_figure1_reads_the_step_series_where_there_is_one(tmp_path):
    from harness.report import cifar10
    inp = report_inputs(tmp_path, with_arms=True)
    run = cifar10._run(inp, "baseline")
    assert cifar10._series(run, 1, 390) == ([20, 40, 60], [90.0, 61.5, 23.0])  # the window series
    assert cifar10._series(run, 2, 390) == ([390, 780, 1170], [60.0, 40.0, 24.0])  # epoch ends, no steps file


def test_report_section_says_what_was_not_run(tmp_path):
    from harness.report import cifar10
    from harness.report.render import Doc, to_markdown
    doc = Doc()
    cifar10.section(doc, report_inputs(tmp_path, with_arms=False))
    md = to_markdown(doc, "figures")
    assert md.count("Not run:") == 2 and "figure1.png" not in md
    assert "Not measured: run `python -m benchmarks.cifar10`" in md
    doc = Doc()
    inp = report_inputs(tmp_path, with_arms=True)
    inp.params["data"]["source"] = "synthetic"
    cifar10.section(doc, inp)
    assert doc.blocks == []  # no section on other data


# --- the lr search beyond the grid (paper 3.1: "as fast as possible") ---------------------------

TANH = dataclasses.replace(MODEL, activation="tanh")  # the preset's Figure 1 net, arm tanh


def select(prepared, model_cfg, train_cfg, init_seed=11):
    view, val_loader = views(prepared)
    torch.manual_seed(init_seed)
    model = build_model(model_cfg, 10)
    make_loader = lambda b: transforms.batch_loader(view, b, 0)  # noqa: E731
    sel = lr_select.select_lr(model, recipe.make_optimizer, view, make_loader, val_loader, train_cfg, seed=5)
    return sel, model, view, make_loader, val_loader


def test_the_search_goes_past_a_grid_edge_that_is_too_small(prepared):
    """A base lr so small that the preset's grid (x0.5 .. x4) still improves at x4: the search
    doubles past it and stops at an interior best, the grid's own pilots unchanged."""
    grid = C.TrainConfig(**{**TRAIN.__dict__, "lr": 1e-5, "lr_select_factors": (0.5, 1.0, 2.0, 4.0)})
    old, *_ = select(prepared, TANH, grid)
    assert old["factors"] == [0.5, 1.0, 2.0, 4.0] and old["chosen_factor"] == 4.0 and old["at_limit"]
    sel, *_ = select(prepared, TANH, dataclasses.replace(grid, lr_select_limit=4096.0))
    assert sel["factors"][:4] == old["factors"] and sel["pilot_train_top1_error"][:4] == old["pilot_train_top1_error"]
    assert sel["factors"][4:] == [4.0 * 2 ** k for k in range(1, len(sel["factors"]) - 3)]  # doubling, nothing lower
    err = dict(zip(sel["factors"], sel["pilot_train_top1_error"]))
    chosen = sel["chosen_factor"]
    assert chosen > 4.0 and not sel["at_limit"] and chosen < max(sel["factors"])
    assert err[chosen] < err[4.0] and err[chosen] <= err[chosen * 2] and err[chosen] <= err[chosen / 2]
    assert sel["factors"][-1] == chosen * 2  # it stopped at the first rate past the best
    assert sel["lr"] == pytest.approx(1e-5 * chosen) and sel["grid"] == [0.5, 1.0, 2.0, 4.0]


def steps_to(model, view, make_loader, val_loader, train_cfg, lr, target):
    """(steps to `target` % training error, censored) of a run at `lr` from `model`'s weights, at
    step resolution as the compare stage counts them (harness/analysis/ablation.py crossing)."""
    from harness.analysis.ablation import Series, crossing
    m = copy.deepcopy(model)
    cfg = dataclasses.replace(train_cfg, lr=lr, lr_select_factors=())
    state = loop.TrainState()
    try:
        loop.fit(m, recipe.make_optimizer(m, cfg), view, make_loader, val_loader, cfg, 5, state, loop.Hooks())
    except loop.NonFiniteLoss:
        return math.inf, True
    w = np.array(state.windows, dtype=float)
    return crossing(Series.from_windows(w[:, 0], w[:, 2], w[:, 3]), target)


@pytest.mark.parametrize("model_cfg,lr,target", [(MODEL, 2.5e-4, 50.0), (TANH, 1e-3, 20.0)], ids=["relu", "tanh"])
def test_the_chosen_lr_reaches_the_target_no_later_than_its_neighbours(prepared, model_cfg, lr, target):
    """What the criterion should predict (paper 3.1, Figure 1): on the preset's net, the factor
    chosen from the pilots reaches the training-error target no later than the factors next to it
    among those tried, each trained from the same initial weights and data order."""
    train_cfg = C.TrainConfig(**{**TRAIN.__dict__, "lr": lr, "epochs": 8, "lr_select_factors": (0.5, 1.0, 2.0, 4.0),
                                 "lr_select_limit": 64.0})
    sel, model, view, make_loader, val_loader = select(prepared, model_cfg, train_cfg)
    tried = sorted(sel["factors"])
    i = tried.index(sel["chosen_factor"])
    assert not sel["at_limit"] and 0 < i < len(tried) - 1
    reach = {f: steps_to(model, view, make_loader, val_loader, train_cfg, lr * f, target) for f in tried[i - 1:i + 2]}
    chosen_steps, censored = reach[sel["chosen_factor"]]
    assert not censored
    assert all(chosen_steps <= s for s, _ in reach.values())
    assert max(s for s, _ in reach.values()) > chosen_steps  # the neighbours differ: the check can fail


def pilots(errors_of, grid, limit):
    """The search of lr_select.select_lr on made-up pilot errors (errors_of: factor -> error or None)."""
    factors, errors = [], []
    queue = list(grid)
    while queue:
        f = queue.pop(0)
        factors.append(f)
        errors.append(errors_of(f))
        if not queue:
            nxt = lr_select.next_factor(grid, factors, errors, limit)
            queue = [] if nxt is None else [nxt]
    return factors


def test_the_search_by_hand():
    """Hand-worked searches: a U-shaped error with its minimum at x16 (doubling from the grid's x4
    up to x32, one past the best); a minimum below the grid (halving at its spacing); a rate that
    diverges counts as worse; the limit stops the search; no limit, the grid alone."""
    u = lambda best: lambda f: abs(math.log2(f) - math.log2(best))  # noqa: E731
    assert pilots(u(16), (0.5, 1, 2, 4), 64) == [0.5, 1, 2, 4, 8, 16, 32]
    assert pilots(u(0.1), (0.5, 1, 2, 4), 64) == [0.5, 1, 2, 4, 0.25, 0.125, 0.0625]
    assert pilots(u(100), (0.5, 1, 2, 4), 64) == [0.5, 1, 2, 4, 8, 16, 32, 64]  # at the limit
    assert pilots(u(100), (0.5, 1, 2, 4), None) == [0.5, 1, 2, 4]
    assert pilots(u(16), (0.25, 1, 4), 64) == [0.25, 1, 4, 16, 64]  # the grid's own spacing, x4
    assert pilots(lambda f: None if f > 4 else -f, (0.5, 1, 2, 4), 64) == [0.5, 1, 2, 4, 8]  # x8 diverged: x4 interior
    assert pilots(lambda f: None if f > 0.3 else -f, (0.5, 1, 2, 4), 64) == [0.5, 1, 2, 4, 0.25, 0.125]  # all diverged
    # flat: ties go to the first tried, x0.5, which is interior once x0.25 ties it
    assert pilots(lambda f: 50.0, (0.5, 1, 2, 4), 8) == [0.5, 1, 2, 4, 0.25]
    assert pilots(u(16), (2.0,), 64) == [2.0]  # one factor: no spacing to extend at
    sel = {"factors": [0.5, 1, 2, 4, 8, 16, 32, 64], "chosen_factor": 64}
    assert lr_select.at_limit(sel) and not lr_select.at_limit({**sel, "chosen_factor": 16})
    assert lr_select.at_limit({**sel, "chosen_factor": 16, "at_limit": True})  # the record's word first


def test_the_limit_is_validated():
    with pytest.raises(C.ConfigError, match="train.lr_select_limit"):
        C.from_dict({"train": {"lr_select_factors": [0.5, 8.0], "lr_select_limit": 4.0}})
    with pytest.raises(C.ConfigError, match="train.lr_select_limit"):
        C.from_dict({"train": {"lr_select_factors": [0.125, 1.0], "lr_select_limit": 4.0}})
    with pytest.raises(C.ConfigError, match="train.lr_select_limit"):
        C.from_dict({"train": {"lr_select_limit": 0.5}})
    cfg = C.from_dict({"train": {"lr_select_factors": [0.5, 4.0], "lr_select_limit": 64}})
    assert cfg.train.lr_select_limit == 64.0
    # null (the grid alone) leaves the training digest as it was before the key existed
    assert "lr_select_limit" not in C.training_config(C.from_dict({}))["train"]
    assert C.training_config(cfg)["train"]["lr_select_limit"] == 64.0


def figure1_compare(tmp_path, baseline_sel: dict | None, tanh_sel: dict | None) -> dict:
    """compare.json's relu-speed row of the full preset (real data counts) whose ReLU seeds cross
    25% at 1.375 epochs and tanh's at 7: tested, unless a selection record says otherwise."""
    from harness.analysis.ablation import Series
    from harness.stages.compare import CIFAR10_COUNTS, _context, _with_bases
    p = yaml.safe_load((REPO / "presets" / "cifar10.yaml").read_text())
    p["ablations"]["enabled"] = ["tanh"]
    cfg = C.from_dict(presets.with_preset(yaml.safe_load((REPO / "params.yaml").read_text()),
                                          {**p, "data": {**p["data"], "root": str(tmp_path)}}))
    results = [evaluation(s, 30.0 + s) for s in (1, 2, 3)]

    def group(curve, sel):
        return {"results": results, "curves": {s: curve for s in (1, 2, 3)},
                "series": {s: Series.from_epochs(curve, 390) for s in (1, 2, 3)},
                "train": {s: {"train_time_s": 1.0, **({"lr_selection": sel} if sel else {})} for s in (1, 2, 3)},
                "steps_per_epoch": 390}
    tanh, base = group([90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0], tanh_sel), group([60.0, 20.0], baseline_sel)
    ablations = {"protocol": "center", "target_train_error": 25.0, "baseline_steps_per_epoch": 390,
                 "baseline_curves": base["curves"], "baseline_series": base["series"],
                 "arms": _with_bases({"tanh": {"overrides": cfg.ablations.arm("tanh").as_dict(), **tanh}},
                                     cfg.ablations)}
    context = _context(cfg, results, ablations, CIFAR10_COUNTS, base["train"])
    out = build_compare(CompareInputs(results, ablations=ablations, train=base["train"]), context, load_claims(),
                        CompareSettings(n_boot=200))
    return {r["id"]: r for r in out["claims"]}["relu-speed"]


def record(chosen: float, factors=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0), at_limit=None) -> dict:
    r = {"factors": list(factors), "chosen_factor": chosen, "lr": 0.001 * chosen,
         "pilot_train_top1_error": [80.0] * len(factors)}
    return r if at_limit is None else {**r, "at_limit": at_limit}


def test_relu_speed_is_not_decided_on_a_rate_at_the_limit(tmp_path):
    """Paper 3.1: each net's rate "chosen ... to make training as fast as possible"; a run whose
    search ended with its best rate at an edge of those tried has not shown that."""
    interior = record(4.0, at_limit=False)
    assert figure1_compare(tmp_path, interior, interior)["tested"]
    assert figure1_compare(tmp_path, None, None)["tested"]  # selection off: the files' rates, as declared
    for relu, tanh, who in ((interior, record(16.0, at_limit=True), "arm tanh seed 1 x16 (lr 0.016)"),
                            (record(0.5, (0.5, 1.0, 2.0, 4.0)), interior, "the baseline seed 1 x0.5 (lr 0.0005)")):
        row = figure1_compare(tmp_path, relu, tanh)  # the second: a record of before the field, at the grid's edge
        assert not row["tested"] and row["category"] == "cut-down experiment", row
        assert row["reason"].startswith("lr at the grid's edge") and who in row["reason"], row["reason"]
        assert row["measured_on_run"]["estimate"] == pytest.approx(7.0 / 1.375)  # still measured, shown


def test_the_most_pilots_a_search_can_run():
    """The cost bound docs/cifar10.md quotes: the preset's grid x0.5 .. x4 with limit 64 goes up
    to x8, x16, x32, x64 (4 more) or down to x1/4 .. x1/64 (5 more), one way only: 9 pilots."""
    assert lr_select.max_pilots((0.5, 1.0, 2.0, 4.0), 64.0) == 9
    assert lr_select.max_pilots((0.5, 1.0, 2.0, 4.0), None) == 4
    assert lr_select.max_pilots((0.25, 1.0, 4.0), 64.0) == 3 + 2  # x16, x64 up; x1/16, x1/64 down
    assert lr_select.max_pilots((2.0,), 64.0) == 1
    u = lambda best: lambda f: abs(math.log2(f) - math.log2(best))  # noqa: E731
    assert max(len(pilots(u(b), (0.5, 1.0, 2.0, 4.0), 64.0)) for b in (1e-3, 0.3, 3, 100)) == 9
