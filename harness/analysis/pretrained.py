"""The claims of paper 6 about CNNs pre-trained on ImageNet Fall 2011 (claims.yaml entries with
`pretraining: fall2011`): their evidence from the fine-tuned seeds and the mixed ensembles of the
ensemble_finetune stage, through the same verdict rules as every other claim (verdict.assess).

Decided only when the pre-training data and network are the paper's; otherwise "not tested" with
each missing piece named, and the measured value shown (docs/paper.md, "The Fall-2011 path").
"""

from __future__ import annotations

from dataclasses import replace

from harness.analysis import verdict
from harness.analysis.claims import Claim, RunContext, testability

# The Fall 2011 release as image-net.org distributed it: 21,841 synsets (paper 6 rounds to "22K
# categories"), about 14.2M images ("15M"). Release facts, not claims (docs/paper.md).
FALL2011_SYNSETS = 21_841
FALL2011_MIN_IMAGES = 14_000_000


def pretraining_gaps(facts: dict) -> list[str]:
    """What the pre-training data lacks against paper 6's "entire ImageNet Fall 2011 release"."""
    gaps = []
    if facts.get("release") != "fall2011":
        gaps.append(f"the pre-training data is declared release {facts.get('release')!r} "
                    "(data.fall2011.release), not the Fall 2011 release")
    if facts.get("n_classes") != FALL2011_SYNSETS:
        gaps.append(f"it has {facts.get('n_classes'):,} synsets, the entire release {FALL2011_SYNSETS:,}")
    n = sum((facts.get("counts") or {}).values())
    if n < FALL2011_MIN_IMAGES:
        gaps.append(f"it has {n:,} images, the entire release about 14.2M")
    if facts.get("split") != "holdout":
        gaps.append(f"split {facts.get('split')!r} trains on half of it (the Fall-2009 protocol); "
                    "pre-training uses all but a holdout (data.fall2011.split: holdout)")
    if not facts.get("excluded_against"):
        gaps.append("ILSVRC-2012 validation duplicates were not excluded (data.fall2011.exclude_root)")
    return gaps


def _mix(claim: Claim) -> tuple[int, int]:
    k = claim.n_models or 1
    kp = claim.n_pretrained or k
    return k - kp, kp


def pretrained_context(claim: Claim, context: RunContext, pre: dict) -> RunContext:
    """The run as this claim sees it: pre-trained, with the models usable for its mix."""
    kb, kp = _mix(claim)
    usable = min(len(pre["base_seeds"]), kb) + min(len(pre["pretrained_seeds"]), kp)
    return replace(context, pretraining="fall2011", n_models_available=usable,
                   full_paper_model=bool(pre.get("full_paper_model")))


def evidence(claim: Claim, pre: dict, context: RunContext) -> verdict.Evidence | tuple[str, str]:
    kb, kp = _mix(claim)
    runs = pre["finetuned"]
    if not runs or claim.protocol not in runs[0]["protocols"]:
        return "not measured", f"the fine-tuned CNNs were not evaluated with the {claim.protocol} protocol"
    n_images = int(runs[0]["n_images"])
    singles = tuple(float(r["protocols"][claim.protocol][claim.metric]) for r in runs)
    same = claim.split == context.split
    if kb == 0 and kp == 1:
        return verdict.Evidence(singles, n_images=n_images, same_test_set=same,
                                source=f"{len(singles)} fine-tuned seeds {pre['pretrained_seeds']}")
    mix = (pre["protocols"].get(claim.protocol) or {}).get(f"{kb}+{kp}")
    if not mix or not mix["groups"]:
        return "too few seeds", (f"needs {kb} ILSVRC-only and {kp} pre-trained CNNs per ensemble; this run has "
                                 f"{len(pre['base_seeds'])} and {len(pre['pretrained_seeds'])}")
    base_singles = tuple(float(v) for v in pre.get("base_singles", {}).get(claim.protocol, {}).get(claim.metric, ()))
    return verdict.Evidence(tuple(mix[claim.metric]), n_images=n_images, same_test_set=same,
                            singles=base_singles + singles,
                            source=f"{len(mix['groups'])} disjoint {kb}+{kp} ensemble(s): {mix['groups']}")


def assessment(claim: Claim, context: RunContext, pre: dict, settings) -> verdict.Assessment:
    """The claim's row (marked pretraining fall2011 for the report's "Pre-trained CNNs" section)."""
    out = _assessment(claim, context, pre, settings)
    out.row["pretraining"] = claim.pretraining
    return out


def _assessment(claim: Claim, context: RunContext, pre: dict, settings) -> verdict.Assessment:
    """A verdict when the run is the paper's, else why not, with the measurement."""
    ctx = pretrained_context(claim, context, pre)
    found = testability(claim, ctx)
    gaps = pretraining_gaps(pre["pretraining"])
    if found is None and gaps:
        found = ("other data", "pre-training: " + "; ".join(gaps))
    ev = evidence(claim, pre, ctx)
    if found is None:
        return verdict.not_tested(claim, *ev) if isinstance(ev, tuple) else verdict.assess(claim, ev, settings)
    extra = _measured(claim, ev, settings)
    if gaps and not found[1].startswith("pre-training: "):  # named even when another reason decides
        extra["pretraining_gaps"] = gaps
    return verdict.not_tested(claim, *found, **extra)


def _measured(claim, ev, settings) -> dict:
    """A not-tested row's value as measured on this run ({} when there is none to show)."""
    if isinstance(ev, tuple):
        return {}
    try:
        row = verdict.assess(claim, ev, settings).row
    except verdict.EvidenceError:
        return {}
    return {"measured_on_run": {k: row.get(k) for k in ("estimate", "lo", "hi", "n", "source")}}


# --------------------------------------------------------------------------- Fall 2009 (paper 6)

# ImageNet Fall 2009 as paper 6 describes it: 10,184 categories, 8.9 million images, half for
# training and half for test. The six-conv net pre-trained on it is evaluated on the held-out half.
FALL2009_CLASSES = 10_184
FALL2009_MIN_IMAGES = 8_500_000  # "8.9 million", less unreadable files


def fall2009_gaps(facts: dict) -> list[str]:
    """What the pre-training data lacks against paper 6's Fall-2009 experiment, each named."""
    gaps = []
    n_classes = facts.get("n_classes")
    if n_classes != FALL2009_CLASSES:
        gaps.append(f"{n_classes:,} classes, not Fall-2009's {FALL2009_CLASSES:,}")
    if facts.get("split") != "half":
        gaps.append(f"split {facts.get('split')!r}, not Fall-2009's half for training, half for test "
                    "(data.fall2011.split: half)")
    if facts.get("release") != "fall2009":
        gaps.append(f"release declared {facts.get('release')!r}, not 'fall2009' (data.fall2011.release)")
    n = sum((facts.get("counts") or {}).values())
    if n < FALL2009_MIN_IMAGES:
        gaps.append(f"{n:,} images, not Fall-2009's 8.9M")
    return gaps


def fall2009_protocol(evaluations: list[dict]) -> str | None:
    """The protocol the Fall-2009 claims read: the paper states none for them (docs/paper.md); reading:
    its test-time procedure of section 4.1 (ten_patch) when evaluated, else the centre crop."""
    protos = evaluations[0]["protocols"] if evaluations else {}
    return next((p for p in ("ten_patch", "center") if p in protos), None)


def fall2009_evidence(claim: Claim, evaluations: list[dict]) -> verdict.Evidence | tuple[str, str]:
    """The pre-trained six-conv CNNs, one value per seed, on the held-out half of their own data."""
    proto = fall2009_protocol(evaluations)
    if proto is None:
        return "not measured", "the pre-trained CNNs were not evaluated on their held-out data (evaluate_pretrain)"
    values = tuple(float(r["protocols"][proto][claim.metric]) for r in evaluations)
    seeds = [r["seed"] for r in evaluations]
    # our half is not the paper's: both test sets' binomial terms (docs/statistics.md)
    return verdict.Evidence(values, n_images=int(evaluations[0]["n_images"]), same_test_set=False,
                            source=f"{len(values)} pre-trained six-conv seeds {seeds}, {proto}, held-out half")


def fall2009_assessment(claim: Claim, context: RunContext, pre: dict, settings) -> verdict.Assessment:
    """fall2009-top1/top5: decided when the pre-training data is Fall 2009 split half/half and the
    six-conv net is the paper's; else "not tested" naming what differs, with the measured value."""
    evaluations = pre.get("pretrain_evaluated") or []
    facts = pre["pretraining"]
    ctx = replace(context, dataset="fall2009", split="test", num_classes=facts.get("n_classes") or 1,
                  n_models_available=len(evaluations), pretraining="none",
                  full_paper_model=bool(pre.get("full_paper_model")))
    found = testability(claim, ctx)
    gaps = fall2009_gaps(facts)
    if gaps:
        found = ("other data", "pre-training data: " + "; ".join(gaps)
                 + (f"; {found[1]}" if found is not None and found[0] != "other data" else ""))
    ev = fall2009_evidence(claim, evaluations)
    if found is None:
        out = verdict.not_tested(claim, *ev) if isinstance(ev, tuple) else verdict.assess(claim, ev, settings)
    else:
        out = verdict.not_tested(claim, *found, **_measured(claim, ev, settings))
    out.row["pretraining"] = "fall2009"
    return out


def fall2009_off(claim: Claim, context: RunContext) -> verdict.Assessment:
    """pretrain.enabled []: the run has no pre-trained six-conv CNN to decide a Fall-2009 claim with."""
    found = testability(claim, context) or ("other data", "")
    out = verdict.not_tested(claim, found[0], found[1] + "; needs the six-conv net pre-trained on ImageNet Fall 2009 "
                             "(pretrain.enabled with data.fall2011.release fall2009, split half; docs/paper.md)")
    out.row["pretraining"] = "fall2009"
    return out
