"""The paper's claims as data (claims.yaml) and the rules for when a run can test one.

The paper's numbers live only in claims.yaml (docs/architecture.md, house rule 4); this
module loads and validates them, including what "reproduced" means for each claim (its
band, declared in advance, docs/statistics.md), and decides, with a human-readable reason,
which claims a given run can test. No statistics here (stats.py, verdict.py).
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
    "testability",
    "requirements",
    "target_for",
    "DEFAULT_CLAIMS_PATH",
    "TESTABLE_METRICS",
]

DEFAULT_CLAIMS_PATH = Path(__file__).with_name("claims.yaml")

# headline: an error of the paper's network (or a k-ensemble of it); ablation: an error effect
# in pp (variant minus the paper's network); convergence: a ratio variant / paper's network
# (iterations to a training-error target, or training time); proportion: the fraction of runs
# with a property; size: a count or share, decided by arithmetic; context: a number the paper
# prints that is not a claim about this network (competing methods, the recipe).
KINDS = ("headline", "ablation", "convergence", "proportion", "size", "context")
MEASURES = {"ablation": ("test_error", "train_error", "overfit_gap", "protocol"),
            "convergence": ("iterations", "train_time")}
DATASETS = ("ilsvrc2010", "ilsvrc2012", "fall2009", "cifar10", "imagenet-unspecified", "any")
SPLITS = ("test", "val", "train", "unspecified", "none")
PROTOCOLS = ("ten_patch", "center", "none")
PRETRAINING = ("none", "fall2011")
# unstated: the paper gives a direction but no number (then value is null and the band decides)
QUALIFIERS = ("exact", "about", "at_least", "at_most", "range", "unstated")
# Metrics compare.py can compute from per-seed evaluation results.
TESTABLE_METRICS = ("top1_error", "top5_error")

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
    protocol: str
    pretraining: str
    metric: str
    value: float | None
    unit: str
    paper_section: str
    n_models: int | None = 1
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
    # what "reproduced" means (docs/statistics.md): the quantity must lie in [lo, hi] (None:
    # unbounded), declared before any run, with the reason
    band: tuple[float | None, float | None] | None = None
    tolerance_reason: str | None = None
    measure: str | None = None  # ablation / convergence: what is measured (MEASURES)
    # convergence (iterations): ((dataset, % training top-1 error), ...): the claim's target
    target: tuple[tuple[str, float], ...] | None = None
    exact: float | None = None  # size: the exact arithmetic of the printed architecture (a model check)
    protocol_inferred: bool = False  # the paper does not restate the protocol for this number
    note: str = ""

    def describe_value(self) -> str:
        """The claimed number as a reader would write it, e.g. '17.0%' or '6x'."""
        if self.value is None:
            return "the claim"
        if self.unit == "%":
            return f"{self.value:.1f}%"
        if self.unit == "pp":
            return f"{self.value:.1f} pp"
        if self.unit == "x":
            return f"{self.value:g}x"
        return f"{self.value:g} {self.unit}"

    def testable_kind(self) -> bool:
        """True for the kinds decided by the harness's statistics or arithmetic."""
        return self.kind != "context"


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
    devices: int = 1  # training devices of the paper's network (two: one tower each, paper 3.2)
    # where the run cuts the claims' experiment down: ((claim id or "*", reason), ...), e.g.
    # harness/stages/compare.py cifar10_protocol_gaps
    protocol_gaps: tuple = ()

    def __post_init__(self) -> None:
        """Validate, and store protocols as a tuple so the object stays hashable."""
        object.__setattr__(self, "protocols", tuple(self.protocols))
        object.__setattr__(self, "arms", tuple((n, tuple(map(tuple, o))) for n, o in self.arms))
        object.__setattr__(self, "protocol_gaps", tuple(map(tuple, self.protocol_gaps)))
        if self.n_models_available < 0 or self.num_classes < 1:
            raise ValueError(f"bad RunContext counts: n_models_available={self.n_models_available}, "
                             f"num_classes={self.num_classes}")
        if self.pretraining not in PRETRAINING:
            raise ValueError(f"RunContext.pretraining must be one of {PRETRAINING}, got {self.pretraining!r}")


# --------------------------------------------------------------------------- loading


_REQUIRED = ("id", "kind", "dataset", "split", "protocol", "pretraining", "metric", "unit", "paper_section")
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
    _check_value(cid, raw)
    if raw.get("baseline_value") is not None and not _is_number(raw["baseline_value"]):
        raise _fail(cid, "baseline_value", f"must be a number, got {raw['baseline_value']!r}")
    _check_int(cid, "n_models", raw.get("n_models", 1), 1, optional=raw["kind"] == "context")
    _check_int(cid, "n_pretrained", raw.get("n_pretrained", 0), 0)
    _check_int(cid, "n_images", raw.get("n_images"), 1, optional=True)
    _check_int(cid, "num_classes", raw.get("num_classes"), 1, optional=True)
    if raw.get("n_pretrained", 0) > (raw.get("n_models") or 0) and raw.get("n_pretrained", 0):
        raise _fail(cid, "n_pretrained", f"exceeds n_models ({raw.get('n_models')})")
    for name in ("needs", "note", "contrast", "tolerance_reason"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise _fail(cid, name, f"must be a string, got {raw[name]!r}")
    if raw.get("protocol_inferred") is not None and not isinstance(raw["protocol_inferred"], bool):
        raise _fail(cid, "protocol_inferred", f"must be true or false, got {raw['protocol_inferred']!r}")
    values = {k: v for k, v in raw.items() if k not in ("range", "band", "target")}
    values["arm"] = _parse_arm(cid, raw)
    values["measure"] = _parse_measure(cid, raw)
    values["value"] = None if raw.get("value") is None else float(raw["value"])
    if raw.get("baseline_value") is not None:
        values["baseline_value"] = float(raw["baseline_value"])
    if raw.get("exact") is not None:
        if raw["kind"] != "size" or not _is_number(raw["exact"]):
            raise _fail(cid, "exact", "is a number, and only for size claims")
        values["exact"] = float(raw["exact"])
    return Claim(**values, range=_parse_range(cid, raw), band=_parse_band(cid, raw),
                 target=_parse_target(cid, raw, values["measure"]))


def _check_value(cid: str, raw: dict) -> None:
    """value: a number, or null exactly when the paper states no number (qualifier unstated)."""
    unstated = raw.get("qualifier") == "unstated"
    if raw.get("value") is None:
        if not unstated:
            raise _fail(cid, "value", "is missing (null only with qualifier 'unstated')")
        return
    if unstated:
        raise _fail(cid, "value", "must be null with qualifier 'unstated' (the paper prints no number)")
    if not _is_number(raw["value"]):
        raise _fail(cid, "value", f"must be a number, got {raw['value']!r}")
    if raw["unit"] == "%" and not 0 <= raw["value"] <= 100:
        raise _fail(cid, "value", f"is a percentage and must be in [0, 100], got {raw['value']}")


def _parse_measure(cid: str, raw: dict) -> str | None:
    """measure: what an ablation/convergence claim measures (default: test_error / iterations)."""
    m = raw.get("measure")
    if raw["kind"] not in MEASURES:
        if m is not None:
            raise _fail(cid, "measure", "is only allowed on ablation and convergence claims")
        return None
    m = m if m is not None else MEASURES[raw["kind"]][0]
    if m not in MEASURES[raw["kind"]]:
        raise _fail(cid, "measure", f"must be one of {MEASURES[raw['kind']]} on a {raw['kind']} claim, got {m!r}")
    return m


def _parse_target(cid: str, raw: dict, measure: str | None) -> tuple[tuple[str, float], ...] | None:
    """target: {dataset: % training top-1 error}, required by convergence claims on iterations."""
    t = raw.get("target")
    needed = raw["kind"] == "convergence" and measure == "iterations"
    if t is None:
        if needed:
            raise _fail(cid, "target", "is missing: a convergence claim names its training-error target per data set")
        return None
    if not needed:
        raise _fail(cid, "target", "is only allowed on convergence claims that count iterations")
    if (not isinstance(t, dict) or not t or any(k not in DATASETS for k in t)
            or not all(_is_number(v) and 0 < v < 100 for v in t.values())):
        raise _fail(cid, "target", f"must map data sets {DATASETS} to a % error in (0, 100), got {t!r}")
    return tuple((k, float(v)) for k, v in t.items())


def _parse_band(cid: str, raw: dict) -> tuple[float | None, float | None] | None:
    """band: [lo, hi] the quantity must lie in to be reproduced (docs/statistics.md).

    Required for every claim the harness can decide (all but context, and those with
    `needs`, which may still carry one for `harness verdict`); each kind has its own rule.
    """
    band, kind = raw.get("band"), raw["kind"]
    if band is None:
        if kind != "context" and raw.get("needs") is None:
            raise _fail(cid, "band", "is missing: every testable claim declares its tolerance band")
        if raw.get("tolerance_reason") is not None:
            raise _fail(cid, "tolerance_reason", "is only allowed with a band")
        return None
    if kind == "context":
        raise _fail(cid, "band", "is not allowed on a context row (it is not a claim about this network)")
    if (not isinstance(band, list) or len(band) != 2 or band == [None, None]
            or not all(x is None or _is_number(x) for x in band)):
        raise _fail(cid, "band", f"must be [lo, hi] with numbers or null (unbounded), not both null, got {band!r}")
    lo, hi = (None if x is None else float(x) for x in band)
    if lo is not None and hi is not None and lo >= hi:
        raise _fail(cid, "band", f"must have lo < hi, got {band!r}")
    if not isinstance(raw.get("tolerance_reason"), str) or not raw["tolerance_reason"].strip():
        raise _fail(cid, "tolerance_reason", "is missing: say why this band was declared")
    value = raw.get("value")
    if value is not None and not ((lo is None or lo <= value) and (hi is None or value <= hi)):
        raise _fail(cid, "band", f"{band!r} does not contain the paper's value {value}")
    _check_band_kind(cid, kind, lo, hi, raw)
    return lo, hi


def _excludes(lo: float | None, hi: float | None, x: float) -> bool:
    """The band lies strictly on one side of x."""
    return (lo is not None and lo > x) or (hi is not None and hi < x)


def _check_band_kind(cid: str, kind: str, lo: float | None, hi: float | None, raw: dict) -> None:
    """Per kind: a zero effect (or no speed-up) must never be inside the band."""
    value = raw.get("value")
    if kind in ("headline", "size") and (lo is None or hi is None):
        raise _fail(cid, "band", f"of a {kind} claim needs both edges")
    if kind == "ablation":
        if not _excludes(lo, hi, 0.0):
            raise _fail(cid, "band", f"[{lo}, {hi}] contains 0: a zero or reversed effect could be reproduced")
        if value is not None and (value > 0) != (lo is not None and lo > 0):
            raise _fail(cid, "band", "lies on the other side of 0 than the paper's value")
    if kind == "convergence":
        if (lo is not None and lo <= 0) or (hi is not None and hi <= 0):
            raise _fail(cid, "band", "of a ratio must be positive")
        if not _excludes(lo, hi, 1.0):
            raise _fail(cid, "band", f"[{lo}, {hi}] contains 1: no difference could be reproduced")
    if kind == "proportion" and not (0 <= (lo or 0) and (hi if hi is not None else 1) <= 1 and (lo or 0) > 0):
        raise _fail(cid, "band", f"of a proportion must lie in [0, 1] with lo > 0, got [{lo}, {hi}]")


def _parse_arm(cid: str, raw: dict) -> tuple[tuple[str, Any], ...] | None:
    """`arm: {model.lrn: none}`: the group without the design choice (ablation/convergence), or
    the net a headline number belongs to when it is not the baseline's (paper 3.3's CIFAR-10 nets)."""
    arm = raw.get("arm")
    if arm is None:
        if raw.get("contrast") is not None:
            raise _fail(cid, "arm", "is missing (contrast describes an arm)")
        return None
    if raw["kind"] not in ("ablation", "convergence", "headline"):
        raise _fail(cid, "arm", "is only allowed on ablation, convergence and headline claims")
    if (not isinstance(arm, dict) or not arm
            or not all(isinstance(k, str) and k.split(".")[0] in ("model", "train") and "." in k for k in arm)):
        raise _fail(cid, "arm", f"must map model.*/train.* keys to values, got {arm!r}")
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
    field, a band that breaks its kind's rule, or a duplicate id.
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


def target_for(claim: Claim, dataset: str) -> float | None:
    """The claim's training-error target (%) on `dataset` (None: the claim names none there)."""
    return dict(claim.target or ()).get(dataset)


# --------------------------------------------------------------------------- testability


def _name(dataset: str) -> str:
    """Display name of a dataset key."""
    return _DATASET_NAMES.get(dataset, dataset)


# The paper's ablations were measured on "ImageNet" without saying which release/split.
_IMAGENET = ("ilsvrc2010", "ilsvrc2012")
_EVAL_SPLITS = ("val", "test")


def _same_data(claim: Claim, run: RunContext) -> bool:
    return run.dataset == claim.dataset or (claim.dataset == "imagenet-unspecified" and run.dataset in _IMAGENET)


def _data_reason(claim: Claim, run: RunContext) -> str | None:
    """Dataset and class-count mismatches. Another held-out split of the same data set is
    allowed: the headline test then adds both binomial terms (docs/statistics.md)."""
    where = f"{claim.describe_value()} is measured on the {_name(claim.dataset)}"
    if not _same_data(claim, run):
        return f"{where}{'' if claim.split in ('none', 'unspecified') else ' ' + claim.split} set; " \
               f"this run uses the {_name(run.dataset)} dataset"
    if claim.split in _EVAL_SPLITS and run.split not in _EVAL_SPLITS:
        return f"{where} {claim.split} set; this run evaluates the {run.split} split"
    if claim.kind == "headline" and claim.split != run.split and claim.n_images is None:
        return f"{where} {claim.split} set of unknown size; this run evaluates the {run.split} split"
    if claim.num_classes is not None and claim.num_classes != run.num_classes:
        return f"needs all {claim.num_classes} classes; this run evaluates {run.num_classes}"
    return None


def _model_reasons(claim: Claim, run: RunContext) -> list[tuple[str, str]]:
    """Protocol, ensemble size, pre-training and network-size mismatches, with categories."""
    reasons = []
    if claim.protocol != "none" and claim.protocol not in run.protocols:
        ran = ", ".join(_PROTOCOL_NAMES.get(p, p) for p in run.protocols) or "no protocol"
        reasons.append(("not measured", f"needs {_PROTOCOL_NAMES[claim.protocol]} evaluation; this run evaluated {ran}"))
    pre = _PRETRAINING_NAMES.get(claim.pretraining, claim.pretraining)
    if (claim.n_models or 1) > run.n_models_available:
        what = f"needs {claim.n_models} models" + (" averaged" if claim.n_models > 1 else "")
        if claim.n_pretrained:
            what += f" incl. {claim.n_pretrained} pre-trained on {pre}"
        reasons.append(("too few seeds", f"{what}; this run has {run.n_models_available}"))
    if claim.pretraining != run.pretraining:
        if claim.pretraining == "none":
            reasons.append(("other data", "the paper's number uses no pre-training; this run was pre-trained "
                            f"on {_PRETRAINING_NAMES.get(run.pretraining, run.pretraining)}"))
        elif (claim.n_models or 1) <= run.n_models_available:
            k = claim.n_pretrained or claim.n_models
            reasons.append(("not buildable", f"needs {k} model{'s' if k > 1 else ''} pre-trained on {pre}; "
                            "this run has none"))
    if not run.full_paper_model:
        reasons.append(("scaled-down network", "needs the full paper network; this run's profile scales it down"))
    return reasons


# the order in which a row's category is picked when several reasons apply
CATEGORIES = ("context", "not buildable", "other data", "arm not trained", "scaled-down network",
              "cut-down experiment", "too few seeds", "not measured")


def testability(claim: Claim, run: RunContext) -> tuple[str, str] | None:
    """None when this run can decide the claim, else (category, reason).

    category (CATEGORIES) says in a word why, for the report's counts; reason is specific
    and names what is missing (several joined with "; ").
    - context: never tested (not a claim about this network).
    - headline: the data set and class count must match, the split must be a held-out one
      (another held-out split adds the binomial terms of both test sets), the protocol, the
      number of models, pre-training and the full paper network too; `needs` never is.
    - ablation / convergence: an arm matching claim.arm trained on the claim's data with the
      full paper network (a ten-patch claim needs no arm: it compares two protocols of the
      same models); convergence on training time also needs two devices (paper 3.2).
    - proportion: the claim's data and the full two-tower network.
    - size: decided on the paper's architecture as built, whatever the run.
    - any claim on the run's data: none of the run's protocol_gaps for it (a cut-down experiment).
    """
    found: list[tuple[str, str]] = []
    if claim.kind == "context":
        return "context", f"context, not a claim about this network{': ' + claim.note if claim.note else ''}"
    if claim.needs:
        found.append(("not buildable", f"needs {claim.needs}"))
    if claim.kind == "size":
        return _pick(found)
    if (claim.kind in ("ablation", "convergence") and claim.measure != "protocol") or \
            (claim.kind == "headline" and claim.arm):
        found += _arm_reasons(claim, run)
    data = _data_reason(claim, run)
    if data:
        found.append(("other data", data))
    if claim.kind == "headline":
        found += _model_reasons(claim, run)
    elif not run.full_paper_model:
        found.append(("scaled-down network", "needs the full paper network; this run's profile scales it down"))
    gaps = [r for scope, r in run.protocol_gaps if scope in ("*", claim.id)]
    if gaps and data is None:
        found.append(("cut-down experiment", "; ".join(gaps)))
    if claim.measure == "protocol":
        missing = [p for p in ("center", "ten_patch") if p not in run.protocols]
        if missing:
            found.append(("not measured", "needs both centre-crop and 10-patch evaluation of the same models; "
                          f"this run did not evaluate {', '.join(missing)}"))
    if claim.measure == "test_error" and claim.protocol != "none" and claim.protocol not in run.protocols:
        found.append(("not measured", f"needs {_PROTOCOL_NAMES[claim.protocol]} evaluation of both groups (the "
                      f"paper's test for this effect); this run evaluated "
                      f"{', '.join(_PROTOCOL_NAMES.get(p, p) for p in run.protocols) or 'no protocol'}"))
    if claim.measure == "train_time" and run.devices != 2:
        found.append(("not measured", "needs the two-tower net trained on two devices (train.devices with two "
                      f"entries, paper 3.2); this run trained on {run.devices}"))
    return _pick(found)


testability.__test__ = False  # the name starts with "test": keep pytest from collecting it


def _pick(found: list[tuple[str, str]]) -> tuple[str, str] | None:
    if not found:
        return None
    category = min((c for c, _ in found), key=CATEGORIES.index)
    return category, "; ".join(r for _, r in found)


def _arm_reasons(claim: Claim, run: RunContext) -> list[tuple[str, str]]:
    if claim.arm is None:
        return [("not buildable", f"needs an {claim.kind} group for '{claim.id}' that this harness does not define")]
    if matching_arm(claim, run.arms) is None and claim.kind == "headline":
        return [("arm not trained", f"{claim.describe_value()} is the error of the net {{{_describe_arm(claim)}}}, "
                 "which this run did not train: add an arm with these values to ablations.enabled")]
    if matching_arm(claim, run.arms) is None:
        what = claim.contrast or _describe_arm(claim)
        return [("arm not trained", f"needs {'an' if claim.kind == 'ablation' else 'a'} {claim.kind} group ({what}) "
                 f"that this run did not train: add an arm with {{{_describe_arm(claim)}}} to ablations.enabled")]
    return []


def why_not_testable(claim: Claim, run: RunContext) -> str | None:
    """None when this run can test the claim, else the reason (testability without the category)."""
    found = testability(claim, run)
    return None if found is None else found[1]


def requirements(claim: Claim) -> str:
    """What deciding the claim needs, whatever this run did (shown on every row)."""
    if claim.kind == "context":
        return "nothing: recorded for context"
    if claim.needs:
        return f"{claim.needs}; or per-seed results from elsewhere through `harness verdict`"
    if claim.kind == "size":
        return "the paper's architecture as built (arithmetic, no training)"
    data = _name(claim.dataset) + ("" if claim.split in ("none", "unspecified", "train") else f" {claim.split}")
    parts = [data, "the full paper network"]
    if claim.kind == "headline" and claim.arm:
        parts.append(f"the arm {{{_describe_arm(claim)}}}")
    if claim.kind == "headline":
        parts.append(f"{_PROTOCOL_NAMES.get(claim.protocol, claim.protocol)} evaluation")
        parts.append("at least 2 seeds" if (claim.n_models or 1) == 1 else
                     f"{claim.n_models} seeds (conservative bound) or {2 * claim.n_models} "
                     f"(two disjoint {claim.n_models}-model ensembles)")
    elif claim.measure == "protocol":
        parts.append("centre-crop and 10-patch evaluation of the same seeds (paired), at least 2 seeds")
    elif claim.kind in ("ablation", "convergence"):
        parts.append(f"the arm {{{_describe_arm(claim)}}} with at least 2 seeds per group")
        if claim.measure == "test_error" and claim.protocol != "none":
            parts.append(f"{_PROTOCOL_NAMES[claim.protocol]} evaluation of both groups")
        if claim.measure == "iterations":
            parts.append("training error logged every 20 steps (the train stage's steps file)")
        if claim.measure == "train_time":
            parts.append("two devices for the two-tower net")
    elif claim.kind == "proportion":
        parts.append("the towers' colour selectivity per seed (train metrics `towers`)")
    return ", ".join(parts)


def check_size_claim(claim: Claim, measured: dict[str, float]) -> dict:
    """A size claim against the printed number at its precision (the band): exact, no statistics.

    Returns {tested, measured, match, reason, exact}. match: measured lies in the band.
    `exact` (the arithmetic of the printed architecture) is a model check shown beside it,
    never what is compared. A claim with `needs` or an unmeasured metric is not tested.
    """
    if claim.kind != "size":
        raise ValueError(f"claim {claim.id!r} is a {claim.kind} claim, not a size claim")
    if claim.needs:
        return {"tested": False, "measured": None, "match": None, "reason": f"needs {claim.needs}", "exact": claim.exact}
    x = measured.get(claim.metric)
    if x is None:
        return {"tested": False, "measured": None, "match": None,
                "reason": f"this run did not measure {claim.metric}", "exact": claim.exact}
    x = float(x)
    lo, hi = claim.band
    return {"tested": True, "measured": x, "match": bool(lo <= x <= hi), "reason": None, "exact": claim.exact}
