"""The images on disk are part of what DVC keys `prepare` by (stage list_data, docs/data.md).

An ImageFolder root built from the real sample JPEGs, driven through the real `dvc` CLI: a class
added, a file touched, and the run-cache case (prepare with an extra class, change data.image_size,
prepare, remove the class, change the size back: DVC must not restore the dataset that had the
extra class).
"""

import copy
import json
import os
import shutil

import imagenet_fixtures as FX
import pytest
from repo_utils import ALWAYS_RUN, TINY, copy_repo, dvc, get_params, ran_stages, set_params, stale

pytestmark = pytest.mark.slow

EXTRA = "n09999999"  # a class folder the fixture does not have


def _manifest(repo):
    return json.loads((repo / "artifacts/data/manifest.json").read_text())


def _set_size(repo, size):
    params = get_params(repo)
    params["data"]["image_size"] = size
    set_params(repo, params)


def test_changed_images_rerun_prepare_and_the_run_cache_keys_on_them(tmp_path):
    FX.sample_dir()
    root = FX.make_imagefolder(tmp_path / "folder")
    patch = copy.deepcopy(TINY)
    patch["data"] = {"source": "imagefolder", "root": str(root), "image_size": 72, "shard_size": 8}
    repo = copy_repo(tmp_path / "repo", patch, tracking=False)
    out = dvc(repo, "repro", "prepare")
    assert f"Running stage '{ALWAYS_RUN}'" in out and "prepare" in ran_stages(out)
    first = _manifest(repo)
    assert len(first["classes"]) == 6 and first["counts"] == {"train": 15, "val": 6}
    assert ran_stages(dvc(repo, "repro", "prepare")) == set()  # nothing changed: nothing prepared

    # a class folder and two images added: listed, so status names prepare and repro prepares them
    for split, name in (("train", "a.JPEG"), ("val", "b.JPEG")):
        (root / split / EXTRA).mkdir()
        (root / split / EXTRA / name).write_bytes(FX.image_bytes(FX.WNIDS[0]))
    dvc(repo, "repro", ALWAYS_RUN)
    assert "prepare" in stale(repo), stale(repo)
    assert "prepare" in ran_stages(dvc(repo, "repro", "prepare"))
    assert EXTRA in _manifest(repo)["classes"] and _manifest(repo)["counts"] == {"train": 16, "val": 7}

    # the run-cache: prepared at 64 px with the extra class, then the class removed and 72 px back
    _set_size(repo, 64)
    assert "prepare" in ran_stages(dvc(repo, "repro", "prepare"))
    shutil.rmtree(root / "train" / EXTRA)
    shutil.rmtree(root / "val" / EXTRA)
    _set_size(repo, 72)
    dvc(repo, "repro", "prepare")
    back = _manifest(repo)
    assert EXTRA not in back["classes"] and back["counts"] == first["counts"]
    assert back["digest"] == first["digest"]  # the files are those of the first run: its dataset

    # a file touched (same bytes, new mtime): prepare runs again, not restored from the run-cache
    some = next((root / "train" / FX.WNIDS[0]).iterdir())
    st = some.stat()
    os.utime(some, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    out = dvc(repo, "repro", "prepare")
    assert "prepare" in ran_stages(out) and "Stage 'prepare' is cached" not in out, out[-2000:]
    assert _manifest(repo)["digest"] == first["digest"]
