"""Presets: the paper's recipe for a real dataset, merged into params.yaml in one command.

A preset (presets/<name>.yaml at the repository root) lists the keys it sets; every other key
keeps its params.yaml value. Its optional `replace:` list names dotted keys whose whole value the
preset sets instead of merging into (e.g. ablations.arms: the paper net's arms do not describe the
CIFAR-10 nets). The result is validated before params.yaml is replaced, and the
old file is kept as params.yaml.bak, so nothing is lost and `git diff params.yaml` shows the
switch.
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


def with_preset(params: dict, preset: dict) -> dict:
    """params with the preset's keys merged in, and its `replace:` keys set whole."""
    preset = copy.deepcopy(preset)
    replace = preset.pop("replace", [])
    new = merged(params or {}, preset)
    for dotted in replace:
        *parents, last = dotted.split(".")
        src, dst = preset, new
        for key in parents:
            src, dst = src[key], dst.setdefault(key, {})
        dst[last] = copy.deepcopy(src[last])
    return new


def apply_preset(name: str, folder: Path, params_path: Path, root: str | None) -> dict:
    """Merge presets/<name>.yaml (and data.root) into params_path; returns the new params."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown preset {name!r}: {path} does not exist "
                        f"(available: {', '.join(available(folder)) or 'none'})")
    preset = yaml.safe_load(path.read_text()) or {}
    params = yaml.safe_load(params_path.read_text()) if params_path.is_file() else {}
    new = with_preset(params or {}, preset)
    if root is not None:
        new.setdefault("data", {})["root"] = str(Path(root).expanduser().resolve())
    if new.get("data", {}).get("source", "synthetic") != "synthetic" and not new["data"].get("root"):
        raise UserError(f"preset {name!r} needs the dataset folder: pass --root PATH")
    if new["data"].get("root") and not Path(new["data"]["root"]).exists():
        raise UserError(f"--root {new['data']['root']}: no such file or folder")
    cfg = C.from_dict(new)
    C._check_cross_fields(cfg)  # the same checks every stage runs, before anything is written
    C._check_ablations(cfg)
    if params_path.is_file():
        shutil.copy2(params_path, params_path.with_name(params_path.name + ".bak"))
    atomic_write_text(params_path, f"# preset {name} applied by `harness preset` over the previous "
                      f"params ({params_path.name}.bak)\n" + yaml.safe_dump(new, sort_keys=False))
    return new
