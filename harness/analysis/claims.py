"""The paper's claims as data (claims.yaml) and the rules for when a run can test one.

House rule 4: the paper's numbers live only in claims.yaml; this module loads and
validates them, and decides, with a human-readable reason, which claims a given run can
test. No statistics here (see stats.py / compare.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Claim",
    "ClaimsError",
    "RunContext",
    "load_claims",
    "why_not_testable",
    "check_size_claim",
    "matching_arm",
    "DEFAULT_CLAIMS_PATH",
    "TESTABLE_METRICS",
]

DEFAULT_CLAIMS_PATH = Path(__file__).with_name("claims.yaml")

KINDS = ("headline", "ablation", "convergence", "size")
DATASETS = ("ilsvrc2010", "ilsvrc2012", "fall2009", "cifar10", "imagenet-unspecified", "any")
SPLITS = ("test", "val", "train", "unspecified", "none")
PROTOCOLS = ("ten_patch", "center", "none")
PRETRAINING = ("none", "fall2011")
QUALIFIERS = ("exact", "about", "at_least", "at_most", "range")
# Metrics compare.py can compute from per-seed evaluation results.
TESTABLE_METRICS = ("top1_error", "top5_error")
# "about" / "roughly" in the paper, read as within 10% (used for size/cost claims only).
ABOUT_REL_TOL = 0.10

_DATASET_NAMES = {
    "ilsvrc2010": "ILSVRC-2010",
    "ilsvrc2012": "ILSVRC-2012",
    "fall2009": "ImageNet Fall-2009",
    "cifar10": "CIFAR-10",
    "imagenet-unspecified": "ImageNet (split not stated)",
    "synthetic": "synthetic",
    "imagefolder": "ImageFolder",
}
_PROTOCOL_NAMES = {"ten_patch": "10-patch", "center": "centre-crop"}
_PRETRAINING_NAMES = {"fall2011": "ImageNet Fall-2011"}


class ClaimsError(ValueError):
    """A claims file entry is malformed; the message names the claim id and the field."""


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the paper (fields documented in claims.yaml)."""

    id: str
    kind: str
    dataset: str
    split: str
    n_models: int
    protocol: str
    pretraining: str
    metric: str
    value: float
    unit: str
    paper_section: str
    n_pretrained: int = 0
    qualifier: str = "exact"
    range: tuple[float, float] | None = None
    baseline_value: float | None = None
    n_images: int | None = None
    num_classes: int | None = None
    needs: str | None = None
    # ablation/convergence: ((dotted key, value), ...) of the group without the design choice
    arm: tuple[tuple[str, Any], ...] | None = None
    contrast: str | None = None
    faster: str | None = None  # convergence: "baseline" or "arm" converges faster per the paper
    note: str = ""

    def describe_value(self) -> str:
        """The claimed number as a reader would write it, e.g. '17.0%' or '60965224 count'."""
        if self.unit == "%":
            return f"{self.value:.1f}%"
        if self.unit == "pp":
            return f"{self.value:.1f} pp"
        return f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class RunContext:
    """What the run being compared actually did (built by the compare stage from config).

    dataset: "synthetic", "imagefolder", "cifar10", "ilsvrc2012", "ilsvrc2010", ...
    split: the split evaluated ("val", "test"); num_classes: classes evaluated;
    n_models_available: trained seeds available for ensembles; protocols: eval protocols
    run ("center", "ten_patch"); full_paper_model: False when the profile scales the
    network down; pretraining: "none" or "fall2011".
    """

    dataset: str
    split: str
    num_classes: int
    n_models_available: int
    protocols: tuple[str, ...]
    full_paper_model: bool
    pretraining: str = "none"
    # ablation arms this run trained: ((name, ((dotted key, value), ...)), ...)
    arms: tuple = ()

    def __post_init__(self) -> None:
        """Validate, and store protocols as a tuple so the object stays hashable."""
        object.__setattr__(self, "protocols", tuple(self.protocols))
        object.__setattr__(self, "arms", tuple((n, tuple(map(tuple, o))) for n, o in self.arms))
        if self.n_models_available < 0 or self.num_classes < 1:
            raise ValueError(f"bad RunContext counts: n_models_available={self.n_models_available}, "
                             f"num_classes={self.num_classes}")
        if self.pretraining not in PRETRAINING:
            raise ValueError(f"RunContext.pretraining must be one of {PRETRAINING}, got {self.pretraining!r}")


# --------------------------------------------------------------------------- loading


_REQUIRED = ("id", "kind", "dataset", "split", "n_models", "protocol", "pretraining",
             "metric", "value", "unit", "paper_section")
_CHOICES = {"kind": KINDS, "dataset": DATASETS, "split": SPLITS, "protocol": PROTOCOLS,
            "pretraining": PRETRAINING, "qualifier": QUALIFIERS}


def _fail(cid: Any, name: str, msg: str) -> ClaimsError:
    """Error naming the claim and the field."""
    return ClaimsError(f"claim {cid!r}: field {name!r} {msg}")


def _is_number(x: Any) -> bool:
    """A finite int/float (bools excluded: YAML 'yes' must not pass as 1)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_int(cid: str, name: str, x: Any, minimum: int, optional: bool = False) -> None:
    """Integer field >= minimum (None allowed when optional)."""
    if x is None and optional:
        return
    if not isinstance(x, int) or isinstance(x, bool) or x < minimum:
        raise _fail(cid, name, f"must be an integer >= {minimum}, got {x!r}")


def _parse_claim(raw: Any, index: int) -> Claim:
    """Validate one YAML mapping and build a Claim."""
    if not isinstance(raw, dict):
        raise ClaimsError(f"claim #{index}: must be a mapping, got {type(raw).__name__}")
    cid = raw.get("id", f"#{index}")
    known = {f.name for f in fields(Claim)}
    for name in raw:
        if name not in known:
            raise _fail(cid, name, f"is not a known field (known: {', '.join(sorted(known))})")
    for name in _REQUIRED:
        if raw.get(name) is None:
            raise _fail(cid, name, "is missing")
    for name in ("id", "metric", "unit", "paper_section"):
        if not isinstance(raw[name], str) or not raw[name].strip():
            raise _fail(cid, name, f"must be a non-empty string, got {raw[name]!r}")
    for name, choices in _CHOICES.items():
        if name in raw and raw[name] not in choices:
            raise _fail(cid, name, f"must be one of {choices}, got {raw[name]!r}")
    for name in ("value", "baseline_value"):
        if raw.get(name) is not None and not _is_number(raw[name]):
            raise _fail(cid, name, f"must be a number, got {raw[name]!r}")
    _check_int(cid, "n_models", raw["n_models"], 1)
    _check_int(cid, "n_pretrained", raw.get("n_pretrained", 0), 0)
    _check_int(cid, "n_images", raw.get("n_images"), 1, optional=True)
    _check_int(cid, "num_classes", raw.get("num_classes"), 1, optional=True)
    if raw.get("n_pretrained", 0) > raw["n_models"]:
        raise _fail(cid, "n_pretrained", f"exceeds n_models ({raw['n_models']})")
    if raw["unit"] == "%" and not 0 <= raw["value"] <= 100:
        raise _fail(cid, "value", f"is a percentage and must be in [0, 100], got {raw['value']}")
    for name in ("needs", "note", "contrast"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise _fail(cid, name, f"must be a string, got {raw[name]!r}")
    rng = _parse_range(cid, raw)
    values = {k: v for k, v in raw.items() if k != "range"}
    values["arm"] = _parse_arm(cid, raw)
    values["value"] = float(raw["value"])
    if raw.get("baseline_value") is not None:
        values["baseline_value"] = float(raw["baseline_value"])
    return Claim(**values, range=rng)


def _parse_arm(cid: str, raw: dict) -> tuple[tuple[str, Any], ...] | None:
    """`arm: {model.lrn: none}` on ablation/convergence claims; `faster` on convergence ones."""
    arm = raw.get("arm")
    if arm is None:
        if raw.get("faster") is not None or raw.get("contrast") is not None:
            raise _fail(cid, "arm", "is missing (contrast/faster describe an arm)")
        return None
    if raw["kind"] not in ("ablation", "convergence"):
        raise _fail(cid, "arm", "is only allowed on ablation and convergence claims")
    if (not isinstance(arm, dict) or not arm
            or not all(isinstance(k, str) and k.split(".")[0] in ("model", "train") and "." in k for k in arm)):
        raise _fail(cid, "arm", f"must map model.*/train.* keys to values, got {arm!r}")
    if raw["kind"] == "convergence" and raw.get("faster") not in ("baseline", "arm"):
        raise _fail(cid, "faster", f"must be 'baseline' or 'arm' on a convergence claim, got {raw.get('faster')!r}")
    if raw["kind"] == "ablation" and raw.get("faster") is not None:
        raise _fail(cid, "faster", "is only allowed on convergence claims")
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in arm.items())


def matching_arm(claim: Claim, arms) -> str | None:
    """The first trained arm whose overrides include every value of claim.arm, else None.

    arms: ((name, ((dotted key, value), ...)), ...). Numbers compare by value (0 == 0.0).
    An arm may change more than the claim names (e.g. also the lr); compare.py reports
    its full overrides beside the result.
    """
    if not claim.arm:
        return None
    for name, overrides in arms:
        have = dict(overrides)
        if all(k in have and _same(have[k], v) for k, v in claim.arm):
            return name
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _describe_arm(claim: Claim) -> str:
    return ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in claim.arm)


def _parse_range(cid: str, raw: dict) -> tuple[float, float] | None:
    """`range: [low, high]` is required exactly when qualifier is 'range'."""
    rng = raw.get("range")
    if raw.get("qualifier") != "range":
        if rng is not None:
            raise _fail(cid, "range", "is only allowed with qualifier 'range'")
        return None
    if (not isinstance(rng, list) or len(rng) != 2 or not all(_is_number(x) for x in rng)
            or rng[0] > rng[1]):
        raise _fail(cid, "range", f"must be [low, high] with low <= high, got {rng!r}")
    return float(rng[0]), float(rng[1])


def load_claims(path: str | Path | None = None) -> tuple[Claim, ...]:
    """Load and validate the claims file (default: claims.yaml next to this module).

    Raises ClaimsError naming the claim id and field on any malformed entry, an unknown
    field, or a duplicate id.
    """
    path = Path(path) if path is not None else DEFAULT_CLAIMS_PATH
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        raise ClaimsError(f"{path}: expected a mapping with a list under 'claims'")
    claims = tuple(_parse_claim(raw, i) for i, raw in enumerate(doc["claims"]))
    seen: set[str] = set()
    for claim in claims:
        if claim.id in seen:
            raise _fail(claim.id, "id", "is duplicated")
        seen.add(claim.id)
    return claims


# --------------------------------------------------------------------------- testability


def _name(dataset: str) -> str:
    """Display name of a dataset key."""
    return _DATASET_NAMES.get(dataset, dataset)


def _data_reasons(claim: Claim, run: RunContext) -> list[str]:
    """Dataset, split and class-count mismatches."""
    where = f"{claim.describe_value()} is measured on the {_name(claim.dataset)} {claim.split} set"
    if claim.dataset != run.dataset:
        return [f"{where}; this run uses the {_name(run.dataset)} dataset"]
    reasons = []
    if claim.split != run.split:
        reasons.append(f"{where}; this run evaluates the {run.split} split")
    if claim.num_classes is not None and claim.num_classes != run.num_classes:
        reasons.append(f"needs all {claim.num_classes} classes; this run evaluates {run.num_classes}")
    return reasons


def _model_reasons(claim: Claim, run: RunContext) -> list[str]:
    """Protocol, ensemble size, pre-training and network-size mismatches."""
    reasons = []
    if claim.protocol not in run.protocols:
        ran = ", ".join(_PROTOCOL_NAMES.get(p, p) for p in run.protocols) or "no protocol"
        reasons.append(f"needs {_PROTOCOL_NAMES[claim.protocol]} evaluation; this run evaluated {ran}")
    pre = _PRETRAINING_NAMES.get(claim.pretraining, claim.pretraining)
    if claim.n_models > run.n_models_available:
        what = f"needs {claim.n_models} models" + (" averaged" if claim.n_models > 1 else "")
        if claim.n_pretrained:
            what += f" incl. {claim.n_pretrained} pre-trained on {pre}"
        reasons.append(f"{what}; this run has {run.n_models_available}")
    if claim.pretraining != run.pretraining:
        if claim.pretraining == "none":
            reasons.append("the paper's number uses no pre-training; this run was pre-trained "
                           f"on {_PRETRAINING_NAMES.get(run.pretraining, run.pretraining)}")
        elif claim.n_models <= run.n_models_available:
            k = claim.n_pretrained or claim.n_models
            reasons.append(f"needs {k} model{'s' if k > 1 else ''} pre-trained on {pre}; "
                           "this run has none")
    if not run.full_paper_model:
        reasons.append("needs the full paper network; this run's profile scales it down")
    return reasons


def why_not_testable(claim: Claim, run: RunContext) -> str | None:
    """None when this run can test the claim, else a specific, human-readable reason.

    - headline: testable only when dataset, split, class count, protocol, ensemble size
      (n_models <= available), pre-training all match and the full paper network ran;
      claims with `needs` (competing methods, pre-trained 6-conv nets) never are.
    - ablation / convergence: testable when an arm matching claim.arm was trained
      (RunContext.arms), nothing in `needs` is missing, the data match (ImageNet of either
      year for "imagenet-unspecified") and the full paper network ran; otherwise the reason
      names what is missing, e.g. the arm to enable.
    - size: testable when the full network ran and nothing hardware-specific is needed;
      the actual check is check_size_claim.
    Several reasons are joined with "; ".
    """
    reasons = [f"needs {claim.needs}"] if claim.needs else []
    if claim.kind in ("ablation", "convergence"):
        return _ablation_reason(claim, run, reasons)
    if claim.kind == "size":
        # Parameter and neuron counts are properties of the paper architecture as built by
        # harness/model/alexnet.py, measured on it whatever the run's profile.
        architectural = claim.metric in ("n_parameters", "n_neurons")
        if not reasons and not run.full_paper_model and not architectural:
            reasons.append(f"this run's profile scales the network down, so its {claim.metric} "
                           "differs from the paper's by design")
        return "; ".join(reasons) or None
    reasons += _data_reasons(claim, run)
    if claim.protocol != "none":
        # protocol "none": a competing method or an unstated protocol; model/ensemble
        # requirements of OUR network would only confuse the reason.
        reasons += _model_reasons(claim, run)
    if not claim.needs and claim.metric not in TESTABLE_METRICS:
        reasons.append(f"the compare stage does not compute {claim.metric}")
    return "; ".join(reasons) or None


# The paper's ablations were measured on "ImageNet" without saying which release/split.
_IMAGENET = ("ilsvrc2010", "ilsvrc2012")


def _ablation_reason(claim: Claim, run: RunContext, reasons: list[str]) -> str | None:
    """Ablation/convergence claims: testable when a matching arm ran on the claim's data."""
    if claim.arm is None:
        if not reasons:
            reasons.append(f"needs an {claim.kind} group for '{claim.id}' that this run did not train")
        return "; ".join(reasons)
    if matching_arm(claim, run.arms) is None:
        what = claim.contrast or _describe_arm(claim)
        reasons.append(f"needs {'an' if claim.kind == 'ablation' else 'a'} {claim.kind} group ({what}) "
                       "that this run did not train: add an arm "
                       f"with {{{_describe_arm(claim)}}} to ablations.enabled")
        return "; ".join(reasons)
    if reasons:
        return "; ".join(reasons)
    same_data = (run.dataset == claim.dataset
                 or (claim.dataset == "imagenet-unspecified" and run.dataset in _IMAGENET))
    where = f"{claim.describe_value()} is measured on {_name(claim.dataset)}"
    if not same_data:
        reasons.append(f"{where}; this run uses the {_name(run.dataset)} dataset")
    elif claim.split not in ("unspecified", "train") and claim.split != run.split:
        reasons.append(f"{where} {claim.split}; this run evaluates the {run.split} split")
    if same_data and claim.num_classes is not None and claim.num_classes != run.num_classes:
        reasons.append(f"needs all {claim.num_classes} classes; this run evaluates {run.num_classes}")
    if not run.full_paper_model:
        reasons.append("needs the full paper network; this run's profile scales it down")
    return "; ".join(reasons) or None


def check_size_claim(claim: Claim, measured: dict[str, float]) -> dict:
    """Check a size/cost claim against measured values keyed by metric name.

    Returns {tested, measured, match, reason}. exact: equality (the parameter count of
    the grouped two-tower net must be 60,965,224 to the unit); about: within 10%;
    range / at_least / at_most: as named. A claim with `needs` or a metric that was not
    measured is not tested (match None, reason says why).
    """
    if claim.kind != "size":
        raise ValueError(f"claim {claim.id!r} is a {claim.kind} claim, not a size claim")
    if claim.needs:
        return {"tested": False, "measured": None, "match": None, "reason": f"needs {claim.needs}"}
    x = measured.get(claim.metric)
    if x is None:
        return {"tested": False, "measured": None, "match": None,
                "reason": f"this run did not measure {claim.metric}"}
    x = float(x)
    if claim.qualifier == "exact":
        match = x == claim.value
    elif claim.qualifier == "about":
        match = abs(x - claim.value) <= ABOUT_REL_TOL * abs(claim.value)
    elif claim.qualifier == "range":
        match = claim.range[0] <= x <= claim.range[1]
    elif claim.qualifier == "at_least":
        match = x >= claim.value
    else:  # at_most
        match = x <= claim.value
    return {"tested": True, "measured": x, "match": bool(match), "reason": None}
