"""The hand-over between the compare stage and the report: what build_compare takes
(CompareInputs) and the shape of reports/metrics/compare.json (CompareJson and the TypedDicts
it is made of).

Imports nothing but typing and dataclasses, so the report may import it without numpy or the
statistics. TypedDicts are checked, not enforced at run time: tests/unit/test_handover.py
builds compare results and checks every key against these declarations, and checks that every
string key the report modules look up is declared here (or read from another file), so a
renamed key fails a unit test rather than an end-to-end run. Keys are `total` where every
output carries them, NotRequired where only some rows or runs do.
"""

from dataclasses import dataclass
from typing import Any, Mapping, NotRequired, Optional, Sequence, TypedDict

__all__ = ["CompareInputs", "CompareJson", "ClaimRow", "SeedRow", "SummaryStats", "Counts", "DecisionRule",
           "Reference", "ReferenceMetric", "ArmResult", "ArmCosts", "Pretraining", "HANDOVER_TYPES"]


# --------------------------------------------------------------------------- what build_compare takes


@dataclass(frozen=True)
class CompareInputs:
    """The run's results as the compare stage loaded them (errors in percent, 0-100)."""

    # per-seed evaluate-stage dicts: {seed, n_images, protocols: {protocol: {top1_error, ...}}, ...}
    seed_results: Sequence[dict]
    # protocol -> metric -> bool [n_seeds, n_images], rows in seed_results order (bootstrap, McNemar)
    correctness: Optional[Mapping[str, Mapping[str, Any]]] = None
    # the ensemble stage's dict, passed through to compare.json `ensemble`
    ensemble: Optional[dict] = None
    # earlier runs' per-seed errors (harness make-reference): {profile, dataset, protocol, seeds, top1_error, ...}
    reference: Optional[dict] = None
    # architecture measurements keyed by claim metric (n_parameters, n_neurons, conv_param_shares, ...)
    measured: Optional[Mapping[str, Any]] = None
    # the trained arms: {protocol, target_train_error, baseline_curves, baseline_series,
    # arms: {name: {overrides, results, curves, series, train, base?}}}; an arm's `base`
    # {name, results, curves, series, train} is the group it is measured against instead of the
    # baseline seeds. Names and overrides must also be in the RunContext's arms for claims to match.
    ablations: Optional[Mapping[str, Any]] = None
    # disjoint k-model ensembles: protocol -> k -> {groups: [[seed, ...]], correct: {metric: [bool
    # [n_images] per group]}, member_correct: {metric: [bool [k, n_images] per group]}}
    ensembles: Optional[Mapping[str, Any]] = None
    # seed -> train metrics (train_time_s, final_val_top1_error, towers, ...)
    train: Optional[Mapping[int, dict]] = None
    # paper 6: the ensemble_finetune stage's dict plus full_paper_model and base_singles
    # (harness/analysis/pretrained.py), for the claims with pretraining fall2011
    pretrained: Optional[Mapping[str, Any]] = None


# --------------------------------------------------------------------------- compare.json


class Settings(TypedDict):
    """verdict.Settings (params `compare`) as a dict."""
    conf: float
    alpha: float
    power: float
    multiplicity: str
    n_boot: int
    rng_seed: int
    reference_margin_pp: float


class Context(TypedDict):
    """claims.RunContext as a dict: the run as the claims see it."""
    dataset: str
    split: str
    num_classes: int
    n_models_available: int
    protocols: list[str]
    full_paper_model: bool
    pretraining: str
    protocol_gaps: list
    devices: int
    arms: list


class EnsembleSize(TypedDict):
    """Every subset of k seeds averaged (harness/analysis/ensemble.py)."""
    k: int
    n_subsets: int
    top1_error_mean: float
    top1_error_sd: Optional[float]
    top1_error_min: NotRequired[float]
    top1_error_max: NotRequired[float]
    top5_error_mean: float
    top5_error_sd: Optional[float]
    top5_error_min: NotRequired[float]
    top5_error_max: NotRequired[float]


class EnsembleProtocol(TypedDict):
    sizes: list[EnsembleSize]
    mcnemar_full_vs_single: Any  # per seed {seed, b, c, p}: the ensemble of every seed vs each single


class Ensemble(TypedDict):
    """The ensemble stage's reports/metrics/ensemble.json, passed through to compare.json `ensemble`."""
    seeds: NotRequired[list[int]]
    protocols: dict[str, EnsembleProtocol]
    mlflow_run_id: NotRequired[Optional[str]]


class SeedRow(TypedDict):
    """One seed x protocol x metric, with the Wilson interval of that run."""
    seed: int
    protocol: str
    metric: str
    error: float
    wilson_lo: float
    wilson_hi: float
    n_images: int
    mlflow_run_id: Optional[str]


class SummaryStats(TypedDict):
    """Across seeds: mean, sd, t interval; bootstrap interval when correctness was given."""
    mean: float
    sd: Optional[float]
    n: int
    t_lo: Optional[float]
    t_hi: Optional[float]
    boot_lo: NotRequired[Optional[float]]
    boot_hi: NotRequired[Optional[float]]


class Multiplicity(TypedDict):
    method: str
    family_size: int


class ModelCheck(TypedDict):
    exact: float
    measured: float
    equal: bool


class MeasuredOnRun(TypedDict):
    """A claim's quantity on this run's data, shown though not a verdict: an ablation claim's
    (compare.py _measured_on_run, every key) or a pre-trained claim's (pretrained.py, the first five)."""
    estimate: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    n: Optional[int]
    source: Optional[str]
    arm: NotRequired[Optional[str]]
    n_variant: NotRequired[Optional[int]]
    paired: NotRequired[Optional[bool]]
    direction: NotRequired[Optional[str]]
    direction_text: NotRequired[Optional[str]]
    method: NotRequired[Optional[str]]


class ClaimRow(TypedDict):
    """One claim of the paper (harness/analysis/verdict.py): claim_base's fields, then the verdict's."""
    id: str
    kind: str
    metric: str
    measure: Optional[str]
    paper_value: Any
    unit: Optional[str]
    qualifier: Optional[str]
    dataset: Optional[str]
    split: Optional[str]
    protocol: Optional[str]
    protocol_inferred: Any
    n_models: Optional[int]
    paper_section: Optional[str]
    quantity: str
    band: Optional[list]
    tolerance_reason: Optional[str]
    requires: Any
    note: Optional[str]
    tested: bool
    verdict: str
    # not tested
    category: NotRequired[str]
    reason: NotRequired[str]
    measured_on_run: NotRequired[MeasuredOnRun]
    # tested
    method: NotRequired[str]
    estimate: NotRequired[Optional[float]]
    lo: NotRequired[Optional[float]]
    hi: NotRequired[Optional[float]]
    excl_lo: NotRequired[Optional[float]]
    excl_hi: NotRequired[Optional[float]]
    interval_level: NotRequired[float]
    exclusion_level: NotRequired[float]
    se: NotRequired[Optional[float]]
    df: NotRequired[Optional[float]]
    scale: NotRequired[str]
    n: NotRequired[Optional[int]]
    n_variant: NotRequired[Optional[int]]
    k: NotRequired[int]
    paired: NotRequired[Optional[bool]]
    same_test_set: NotRequired[Optional[bool]]
    p_reproduced: NotRequired[Optional[float]]
    p_not_reproduced: NotRequired[Optional[float]]
    p_reproduced_adj: NotRequired[Optional[float]]
    p_not_reproduced_adj: NotRequired[Optional[float]]
    multiplicity: NotRequired[Multiplicity]
    exact_decision: NotRequired[bool]
    model_check: NotRequired[Optional[ModelCheck]]
    direction: NotRequired[Optional[str]]
    direction_text: NotRequired[Optional[str]]
    bound: NotRequired[Optional[str]]
    notes: NotRequired[list]
    assumes: NotRequired[str]
    source: NotRequired[Optional[str]]
    n_ensembles: NotRequired[int]
    n_seeds: NotRequired[int]
    seeds_needed: NotRequired[Optional[int]]
    seeds_needed_note: NotRequired[Optional[str]]
    seeds_needed_for: NotRequired[str]
    # paper 6's claims with pretraining
    pretraining: NotRequired[str]
    pretraining_gaps: NotRequired[list]
    # measured on an ablation arm; compared_with: that arm's base arm (the compare stage's mark_bases)
    arm: NotRequired[Optional[str]]
    compared_with: NotRequired[str]


class Counts(TypedDict):
    claims_total: int
    claims_tested: int
    claims_untested: int
    verdicts: dict[str, int]
    not_tested_by_category: dict[str, int]


class DecisionRule(TypedDict):
    alpha: float
    interval_level: float
    exclusion_level: float
    multiplicity: str
    family_size: int
    power_target: float
    reproduced: str
    not_reproduced: str
    inconclusive: str
    family: str
    doc: str


class GroupStats(TypedDict):
    mean: Optional[float]
    sd: Optional[float]
    n: int


class ReferenceMetric(TypedDict):
    """Our seeds vs the reference seeds for one metric."""
    ours: GroupStats
    reference: GroupStats
    diff: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    welch_p: Optional[float]
    tost_p: Optional[float]
    mann_whitney_p: Optional[float]
    boot_lo: Optional[float]
    boot_hi: Optional[float]
    power: Optional[float]
    seeds_needed: Optional[int]
    power_note: str
    welch_p_adj: Optional[float]
    tost_p_adj: Optional[float]
    verdict: str


class Reference(TypedDict):
    """This run vs earlier runs; `tested` False with the reason when they are not comparable."""
    tested: bool
    reason: NotRequired[str]
    profile: NotRequired[Optional[str]]
    dataset: NotRequired[str]
    protocol: NotRequired[str]
    reference_seeds: NotRequired[list[int]]
    overlapping_seeds: NotRequired[list[int]]
    margin_pp: NotRequired[float]
    metrics: NotRequired[dict[str, ReferenceMetric]]


class ModelChecks(TypedDict):
    checks: list[dict]  # {id, metric} plus ModelCheck's keys
    conv_param_shares: dict[str, float]


class McNemar(TypedDict):
    b: int
    c: int
    p: float


class PairedSeed(TypedDict):
    seed: int
    center: float
    ten_patch: float
    gain: float
    mcnemar: NotRequired[McNemar]


class PairedMetric(TypedDict):
    per_seed: list[PairedSeed]
    gain: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    n: int
    p_value: Optional[float]
    method: str


class TenPatchVsCenter(TypedDict):
    tested: bool
    reason: NotRequired[str]
    metrics: NotRequired[dict[str, PairedMetric]]


class ImageLevel(TypedDict):
    gain: float
    lo: Optional[float]
    hi: Optional[float]
    p_value: Optional[float]
    note: str


class EnsembleGain(TypedDict):
    """A k-ensemble's gain over its own members (mean member error - ensemble error)."""
    groups: list[list[int]]
    member_mean_error: list[float]
    ensemble_error: list[float]
    gain: float
    n_groups: int
    lo: Optional[float]
    hi: Optional[float]
    p_value: Optional[float]
    method: str
    image_level: NotRequired[ImageLevel]


class Paired(TypedDict):
    ten_patch_vs_center: TenPatchVsCenter
    ensemble_gain: dict[str, dict[str, dict[str, EnsembleGain]]]  # protocol -> k -> metric


class EffectGroup(TypedDict):
    mean: Optional[float]
    sd: Optional[float]
    n: int
    values: list[float]


class ErrorEffect(TypedDict):
    """An arm minus its baseline, one protocol and metric (harness/analysis/ablation.py error_effect)."""
    baseline: EffectGroup
    arm: EffectGroup
    diff: Optional[float]
    se: Optional[float]
    df: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    p_value: Optional[float]
    method: str
    paired: bool
    paired_seeds: Optional[list[int]]
    boot_lo: Optional[float]
    boot_hi: Optional[float]
    mann_whitney_p: Optional[float]


class Convergence(TypedDict):
    """Steps to the training-error target, arm / baseline (ablation.convergence_effect)."""
    target_train_error: float
    baseline_iterations: dict[str, Any]
    arm_iterations: dict[str, Any]
    resolution_steps: NotRequired[Any]
    not_reached: NotRequired[dict[str, Any]]
    tested: bool
    reason: NotRequired[str]
    paired: NotRequired[bool]
    ratio: NotRequired[Optional[float]]
    ratio_lo: NotRequired[Optional[float]]
    ratio_hi: NotRequired[Optional[float]]
    bound: NotRequired[Optional[str]]
    method: NotRequired[str]


class ArmClaim(TypedDict):
    metric: str
    paper_value: Any
    band: Optional[list]
    unit: Optional[str]
    verdict: str
    estimate: NotRequired[Optional[float]]
    lo: NotRequired[Optional[float]]
    hi: NotRequired[Optional[float]]


class ArmResult(TypedDict):
    overrides: dict[str, Any]
    seeds: list[int]
    base: str
    baseline_seeds: list[int]
    protocols: dict[str, dict[str, ErrorEffect]]
    convergence: Convergence
    claims: dict[str, ArmClaim]
    differs_from_base: NotRequired[dict[str, list]]  # the compare stage's mark_bases


class NetCost(TypedDict):
    arch: str
    input_size: int
    n_parameters: int
    mult_adds: int
    images_per_s: Optional[float]
    train_time_s: Optional[float]
    errors: dict[str, SummaryStats]


class ArmCosts(TypedDict):
    """The compare stage's size, speed and errors of the baseline and every trained arm."""
    protocol: str
    conf: float
    nets: dict[str, NetCost]


class ProtocolGap(TypedDict):
    claims: str
    reason: str


class AblationsRun(TypedDict):
    enabled: list[str]
    seeds: list[int]
    target_train_error: float
    protocol: Optional[str]


class PretrainingFacts(TypedDict, total=False):
    """What the pre-training was (harness/analysis/pretrained.py): written by the pretrain stages."""
    source: str
    release: str
    split: str
    n_classes: int
    counts: dict[str, int]
    n_excluded: int
    excluded_against: Any
    digest: str
    model: dict[str, Any]
    schedule: dict[str, Any]
    reinit: Any


class PretrainedEnsemble(TypedDict):
    """b ILSVRC-only CNNs + p fine-tuned ones averaged (key "b+p")."""
    k: int
    n_pretrained: int
    groups: list[dict[str, list[int]]]  # {base: seeds, pretrained: seeds}
    top1_error: list[float]
    top5_error: list[float]


class Pretraining(TypedDict):
    """Paper 6: what the pre-trained CNNs were and measured."""
    facts: PretrainingFacts
    base_seeds: list[int]
    pretrained_seeds: list[int]
    full_paper_model: Any
    finetuned: list[dict[str, Any]]  # {seed, protocol: {top1_error, top5_error}}
    ensembles: dict[str, dict[str, PretrainedEnsemble]]  # protocol -> "b+p"
    pretrained: list[dict[str, Any]]  # {seed, n_images, protocol: {top1_error, top5_error}}


class CompareJson(TypedDict):
    """reports/metrics/compare.json: build_compare's keys, then those the compare stage adds."""
    settings: Settings
    context: Context
    decision_rule: DecisionRule
    seeds: list[SeedRow]
    summary: dict[str, dict[str, SummaryStats]]  # protocol -> metric
    reference: Reference
    claims: list[ClaimRow]
    model_checks: ModelChecks
    paired: Paired
    ensemble: Optional[Ensemble]
    ablation_results: dict[str, ArmResult]
    counts: Counts
    architecture_counts: Counts
    pretraining: NotRequired[Pretraining]
    # added by harness/stages/compare.py
    protocol_gaps: NotRequired[list[ProtocolGap]]
    arm_costs: NotRequired[ArmCosts]
    ablations: NotRequired[AblationsRun]
    mlflow_run_id: NotRequired[Optional[str]]
    parent_run_id: NotRequired[Optional[str]]
    mlflow_experiment_id: NotRequired[str]


# Every TypedDict above: the keys the report may read from compare.json
HANDOVER_TYPES = (CompareJson, Settings, Context, EnsembleSize, EnsembleProtocol, Ensemble, PretrainingFacts,
                  PretrainedEnsemble, SeedRow, SummaryStats, Multiplicity, ModelCheck, MeasuredOnRun, ClaimRow, Counts,
                  DecisionRule, GroupStats, ReferenceMetric, Reference, ModelChecks, McNemar, PairedSeed,
                  PairedMetric, TenPatchVsCenter, ImageLevel, EnsembleGain, Paired, EffectGroup, ErrorEffect,
                  Convergence, ArmClaim, ArmResult, NetCost, ArmCosts, ProtocolGap, AblationsRun, Pretraining)
