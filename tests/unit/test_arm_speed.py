"""benchmarks/arm_speed.py (the arms' step time against the paper net, one process) and how report
section 17 shows it (docs/successors.md, "Cost and sizes")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import arm_speed
from benchmarks import run as bench_run
from harness import config as C
from harness.report import sections
from harness.report.render import Doc, to_markdown
from harness.stages.compare import net_cost

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.json"
    out.write_text(json.dumps({"train": {"kept": 1}, "arms": {"stale": True}}))
    # no prepared data at --data: the benchmark prepares a small synthetic set in a temp dir
    arm_speed.main(["--params", str(ROOT / "params.yaml"), "--data", str(out.parent / "none"), "--out", str(out),
                    "--arms", "lenet5", "--quick", "--threads", "1"])
    return json.loads(out.read_text())


def test_benchmark_writes_its_key_and_keeps_the_others(measured):
    assert measured["train"] == {"kept": 1}
    res = measured["arms"]
    assert set(res["nets"]) == {"paper", "lenet5"} and "stale" not in res
    cfg = C.load_config(ROOT / "params.yaml")
    lenet = res["nets"]["lenet5"]
    # 20 synthetic classes: the same size and multiply-adds compare.json's arm_costs gives
    assert {k: lenet[k] for k in ("n_parameters", "mult_adds")} == {
        k: v for k, v in net_cost(C.apply_arm(cfg, "lenet5"), 20).items() if k in ("n_parameters", "mult_adds")}
    assert res["nets"]["paper"]["time_vs_paper"] == 1.0 and lenet["time_vs_paper"] > 0
    assert lenet["step_s"]["n"] == res["nets"]["paper"]["step_s"]["n"] == arm_speed.QUICK.rounds
    # one seed = epochs x full batches of the training images, at the measured median step
    steps = cfg.train.epochs * (res["train_images"] // cfg.train.batch_size)
    assert lenet["est_train_s_per_seed"] == pytest.approx(steps * lenet["step_s"]["median"])
    assert lenet["images_per_s"] == pytest.approx(cfg.train.batch_size / lenet["step_s"]["median"])


def test_unknown_arm_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no_such_arm not in params.yaml"):
        arm_speed.main(["--params", str(ROOT / "params.yaml"), "--data", str(tmp_path), "--out",
                        str(tmp_path / "b.json"), "--arms", "no_such_arm", "--quick"])


def test_benchmarks_run_keeps_the_arms_key(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"arms": {"x": 1}, "train": {"old": 1}}))
    assert bench_run.kept_keys(path) == {"arms": {"x": 1}}
    assert bench_run.kept_keys(tmp_path / "missing.json") == {}


def _net(arch: str, mean: float) -> dict:
    err = {"mean": mean, "t_lo": mean - 1, "t_hi": mean + 1, "n": 3}
    return {"arch": arch, "input_size": 64, "n_parameters": 1000, "mult_adds": 2e6, "images_per_s": 500.0,
            "train_time_s": 60.0, "errors": {"top1_error": err, "top5_error": err}}


def _section(speed: dict | None, deviations: list | None = None) -> str:
    compare = {"arm_costs": {"protocol": "center", "conf": 0.95,
                             "nets": {"baseline": _net("paper", 75.0), "lenet5": _net("lenet5", 87.0)}},
               "ablation_results": {"lenet5": {"overrides": {"model.arch": "lenet5"}, "protocols": {"center": {
                   "top1_error": {"diff": 12.0, "lo": 9.0, "hi": 15.0}}}}}}
    inp = sections.ReportInputs(params={}, compare=compare, train={}, curves={}, evaluations={}, ensemble={},
                                manifest={}, deviations=deviations or [], provenance={},
                                benchmarks=None if speed is None else {"arms": speed})
    doc = Doc()
    sections.successors(doc, inp)
    return to_markdown(doc, "figures")


def test_report_shows_same_process_ratios_and_untrained_arms(measured):
    speed = json.loads(json.dumps(measured["arms"]))
    speed["nets"]["vgg16"] = {**speed["nets"]["lenet5"], "arch": "vgg16", "time_vs_paper": 40.0}
    md = _section(speed)
    assert "step time vs paper net (benchmark)" in md
    assert f"{speed['nets']['lenet5']['time_vs_paper']:.2f}x" in md and "| 1.00x" in md
    untrained = md.split("Not trained in this run")[1].split("changes (departures")[0]
    assert "vgg16" in untrained and "40.00x" in untrained and "lenet5" not in untrained
    # a benchmark at another crop size is not shown: its step times say nothing about these nets
    assert "step time vs paper net" not in _section({**speed, "input_size": 224})
    assert "step time vs paper net" not in _section(None)


def test_the_section_says_which_net_the_paper_net_is():
    """the successors are compared with the run's baseline (on the default profile
    width 0.25, He init, inverted dropout, ...), not the paper's net as printed; the section says so."""
    from pathlib import Path

    from harness import config as C
    from harness.report.deviations import deviations
    default = deviations(C.load_config(Path(__file__).resolve().parents[2] / "params.yaml"))
    md = _section(None, default)
    line = next(ln for ln in md.splitlines() if ln.startswith("'Paper net' below"))
    assert "not the paper's net as printed" in line
    for part in ("model.width 0.25", "model.init kaiming", "model.dropout_scaling inverted"):
        assert part in line, part
    assert "as printed" in _section(None, [])  # the paper's recipe: said as such
