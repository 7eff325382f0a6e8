"""Presets: the paper's recipe for a real dataset, merged into params.yaml in one command.

A preset (presets/<name>.yaml at the repository root) lists the keys it sets. A key that another
preset sets and this one does not goes back to the paper's value (the config dataclasses'
default, docs/paper.md), so a preset gives the same params whatever was applied before it: ImageNet
after cifar10 keeps no `train.stop_at_train_error` or `train.lr_select_factors` of the CIFAR-10
runs. Every other key keeps its params.yaml value. A preset's optional `replace:` list names dotted
keys whose whole value the preset sets instead of merging into (e.g. ablations.arms: the paper
net's arms do not describe the CIFAR-10 nets). The result is validated before params.yaml is
replaced, and the old file is kept as params.yaml.bak, so nothing is lost and `git diff
params.yaml` shows the switch.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from harness import config as C
from harness.errors import UserError
from harness.io import atomic_write_text


def available(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def merged(params: dict, preset: dict) -> dict:
    out = copy.deepcopy(params)
    for key, value in preset.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Keys `harness preset` sets from its command line (_set_roots): owned like the presets' own keys.
ROOT_KEYS = ("data.root", "pretrain.data.root", "pretrain.data.fall2011.exclude_root")


def leaf_keys(preset: dict, replace=(), prefix: str = "") -> set[str]:
    """The dotted keys a preset sets: its leaves, a `replace:` key counting as one leaf."""
    out = set()
    for key, value in preset.items():
        dotted = f"{prefix}{key}"
        if key == "replace" and not prefix:
            continue
        if isinstance(value, dict) and value and dotted not in replace:
            out |= leaf_keys(value, replace, dotted + ".")
        else:
            out.add(dotted)
    return out


def owned_keys(folder: Path) -> set[str]:
    """Every dotted key some preset in `folder` sets (and the data roots)."""
    keys = set(ROOT_KEYS)
    for name in available(folder):
        preset = _load(name, folder)
        keys |= leaf_keys(preset, preset.get("replace", []))
    return keys


def paper_value(dotted: str):
    """The paper recipe's value of a params key: the config dataclasses' default (docs/paper.md)."""
    value = C.to_dict(C.Config())
    for key in dotted.split("."):
        value = value[key]
    return {} if dotted == "ablations.arms" else value  # params spell the arms as a mapping


def _covered(key: str, sets: set[str]) -> bool:
    """key is set by the preset: itself, or a key above it (a replaced or scalar value)."""
    return any(key == k or key.startswith(k + ".") for k in sets)


def reset_others(params: dict, preset: dict, owned) -> tuple[dict, list[str]]:
    """params with every owned key the preset does not set back at the paper's value, and
    the keys whose value that changed."""
    out, changed = copy.deepcopy(params), []
    sets = leaf_keys(preset, preset.get("replace", []))
    for dotted in sorted(k for k in owned if not _covered(k, sets)):
        *parents, last = dotted.split(".")
        node = out
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        value = paper_value(dotted)
        if node.get(last, object()) != value:
            changed.append(dotted)
        node[last] = copy.deepcopy(value)
    return out, changed


def with_preset(params: dict, preset: dict, owned=()) -> dict:
    """params with the owned keys the preset does not set back at the paper's value
    (reset_others), the preset's keys merged in, and its `replace:` keys set whole."""
    params, _ = reset_others(params or {}, preset, owned)
    preset = copy.deepcopy(preset)
    replace = preset.pop("replace", [])
    new = merged(params, preset)
    for dotted in replace:
        *parents, last = dotted.split(".")
        src, dst = preset, new
        for key in parents:
            src, dst = src[key], dst.setdefault(key, {})
        dst[last] = copy.deepcopy(src[last])
    return new


def _load(name: str, folder: Path) -> dict:
    """presets/<name>.yaml; a `base: <other preset>` key merges that preset under it first
    (the `replace:` lists of both apply)."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown preset {name!r}: {path} does not exist "
                        f"(available: {', '.join(available(folder)) or 'none'})")
    preset = yaml.safe_load(path.read_text()) or {}
    base = preset.pop("base", None)
    if not base:
        return preset
    under = _load(base, folder)
    replace = under.get("replace", []) + [k for k in preset.get("replace", []) if k not in under.get("replace", [])]
    out = merged(under, preset)
    if replace:
        out["replace"] = replace
    return out


def _set_roots(new: dict, preset: dict, root: str | None, ilsvrc2012_root: str | None) -> None:
    """fall2011 (pretrain.enabled): --root is the Fall 2011 folder, --ilsvrc2012-root the ILSVRC-2012
    one (data.root, and the validation images no pre-training image may duplicate); else --root is data.root."""
    absolute = lambda p: str(Path(p).expanduser().resolve())  # noqa: E731
    if not preset.get("pretrain", {}).get("enabled"):
        if ilsvrc2012_root is not None:
            raise UserError("--ilsvrc2012-root: only the fall2011 preset takes it (use --root)")
        if root is not None:
            new.setdefault("data", {})["root"] = absolute(root)
        return
    pdata = new["pretrain"].setdefault("data", {})
    if root is not None:
        pdata["root"] = absolute(root)
    if ilsvrc2012_root is not None:
        new.setdefault("data", {})["root"] = absolute(ilsvrc2012_root)
        pdata.setdefault("fall2011", {})["exclude_root"] = absolute(ilsvrc2012_root)
    for key, value in (("--root", pdata.get("root")), ("--ilsvrc2012-root", new["data"].get("root"))):
        if not value:
            raise UserError(f"preset with pre-training needs {key} PATH (Fall 2011 and ILSVRC-2012 folders)")
        if not Path(value).exists():
            raise UserError(f"{key} {value}: no such file or folder")


def apply_preset(name: str, folder: Path, params_path: Path, root: str | None,
                 ilsvrc2012_root: str | None = None, reset: list | None = None) -> dict:
    """Merge presets/<name>.yaml (and the data roots) into params_path; returns the new params.
    `reset`, if given, receives the keys another preset had set that went back to the paper's value."""
    preset = _load(name, folder)
    params = yaml.safe_load(params_path.read_text()) if params_path.is_file() else {}
    owned = owned_keys(folder)
    if reset is not None:
        reset += [k for k in reset_others(params or {}, preset, owned)[1] if k not in ROOT_KEYS]
    new = with_preset(params or {}, preset, owned)
    _set_roots(new, preset, root, ilsvrc2012_root)
    if new.get("data", {}).get("source", "synthetic") != "synthetic" and not new["data"].get("root"):
        raise UserError(f"preset {name!r} needs the dataset folder: pass --root PATH")
    if new["data"].get("root") and not Path(new["data"]["root"]).exists():
        raise UserError(f"--root {new['data']['root']}: no such file or folder")
    cfg = C.from_dict(new)
    C._check_cross_fields(cfg)  # the same checks every stage runs, before anything is written
    C._check_ablations(cfg)  # and the pre-training phases (pretrain.enabled)
    if params_path.is_file():
        shutil.copy2(params_path, params_path.with_name(params_path.name + ".bak"))
    atomic_write_text(params_path, f"# preset {name} applied by `harness preset` over the previous "
                      f"params ({params_path.name}.bak)\n" + yaml.safe_dump(new, sort_keys=False))
    return new
