"""harness.claims: the claims file is complete and valid, and testability reasons are specific."""

import textwrap

import pytest

from harness.analysis.claims import Claim, ClaimsError, RunContext, check_size_claim, load_claims, why_not_testable

SYNTHETIC = RunContext(dataset="synthetic", split="val", num_classes=20, n_models_available=3,
                       protocols=("center", "ten_patch"), full_paper_model=False)
IMAGENET12 = RunContext(dataset="ilsvrc2012", split="val", num_classes=1000, n_models_available=5,
                        protocols=["center", "ten_patch"], full_paper_model=True)


@pytest.fixture(scope="module")
def claims():
    return {c.id: c for c in load_claims()}


# --------------------------------------------------------------------------- the file


def test_every_headline_number_of_paper_md_is_present(claims):
    # (id, metric, split, value) from PAPER.md section 1, Table 1 / Table 2 / Fall-2009
    expected = [
        ("t1-cnn-top1", "top1_error", "test", 37.5), ("t1-cnn-top5", "top5_error", "test", 17.0),
        ("t1-cnn-1patch-top1", "top1_error", "test", 39.0),
        ("t1-cnn-1patch-top5", "top5_error", "test", 18.3),
        ("t1-sparse-coding-top1", "top1_error", "test", 47.1),
        ("t1-sparse-coding-top5", "top5_error", "test", 28.2),
        ("t1-sift-fv-top1", "top1_error", "test", 45.7), ("t1-sift-fv-top5", "top5_error", "test", 25.7),
        ("t2-1cnn-top1-val", "top1_error", "val", 40.7), ("t2-1cnn-top5-val", "top5_error", "val", 18.2),
        ("t2-5cnn-top1-val", "top1_error", "val", 38.1), ("t2-5cnn-top5-val", "top5_error", "val", 16.4),
        ("t2-5cnn-top5-test", "top5_error", "test", 16.4),
        ("t2-1cnn-pre-top1-val", "top1_error", "val", 39.0),
        ("t2-1cnn-pre-top5-val", "top5_error", "val", 16.6),
        ("t2-7cnn-pre-top1-val", "top1_error", "val", 36.7),
        ("t2-7cnn-pre-top5-val", "top5_error", "val", 15.4),
        ("t2-7cnn-pre-top5-test", "top5_error", "test", 15.3),
        ("t2-sift-fv-top5-test", "top5_error", "test", 26.2),
        ("fall2009-top1", "top1_error", "test", 67.4), ("fall2009-top5", "top5_error", "test", 40.9),
    ]
    for cid, metric, split, value in expected:
        c = claims[cid]
        assert (c.kind, c.metric, c.split, c.value) == ("headline", metric, split, value), cid
    assert claims["t2-5cnn-top1-val"].n_models == 5
    assert (claims["t2-7cnn-pre-top5-test"].n_models, claims["t2-7cnn-pre-top5-test"].n_pretrained) == (7, 2)
    assert claims["t2-1cnn-pre-top1-val"].pretraining == "fall2011"
    assert claims["t1-cnn-1patch-top1"].protocol == "center"
    assert claims["t1-cnn-top5"].protocol == "ten_patch"


def test_design_and_size_claims_are_present(claims):
    for cid in ("relu-speed", "two-gpu-top1", "two-gpu-top5", "lrn-top1", "lrn-top5", "lrn-cifar10",
                "overlap-pool-top1", "overlap-pool-top5", "pca-colour-top1", "dropout-convergence",
                "depth-top1", "ten-patch-top1", "ten-patch-top5"):
        assert claims[cid].kind in ("ablation", "convergence"), cid
    assert (claims["two-gpu-top1"].value, claims["two-gpu-top5"].value) == (1.7, 1.2)
    assert (claims["lrn-top1"].value, claims["lrn-top5"].value) == (1.4, 1.2)
    lrn_c = claims["lrn-cifar10"]
    assert (lrn_c.dataset, lrn_c.baseline_value, lrn_c.baseline_value - lrn_c.value) == ("cifar10", 13.0, 11.0)
    assert (claims["overlap-pool-top1"].value, claims["overlap-pool-top5"].value) == (0.4, 0.3)
    assert claims["pca-colour-top1"].qualifier == "at_least"
    assert claims["relu-speed"].value == 6.0 and claims["dropout-convergence"].value == 2.0
    tp1, tp5 = claims["ten-patch-top1"], claims["ten-patch-top5"]
    assert tp1.baseline_value - tp1.value == claims["t1-cnn-top1"].value
    assert tp5.baseline_value - tp5.value == pytest.approx(claims["t1-cnn-top5"].value)
    assert claims["epochs"].value == 90
    assert claims["throughput"].range == (210.0, 250.0)


def test_size_claims_match_the_architecture_arithmetic(claims):
    # Independent of the yaml: PAPER.md 3's layer table, weights + biases per layer,
    # conv2/4/5 grouped (each tower sees half the input channels).
    conv = [(11 * 11 * 3, 96), (5 * 5 * 48, 256), (3 * 3 * 256, 384), (3 * 3 * 192, 384), (3 * 3 * 192, 256)]
    fc = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    params = sum(fan_in * out + out for fan_in, out in conv + fc)
    assert claims["params"].value == params == 60_965_224
    neurons = 55 * 55 * 96 + 27 * 27 * 256 + 13 * 13 * 384 * 2 + 13 * 13 * 256 + 4096 + 4096 + 1000
    assert claims["neurons"].value == neurons == 659_272


def test_test_set_sizes_follow_the_dataset(claims):
    sizes = {("ilsvrc2010", "test"): 150_000, ("ilsvrc2012", "val"): 50_000, ("ilsvrc2012", "test"): 100_000}
    for c in claims.values():
        if c.unit == "%" and (c.dataset, c.split) in sizes:
            assert c.n_images == sizes[(c.dataset, c.split)], c.id
        if c.unit == "%":
            assert 0 <= c.value <= 100


def test_claim_objects_are_frozen(claims):
    with pytest.raises(AttributeError):
        claims["t1-cnn-top5"].value = 1.0


# --------------------------------------------------------------------------- validation


def _write(tmp_path, body):
    path = tmp_path / "claims.yaml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
claims:
  - id: x1
    kind: headline
    dataset: ilsvrc2012
    split: val
    n_models: 1
    protocol: center
    pretraining: none
    metric: top1_error
    value: 40.0
    unit: "%"
    paper_section: "6"
"""


def test_minimal_file_loads_with_defaults(tmp_path):
    (c,) = load_claims(_write(tmp_path, GOOD))
    assert isinstance(c, Claim)
    assert (c.qualifier, c.n_pretrained, c.n_images, c.needs, c.note) == ("exact", 0, None, None, "")


@pytest.mark.parametrize("old,new,field", [
    ("value: 40.0", "value: forty", "value"),
    ("value: 40.0", "value: 140.0", "value"),
    ("kind: headline", "kind: rumour", "kind"),
    ("dataset: ilsvrc2012", "dataset: mnist", "dataset"),
    ("protocol: center", "protocol: five_patch", "protocol"),
    ("n_models: 1", "n_models: 0", "n_models"),
    ("n_models: 1", "n_models: yes", "n_models"),
    ("    unit: \"%\"\n", "", "unit"),
    ("    paper_section: \"6\"\n", "    paper_section: \"6\"\n    colour: red\n", "colour"),
    ("    paper_section: \"6\"\n", "    paper_section: \"6\"\n    range: [1, 2]\n", "range"),
    ("    paper_section: \"6\"\n", "    paper_section: \"6\"\n    n_images: -5\n", "n_images"),
])
def test_bad_entries_name_the_claim_and_field(tmp_path, old, new, field):
    body = GOOD.replace(old, new)
    assert body != GOOD
    with pytest.raises(ClaimsError, match=rf"claim 'x1': field '{field}'"):
        load_claims(_write(tmp_path, body))


def test_duplicate_ids_and_bad_top_level_are_rejected(tmp_path):
    dup = GOOD + GOOD.split("claims:\n", 1)[1]
    with pytest.raises(ClaimsError, match="'x1'.*duplicated"):
        load_claims(_write(tmp_path, dup))
    with pytest.raises(ClaimsError, match="list under 'claims'"):
        load_claims(_write(tmp_path, "claims: {}\n"))


def test_range_qualifier_needs_a_valid_range(tmp_path):
    body = GOOD.replace('unit: "%"', 'unit: "images/s"\n    qualifier: range\n    range: [250, 210]')
    with pytest.raises(ClaimsError, match="field 'range'"):
        load_claims(_write(tmp_path, body))


# --------------------------------------------------------------------------- testability


def test_synthetic_run_tests_no_paper_number(claims):
    # Parameter and neuron counts are properties of the architecture as built, checked on
    # the paper network whatever the profile; every other claim needs ImageNet.
    architectural = {"params", "neurons"}
    for c in claims.values():
        assert (why_not_testable(c, SYNTHETIC) is None) == (c.id in architectural), c.id
    reason = why_not_testable(claims["t1-cnn-top5"], SYNTHETIC)
    assert reason.startswith("17.0% is measured on the ILSVRC-2010 test set; "
                             "this run uses the synthetic dataset")
    assert "scales it down" in reason


def test_imagenet_2012_full_run_tests_exactly_the_2012_val_targets(claims):
    testable = {c.id for c in claims.values() if c.kind == "headline" and why_not_testable(c, IMAGENET12) is None}
    assert testable == {"t2-1cnn-top1-val", "t2-1cnn-top5-val", "t2-5cnn-top1-val", "t2-5cnn-top5-val"}
    assert "this run evaluates the val split" in why_not_testable(claims["t2-5cnn-top5-test"], IMAGENET12)
    assert "ILSVRC-2010 test set; this run uses the ILSVRC-2012 dataset" in why_not_testable(
        claims["t1-cnn-top5"], IMAGENET12)


def test_reasons_name_the_missing_ingredient(claims):
    three = RunContext("ilsvrc2012", "val", 1000, 3, ("ten_patch",), True)
    assert "needs 5 models averaged; this run has 3" in why_not_testable(claims["t2-5cnn-top5-val"], three)
    assert "needs 7 models averaged incl. 2 pre-trained on ImageNet Fall-2011" in why_not_testable(
        claims["t2-7cnn-pre-top5-val"], three)
    assert "pre-trained on ImageNet Fall-2011" in why_not_testable(claims["t2-1cnn-pre-top5-val"], three)
    centre_only = RunContext("ilsvrc2010", "test", 1000, 1, ("center",), True)
    assert why_not_testable(claims["t1-cnn-1patch-top5"], centre_only) is None
    assert "needs 10-patch evaluation; this run evaluated centre-crop" in why_not_testable(
        claims["t1-cnn-top5"], centre_only)
    subset = RunContext("ilsvrc2012", "val", 100, 5, ("ten_patch",), True)
    assert "needs all 1000 classes; this run evaluates 100" in why_not_testable(claims["t2-1cnn-top5-val"], subset)
    relu = why_not_testable(claims["relu-speed"], IMAGENET12)
    assert "relu" in relu.lower() and "tanh" in relu and "did not train" in relu
    assert "ablation group" in why_not_testable(claims["lrn-top1"], IMAGENET12)
    assert "competing method" in why_not_testable(claims["t1-sparse-coding-top1"], IMAGENET12)


def test_pretrained_run_does_not_test_from_scratch_claims(claims):
    pre = RunContext("ilsvrc2012", "val", 1000, 5, ("ten_patch",), True, pretraining="fall2011")
    assert "uses no pre-training" in why_not_testable(claims["t2-1cnn-top5-val"], pre)


def test_run_context_validation():
    assert IMAGENET12.protocols == ("center", "ten_patch")  # list stored as tuple
    with pytest.raises(ValueError):
        RunContext("synthetic", "val", 20, 3, ("center",), False, pretraining="jft")
    with pytest.raises(ValueError):
        RunContext("synthetic", "val", 0, 3, ("center",), False)


# --------------------------------------------------------------------------- size claims


def test_size_claims(claims):
    assert why_not_testable(claims["params"], IMAGENET12) is None
    assert why_not_testable(claims["params"], SYNTHETIC) is None  # measured on the paper net
    assert "scales the network down" in why_not_testable(claims["epochs"], SYNTHETIC)
    ok = check_size_claim(claims["params"], {"n_parameters": 60_965_224})
    assert ok == {"tested": True, "measured": 60_965_224.0, "match": True, "reason": None}
    assert check_size_claim(claims["params"], {"n_parameters": 60_965_225})["match"] is False
    assert check_size_claim(claims["params"], {"n_parameters": 62_378_344})["match"] is False  # ungrouped
    missing = check_size_claim(claims["params"], {})
    assert missing["tested"] is False and "n_parameters" in missing["reason"]
    assert check_size_claim(claims["epochs"], {"epochs": 85})["match"] is True   # "roughly 90"
    assert check_size_claim(claims["epochs"], {"epochs": 60})["match"] is False
    hw = check_size_claim(claims["throughput"], {"images_per_second": 230})
    assert hw["tested"] is False and "GTX 580" in hw["reason"]
    with pytest.raises(ValueError):
        check_size_claim(claims["t1-cnn-top5"], {})
