"""dvc.yaml params: each training stage depends on exactly the keys that shape its weights.

A key missing from a stage's params is a stale cache (a changed lr reuses old weights); a key
too many retrains for nothing (adding a seed must not retrain the others). The expected keys are
found here by changing each config field in turn and watching the training digest
(harness/config.py training_config), not copied from dvc.yaml. The four training stages share one
list of training keys (a YAML anchor in dvc.yaml), so a key added to one is added to all.
"""

import dataclasses
from pathlib import Path

import pytest
import yaml
from import_graph import params_of

from harness import config as C

REPO = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# Listed although they leave the digest alone: they say how many torchrun processes the stage
# launches (`dvc exp run -S train.nproc_per_node=8` must start them).
LAUNCH = {f"train.{k}" for k in C.LAUNCH_KEYS}


def other(value, meta):
    """A different value of a field's type (validation aside: only the digest is read)."""
    if meta.get("choices"):
        return next(c for c in meta["choices"] if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, tuple):
        return value[:-1] if value else (1,)
    if value is None:
        return 2.0
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, image_size=value.image_size + 8)
    raise TypeError(f"no other value for {value!r}")


def base() -> C.Config:
    cfg = C.load_config(REPO / "params.yaml")
    # a GPU device, so that decode_device: cuda is a valid change too; a root for the Fall 2011 data
    pretrain = dataclasses.replace(cfg.pretrain, data=dataclasses.replace(cfg.pretrain.data, root="fall2011"))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, devices=("cuda:0",)), pretrain=pretrain)


def digest_keys(section: str, digest, skip=()) -> set[str]:
    """The `section.field` keys whose change alters digest(cfg)."""
    cfg = base()
    before = digest(cfg)
    part = getattr(cfg, section)
    out = set()
    for f in dataclasses.fields(part):
        if f.name in skip:
            continue
        changed = dataclasses.replace(part, **{f.name: other(getattr(part, f.name), f.metadata)})
        if digest(dataclasses.replace(cfg, **{section: changed})) != before:
            out.add(f"{section}.{f.name}")
    return out


def phase_digest(phase):
    return lambda cfg: C.training_config(C.apply_phase(cfg, phase))


TRAIN = {"model"} | digest_keys("train", C.training_config) | LAUNCH
MATRIX = {"enabled", "seeds"}  # pretrain.enabled and pretrain.seeds are the matrix, not params


def test_every_train_key_but_the_seed_list_shapes_the_weights():
    fields = {f"train.{f.name}" for f in dataclasses.fields(C.TrainConfig)}
    assert TRAIN == {"model"} | fields - {"train.seeds"}


@pytest.mark.parametrize("name, extra", [
    ("train", set()),
    ("train_ablation", {"ablations.arms.${item.arm}"}),
    ("pretrain", digest_keys("pretrain", phase_digest("pretrain"), skip=MATRIX)),
    ("finetune", digest_keys("pretrain", phase_digest("finetune"), skip=MATRIX)),
])
def test_training_stage_params_are_exactly_what_shapes_its_weights(name, extra):
    listed = params_of(STAGES[name])
    assert len(listed) == len(set(listed)), f"{name} lists a key twice"
    assert set(listed) == TRAIN | extra


def test_the_phases_read_their_own_pretrain_keys():
    """The digest-derived sets above are not empty by accident."""
    assert digest_keys("pretrain", phase_digest("pretrain"), skip=MATRIX) == {
        "pretrain.data", "pretrain.epochs", "pretrain.lr", "pretrain.lr_steps"}
    assert {"pretrain.finetune_lr", "pretrain.reinit", "pretrain.epochs"} <= digest_keys(
        "pretrain", phase_digest("finetune"), skip=MATRIX)


def test_the_training_stages_share_one_list():
    """One list in dvc.yaml: the parsed stages hold the very same object (a YAML alias)."""
    groups = [next(p["params.yaml"] for p in STAGES[n]["params"] if isinstance(p, dict))
              for n in ("train", "train_ablation", "pretrain", "finetune")]
    assert all(g is groups[0] for g in groups)
    assert STAGES["train_ablation"]["deps"] is STAGES["train"]["deps"]


def test_every_listed_param_is_a_key_of_params_yaml():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in STAGES.items():
        for key in params_of(stage):
            node = raw
            for part in key.replace("${item.arm}", "no_lrn").split("."):
                assert isinstance(node, dict) and part in node, f"{name}: {key} is not in params.yaml"
                node = node[part]
