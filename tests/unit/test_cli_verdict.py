"""`harness verdict`: results trained anywhere through the compare stage's code path (verdict.py).

In process for the outputs (harness.cli.main), in a subprocess for what a user sees on bad
input: exit 2 and one `error:` line, no traceback.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.analysis import verdict as V
from harness.analysis.claims import RunContext, load_claims
from harness.analysis.compare import CompareInputs, CompareSettings, build_compare

REPO = Path(__file__).resolve().parents[2]


def run_json(capsys, *args) -> dict:
    cli.main(["verdict", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def run_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "verdict", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_json_has_the_interface_fields(capsys):
    out = run_json(capsys, "--claim", "t2-1cnn-top5-val", "--values", "18.1,18.3,18.2,18.0,18.4")
    assert out["claim"] == "t2-1cnn-top5-val" and out["verdict"] == "reproduced"
    assert out["estimate"] == pytest.approx(18.2) and out["interval"][0] < 18.2 < out["interval"][1]
    assert out["tolerance"]["band"] == [17.4, 19.0] and out["tolerance"]["reason"]
    assert out["p"]["reproduced"] < 0.05 and out["seeds_needed"] is None
    assert out["same_test_set"] is True and "same test set as the paper's assumed" in out["source"]


def test_same_numbers_same_verdict_as_the_compare_stage(capsys):
    """The CLI and build_compare give one claim the same row (one code path)."""
    values = [18.6, 18.9, 18.4, 18.8, 18.7]
    cli_row = run_json(capsys, "--claim", "t2-1cnn-top5-val", "--values", ",".join(map(str, values)),
                       "--n-images", "50000")
    results = [{"seed": i + 1, "dataset": "ilsvrc2012", "split": "val", "num_classes": 1000, "n_images": 50_000,
                "protocols": {"ten_patch": {"top1_error": 40.7, "top5_error": v}}} for i, v in enumerate(values)]
    claims = [c for c in load_claims() if c.id == "t2-1cnn-top5-val"]
    out = build_compare(CompareInputs(results), RunContext("ilsvrc2012", "val", 1000, 5, ("ten_patch",), True), claims,
                        CompareSettings())
    stage = V.record(out["claims"][0])
    for key in ("verdict", "estimate", "interval", "exclusion_interval", "p", "seeds_needed", "tolerance", "n"):
        assert cli_row[key] == stage[key], key


def test_effects_ratios_and_another_test_set(capsys):
    # runs this tight (per-run sd 0.01 pp): the printed 0.4 pp, one run per arm, is nearly exact too
    eff = run_json(capsys, "--claim", "overlap-pool-top1", "--values", "40.0,40.02,39.99,40.01,40.0",
                   "--variant", "40.41,40.42,40.39,40.4,40.39", "--paired")
    assert eff["estimate"] == pytest.approx(0.398) and eff["verdict"] == "reproduced" and eff["paired"]
    zero = run_json(capsys, "--claim", "overlap-pool-top1", "--values", "40.0,40.02,39.99,40.01,40.0",
                    "--variant", "40.01,40.02,40.0,40.0,40.0", "--paired")
    assert zero["verdict"] == "not reproduced" and zero["direction"] != "reversed"
    ratio = run_json(capsys, "--claim", "relu-speed", "--values", "300,300,300", "--variant", "1800,1800,1800")
    assert ratio["estimate"] == pytest.approx(6.0) and ratio["verdict"] == "reproduced"  # ratio = variant / paper
    flat = run_json(capsys, "--claim", "dropout-convergence", "--values", "800,800,800", "--variant", "800,800,800")
    assert flat["verdict"] == "not reproduced"
    other = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "50000")
    assert other["same_test_set"] is False  # the test-server number against our val: both binomial terms
    ten = run_json(capsys, "--claim", "ten-patch-top1", "--values", "37.5,37.6,37.4", "--variant", "39.0,39.1,38.9")
    assert ten["paired"] is True and ten["estimate"] == pytest.approx(1.5)  # the same models: always paired


@pytest.mark.parametrize("args", [
    ("--claim", "t2-1cnn-top5-val", "--values", "19.01,19.01"),  # was "not reproduced", p exactly 0
    ("--claim", "t2-1cnn-top5-val", "--values", "18.2,18.2,18.2"),  # was "reproduced", p 0
    # an effect of exactly 0.6, the band's edge: 41.6 - 41 is 0.6000000000000014 in floats; was "not reproduced"
    ("--claim", "overlap-pool-top1", "--values", "40,41", "--variant", "40.6,41.6", "--paired"),
    ("--claim", "t2-5cnn-top5-test", "--values", "16.3,16.3", "--n-images", "50000"),
    ("--claim", "two-gpu-time", "--values", "3600,3600,3600", "--variant", "5400,5400,5400"),
])
def test_no_spread_is_no_evidence(capsys, args):
    # docs/statistics.md, no spread: zero or float-level spread never gives p 0 or 1: inconclusive, and it says why
    out = run_json(capsys, *args)
    assert out["verdict"] == "inconclusive" and out["p"]["reproduced"] is None and out["p"]["not_reproduced"] is None
    assert any("no spread" in n for n in out["notes"]) and "more decimals" in out["seeds_needed_note"]


def test_another_test_set_never_makes_a_verdict_more_certain(capsys):
    # docs/statistics.md, other test sets: the binomial terms of two test sets add variance; with the seeds' df (1 here)
    # adding --n-images can only widen the interval (it turned "inconclusive" into "reproduced")
    # 100000: evaluation-server numbers on the paper's own test set (the same set, no binomial term)
    same = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "100000")
    other = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "50000")
    assert same["verdict"] == other["verdict"] == "inconclusive"
    assert other["interval"][0] < same["interval"][0] and other["interval"][1] > same["interval"][1]
    assert other["p"]["reproduced"] > same["p"]["reproduced"]


def test_every_statistical_verdict_says_n_was_fixed_in_advance(capsys):
    # docs/statistics.md, seeds needed: testing after each added seed inflates false "reproduced"
    out = run_json(capsys, "--claim", "t2-1cnn-top5-val", "--values", "18.1,18.3,18.2,18.0,18.4")
    assert "fixed before the results were seen" in out["assumes"]
    cli.main(["verdict", "--claim", "t2-1cnn-top5-val", "--values", "18.1,18.3,18.2,18.0,18.4"])
    assert "assumes: the verdict assumes the number of seeds was fixed" in capsys.readouterr().out


def test_human_output(capsys):
    cli.main(["verdict", "--claim", "towers-specialise", "--values", "1,1,1,1,1"])
    text = capsys.readouterr().out
    assert text.startswith("towers-specialise: inconclusive") and "seeds needed: 11" in text


def test_batch_lines_in_order_with_holm_across_them(tmp_path, capsys):
    lines = [{"claim": "t2-1cnn-top5-val", "values": [18.1, 18.3, 18.2, 18.0, 18.4]},
             {"claim": "lrn-top1", "values": [40.0, 40.5, 39.8], "variant": [41.5, 41.9, 41.1], "paired": True},
             {"claim": "params", "values": [60965224]},
             {"claim": "t1-sift-fv-top1", "values": [45.0]}]
    f = tmp_path / "req.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    cli.main(["verdict", "--batch", str(f)])
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["claim"] for o in out] == [x["claim"] for x in lines]
    assert out[0]["multiplicity"] == {"method": "holm", "family_size": 2}
    assert out[0]["p"]["reproduced_adjusted"] >= out[0]["p"]["reproduced"]
    assert out[2]["verdict"] == "not reproduced"  # 60,965,224 is 61 million at two figures (claims.yaml)
    assert out[3]["verdict"] == "not tested" and out[3]["reason"]
    proc = run_cli("--batch", "-", stdin=f.read_text())
    assert proc.returncode == 0 and [json.loads(x)["claim"] for x in proc.stdout.splitlines()] == \
        [x["claim"] for x in lines]


@pytest.mark.parametrize("args, stdin, words", [
    (["--claim", "t9-nope", "--values", "1,2"], None, "unknown claim 't9-nope'"),
    (["--claim", "t2-1cnn-top5-va", "--values", "1,2"], None, "did you mean t2-1cnn-top5-val"),
    (["--claim", "t2-1cnn-top5-val", "--values", ","], None, "no numbers given"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18.1,abc"], None, "'abc' is not a number"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18.1,18.3", "--variant", "19,19"], None, "takes no variant"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18.1,180"], None, "values must lie in [0, 100]"),
    # negative lists reach the range check (argparse alone says "expected one argument")
    (["--claim", "t2-1cnn-top5-val", "--values", "-5,-6,-7"], None, "values must lie in [0, 100]"),
    (["--claim", "lrn-top1", "--values", "40,41", "--variant", "-1,-2"], None, "values must lie in [0, 100]"),
    (["--claim", "lrn-top1", "--values", "40,41"], None, "give the variant's values too"),
    (["--claim", "dropout-convergence", "--values", "800,-1", "--variant", "400,400"], None, "must be > 0"),
    (["--claim", "lrn-top1", "--values", "40,41", "--variant", "42", "--paired"], None, "paired values need"),
    (["--values", "1,2"], None, "give --claim ID and --values"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18,18.2", "--n-images", "5e4x"], None, "not a whole number"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18,18.2", "--n-images", "0"], None, "positive integer"),
    (["--batch", "-"], '{"claim": "params", "values": [1]}\n{"claim": "lrn-top1"\n', "line 2: not JSON"),
    (["--batch", "-"], '{"claim": "params", "valuez": [1]}\n', "line 1: unknown key 'valuez'"),
    (["--batch", "-"], '{"claim": "lrn-top1", "values": [40, 41]}\n', "line 1: claim lrn-top1 compares"),
    (["--batch", "-"], "\n", "no requests"),
    (["--batch", "/nonexistent/req.jsonl"], None, "batch file not found"),
    # input that used to be decided without a word
    (["--claim", "t2-1cnn-top5-val", "--values", "0.182,0.183,0.181"], None, "looks like a fraction"),
    (["--claim", "lrn-top1", "--values", "40,41", "--variant", "0.41,0.42"], None, "variant: every value is at most 1"),
    (["--claim", "t2-1cnn-top5-val", "--values", "45,,46"], None, "entry 2 of '45,,46' is empty"),
    (["--claim", "t2-1cnn-top5-val", "--values", "18.2,18.3,"], None, "entry 3 of '18.2,18.3,' is empty"),
    (["--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5"], None, "labels are private: give n_images"),
    (["--batch", "-"], '{"claim": "lrn-top1", "values": [40, 41], "variant": [42, 43]}\n'
                       '{"claim": "lrn-top1", "values": [40.5], "variant": [42.5]}\n',
     "line 2: claim lrn-top1 is already requested on line 1"),
    (["--batch", "-"], '{"claim": "lrn-top1", "values": [40, 41], "variant": [42, 43], "paired": "yes"}\n',
     "paired must be true or false"),
])
def test_bad_input_is_one_error_line_and_exit_2(args, stdin, words):
    proc = run_cli(*args, stdin=stdin)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_list_and_params(tmp_path, capsys):
    cli.main(["verdict", "--list"])
    listed = capsys.readouterr().out
    assert all(c.id in listed for c in load_claims())
    import yaml
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["compare"]["multiplicity"] = "none"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out = run_json(capsys, "--claim", "neurons", "--values", "659272", "--params", str(tmp_path / "params.yaml"))
    assert out["verdict"] == "not reproduced" and out["model_check"]["equal"] is True
    assert np.isclose(out["estimate"], 659272)


def test_ablation_arms_are_paired_by_seed_unless_told_otherwise(capsys):
    """arms train on the baseline's seeds, so pairing is the default; --unpaired
    and groups of different sizes are unpaired, and the source says which and why."""
    args = ["--claim", "lrn-top1", "--values", "40.0,40.5,39.8", "--variant", "41.5,41.9,41.1"]
    default = run_json(capsys, *args)
    assert default["paired"] is True and "paired by seed (the default" in default["source"]
    assert run_json(capsys, *args, "--paired")["estimate"] == pytest.approx(default["estimate"])
    unpaired = run_json(capsys, *args, "--unpaired")
    assert unpaired["paired"] is False and unpaired["interval"] != default["interval"]
    uneven = run_json(capsys, "--claim", "lrn-top1", "--values", "40.0,40.5,39.8", "--variant", "41.5,41.9")
    assert uneven["paired"] is False and "groups differ in size" in uneven["source"]
    head = run_json(capsys, "--claim", "t2-1cnn-top5-val", "--values", "18.1,18.3,18.2")
    assert head["paired"] is False
    with pytest.raises(SystemExit):  # argparse: one or the other
        cli.main(["verdict", *args, "--paired", "--unpaired"])


def test_private_test_set_claims_take_the_set_size(capsys):
    """With --n-images, a *-test claim says which set the values come from: the paper's own test set
    (evaluation-server numbers) or val (both binomial terms)."""
    server = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "100000")
    assert server["same_test_set"] is True
    val = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "50000")
    assert val["same_test_set"] is False


def test_small_effects_and_gaps_are_not_mistaken_for_fractions(capsys):
    """Only errors in percent are checked: a ratio, a proportion and an overfitting gap may be <= 1."""
    assert run_json(capsys, "--claim", "towers-specialise", "--values", "1,1,0,1")["verdict"]
    gap = run_json(capsys, "--claim", "crop-flip-overfit", "--values", "0.5,0.7,0.6", "--variant", "8,9,7")
    assert gap["estimate"] == pytest.approx(8.0 - 0.6)
