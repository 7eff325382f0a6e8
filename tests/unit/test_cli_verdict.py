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
from harness.analysis.compare import CompareSettings, build_compare

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
    out = build_compare(results, RunContext("ilsvrc2012", "val", 1000, 5, ("ten_patch",), True), claims,
                        CompareSettings())
    stage = V.record(out["claims"][0])
    for key in ("verdict", "estimate", "interval", "exclusion_interval", "p", "seeds_needed", "tolerance", "n"):
        assert cli_row[key] == stage[key], key


def test_effects_ratios_and_another_test_set(capsys):
    eff = run_json(capsys, "--claim", "overlap-pool-top1", "--values", "40.0,40.2,39.9,40.1,40.0",
                   "--variant", "40.41,40.6,40.32,40.5,40.39", "--paired")
    assert eff["estimate"] == pytest.approx(0.404) and eff["verdict"] == "reproduced" and eff["paired"]
    zero = run_json(capsys, "--claim", "overlap-pool-top1", "--values", "40.0,40.2,39.9,40.1,40.0",
                    "--variant", "40.01,40.2,39.92,40.1,40.0", "--paired")
    assert zero["verdict"] == "not reproduced" and zero["direction"] != "reversed"
    ratio = run_json(capsys, "--claim", "relu-speed", "--values", "300,300,300", "--variant", "1800,1800,1800")
    assert ratio["estimate"] == pytest.approx(6.0) and ratio["verdict"] == "reproduced"  # ratio = variant / paper
    flat = run_json(capsys, "--claim", "dropout-convergence", "--values", "800,800,800", "--variant", "800,800,800")
    assert flat["verdict"] == "not reproduced"
    other = run_json(capsys, "--claim", "t2-5cnn-top5-test", "--values", "16.3,16.5", "--n-images", "50000")
    assert other["same_test_set"] is False  # the test-server number against our val: both binomial terms
    ten = run_json(capsys, "--claim", "ten-patch-top1", "--values", "37.5,37.6,37.4", "--variant", "39.0,39.1,38.9")
    assert ten["paired"] is True and ten["estimate"] == pytest.approx(1.5)  # the same models: always paired


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
    assert out[2]["verdict"] == "reproduced" and out[3]["verdict"] == "not tested" and out[3]["reason"]
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
