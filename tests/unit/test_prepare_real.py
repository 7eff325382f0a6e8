"""Preparing real layouts (ILSVRC, ImageFolder, CIFAR-10 built from real JPEGs): shards,
labels from the devkit, determinism, corrupt files, and resume after a kill."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imagenet_fixtures as FX
import numpy as np
import pytest
from PIL import Image

from harness.config import DataConfig
from harness.data import imaging, shards
from harness.errors import UserError
from harness.prepare import writer

REPO = Path(__file__).resolve().parents[2]


def cfg_for(source, root, **kw):
    return DataConfig(**{"source": source, "root": str(root), "image_size": 72, "shard_size": 4, **kw})


@pytest.fixture(scope="module")
def ilsvrc2012(tmp_path_factory):
    FX.sample_dir()
    root = FX.make_ilsvrc2012(tmp_path_factory.mktemp("i12") / "ILSVRC2012", archives=True)
    out = root.parent / "prepared"
    manifest = writer.prepare(cfg_for("ilsvrc2012", root, encoding="jpeg"), out, workers=2,
                            work=root.parent / "work")
    return root, out, manifest


def test_ilsvrc2012_archives_prepare_with_devkit_ids(ilsvrc2012):
    root, out, m = ilsvrc2012
    n_train = sum(FX.TRAIN_COPIES.values())
    assert m["counts"] == {"train": n_train, "val": len(FX.VAL_WNIDS)}
    assert m["encoding"] == "jpeg" and m["skipped"] == []
    # class k is the wnid whose official ILSVRC2012_ID is k+1 (not sorted wnid order)
    by_id = sorted(FX.ILSVRC_IDS, key=FX.ILSVRC_IDS.get)
    assert m["classes"] == by_id
    val = shards.load_split(out, "val")
    assert val.labels.tolist() == [FX.ILSVRC_IDS[w] - 1 for w in FX.VAL_WNIDS]
    train = shards.load_split(out, "train")
    assert np.bincount(train.labels, minlength=6).tolist() == [FX.TRAIN_COPIES[w] for w in by_id]
    assert len(list((out / "train").glob("shard-*.jpegs"))) == -(-n_train // 4)


def test_stored_pixels_are_the_paper_resize_of_the_source(ilsvrc2012):
    """Val image 2 is the tench JPEG: shorter side to 72, central crop, JPEG q90."""
    _, out, _ = ilsvrc2012
    got = shards.load_split(out, "val").images(np.array([1]))[0]
    with Image.open(io.BytesIO(FX.image_bytes(FX.VAL_WNIDS[1]))) as im:
        src = np.asarray(im.convert("RGB"))
    w_, h_ = src.shape[1], src.shape[0]
    s = 72 / min(w_, h_)
    ref = np.asarray(Image.fromarray(src).resize((round(w_ * s), round(h_ * s)), Image.BILINEAR))
    top, left = (ref.shape[0] - 72) // 2, (ref.shape[1] - 72) // 2
    ref = ref[top:top + 72, left:left + 72].astype(float)
    mse = np.mean((got.astype(float) - ref) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 28  # resampler + JPEG q90 noise only


def test_mean_and_pca_are_of_the_stored_training_images(ilsvrc2012):
    _, out, _ = ilsvrc2012
    train = shards.load_split(out, "train")
    images = train.images(np.arange(len(train))).astype(np.float64)
    mean, pca = shards.load_stats(out)
    # computed before JPEG encoding: equal to the decoded shards up to q90 noise
    assert np.abs(mean - images.mean(0)).mean() < 1.5
    vals = np.linalg.eigvalsh(np.cov(images.reshape(-1, 3).T, bias=True))[::-1]
    np.testing.assert_allclose(pca["eigenvalues"], vals, rtol=0.05)


def test_same_input_gives_byte_identical_shards_for_any_worker_count(ilsvrc2012, tmp_path):
    root, out, m = ilsvrc2012
    again = writer.prepare(cfg_for("ilsvrc2012", root, encoding="jpeg"), tmp_path / "p", workers=1,
                         work=root.parent / "work")
    assert again["digest"] == m["digest"]
    for f in sorted((out / "train").glob("shard-*")):
        assert f.read_bytes() == (tmp_path / "p" / "train" / f.name).read_bytes()


def test_a_second_prepare_reuses_every_verified_shard(ilsvrc2012, capsys):
    root, out, m = ilsvrc2012
    shard = out / "train" / "shard-00000.jpegs"
    before = shard.stat().st_mtime_ns
    again = writer.prepare(cfg_for("ilsvrc2012", root, encoding="jpeg"), out, workers=1, work=root.parent / "work")
    assert shard.stat().st_mtime_ns == before and again["digest"] == m["digest"]
    # a damaged shard fails verification and is redone, giving the same bytes back
    good = shard.read_bytes()
    shard.write_bytes(good[:-10] + b"0123456789")
    again = writer.prepare(cfg_for("ilsvrc2012", root, encoding="jpeg"), out, workers=1, work=root.parent / "work")
    assert shard.read_bytes() == good and again["digest"] == m["digest"]


@pytest.mark.parametrize("archives", [True, False])
def test_ilsvrc2010_has_a_labelled_test_split(tmp_path, archives):
    FX.sample_dir()
    root = FX.make_ilsvrc2010(tmp_path / "ILSVRC2010", archives=archives)
    m = writer.prepare(cfg_for("ilsvrc2010", root), tmp_path / "p", workers=1, work=tmp_path / "w")
    assert m["counts"]["test"] == len(FX.TEST_WNIDS) and m["encoding"] == "raw"
    test = shards.load_split(tmp_path / "p", "test")
    assert test.labels.tolist() == [FX.ILSVRC_IDS[w] - 1 for w in FX.TEST_WNIDS]


def test_imagefolder_and_cifar10_prepare(tmp_path):
    FX.sample_dir()
    root = FX.make_imagefolder(tmp_path / "folder")
    m = writer.prepare(cfg_for("imagefolder", root), tmp_path / "p1", workers=1, work=tmp_path / "w")
    assert m["classes"] == sorted(FX.WNIDS) and m["counts"]["val"] == len(FX.WNIDS)
    batches = FX.make_cifar10(tmp_path / "cifar", as_tar=False)
    m = writer.prepare(cfg_for("cifar10", batches, image_size=64), tmp_path / "p2", workers=1, work=tmp_path / "w")
    assert m["classes"] == list(FX.CIFAR_LABEL_NAMES)
    assert m["counts"] == {"train": 5 * FX.CIFAR_PER_BATCH, "val": FX.CIFAR_PER_BATCH}
    val = shards.load_split(tmp_path / "p2", "val")
    assert val.labels.tolist() == [FX.cifar_label(0, r) for r in range(FX.CIFAR_PER_BATCH)]
    # a 32x32 CIFAR image upscaled to 64: each source pixel becomes a smooth 2x2 area
    assert val.images(np.array([0])).shape == (1, 64, 64, 3)


# ------------------------------------------------------------------ what real data contains


def corrupt_folder(root: Path) -> dict[str, str]:
    """An ImageFolder with every kind of bad file; returns {file: expected reason word}."""
    FX.make_imagefolder(root)
    wnid = FX.WNIDS[0]
    good = FX.image_bytes(wnid)
    d = root / "train" / wnid
    grey = io.BytesIO()
    Image.open(io.BytesIO(good)).convert("CMYK").save(grey, "JPEG")
    (d / "cmyk.JPEG").write_bytes(grey.getvalue())  # fine: becomes RGB
    png = io.BytesIO()
    Image.open(io.BytesIO(good)).save(png, "PNG")
    (d / "png_named.JPEG").write_bytes(png.getvalue())  # fine: decoded as PNG
    bad = {"truncated.JPEG": (good[: len(good) // 3], "JPEG"),
           "zero.JPEG": (b"", "zero-byte|empty"),
           "text.JPEG": (b"<html>404 not found</html>\n" * 10, "not an image"),
           "garbage.JPEG": (b"\xff\xd8" + os.urandom(300), "JPEG")}
    for name, (content, _) in bad.items():
        (d / name).write_bytes(content)
    return {name: reason for name, (_, reason) in bad.items()}


def test_corrupt_files_fail_the_stage_naming_them(tmp_path):
    FX.sample_dir()
    bad = corrupt_folder(tmp_path / "folder")
    with pytest.raises(UserError) as err:
        writer.prepare(cfg_for("imagefolder", tmp_path / "folder", max_bad_fraction=0.0),
                     tmp_path / "p", workers=1, work=tmp_path / "w")
    msg = str(err.value)
    for name in bad:
        assert name in msg
    assert "data.max_bad_fraction" in msg
    assert not (tmp_path / "p" / "manifest.json").exists()  # no result that looks complete


def test_corrupt_files_are_skipped_and_listed_with_reasons(tmp_path):
    FX.sample_dir()
    bad = corrupt_folder(tmp_path / "folder")
    m = writer.prepare(cfg_for("imagefolder", tmp_path / "folder", max_bad_fraction=0.5),
                     tmp_path / "p", workers=1, work=tmp_path / "w")
    skipped = {Path(s["file"]).name: s["reason"] for s in m["skipped"]}
    assert set(skipped) == set(bad)
    import re
    for name, reason in bad.items():
        assert re.search(reason, skipped[name]), (name, skipped[name])
    n_good_train = sum(FX.TRAIN_COPIES.values()) + 2  # + the CMYK and the PNG-named files
    assert m["counts"]["train"] == n_good_train


def test_gzipped_jpeg_is_decoded():
    import gzip
    arr = imaging.load_fitted(gzip.compress(FX.image_bytes(FX.WNIDS[0])), 32)
    assert arr.shape == (32, 32, 3)


# ------------------------------------------------------------------ kill and resume


def test_killed_prepare_resumes_and_matches_an_uninterrupted_run(tmp_path):
    """SIGKILL after the first shards are written; the rerun reuses them (not redone) and
    the result equals an uninterrupted preparation byte for byte."""
    FX.sample_dir()
    root = FX.make_imagefolder(tmp_path / "folder")
    params = tmp_path / "params.yaml"
    import yaml
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["data"].update({"source": "imagefolder", "root": str(root), "image_size": 128, "shard_size": 1,
                         "encoding": "jpeg"})
    base["tracking"]["uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    params.write_text(yaml.safe_dump(base))
    out = tmp_path / "p"
    parts = tmp_path / "p.partial" / "train" / "parts"  # the preparation in progress (resume records)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_PREPARE_DELAY_S": "0.3"}
    cmd = [sys.executable, str(REPO / "pipelines" / "prepare.py"), "--params", str(params),
           "--out", str(out), "--work", str(tmp_path / "w"), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while len(list(parts.glob("*.json"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(parts.glob("*.json"))
    assert 3 <= len(done) < sum(FX.TRAIN_COPIES.values()), "kill point missed"
    assert not (out / "manifest.json").exists()
    shards = [parts.parent / f"{rec.stem}.jpegs" for rec in done]  # parts/shard-k.json records shard-k.jpegs
    kept = {p.name: p.stat().st_mtime_ns for p in shards}
    env.pop("HARNESS_PREPARE_DELAY_S")
    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(done)} finished shard(s) reused" in rerun.stderr + rerun.stdout
    for name, mtime in kept.items():  # finished shards kept, not redone: moved into the output as they were
        assert (out / "train" / name).stat().st_mtime_ns == mtime
    assert not (tmp_path / "p.partial").exists()  # the staging folder is gone once the output is complete
    fresh = subprocess.run([*cmd[:-6], "--out", str(tmp_path / "fresh"), "--work", str(tmp_path / "w"),
                            "--workers", "2"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    resumed = json.loads((out / "manifest.json").read_text())
    assert resumed["digest"] == json.loads((tmp_path / "fresh" / "manifest.json").read_text())["digest"]


def test_loader_batches_do_not_depend_on_worker_count(ilsvrc2012):
    """Augmentation draws come from (seed, epoch, image index): 0 or 2 workers, same tensors."""
    import torch

    from harness.data import transforms
    _, out, _ = ilsvrc2012
    mean, pca = shards.load_stats(out)
    split = shards.load_split(out, "train")
    view = transforms.TrainView(split, transforms.Normaliser(mean, 1 / 64), pca, 64, seed=5, pca_std=0.1)
    view.set_epoch(3)
    order = np.random.default_rng(0).permutation(len(split))
    batches = [order[i:i + 4] for i in range(0, len(order), 4)]
    runs = [[x for x, _ in transforms.batch_loader(view, batches, w)] for w in (0, 2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_dct_scaling_is_recorded_and_byte_identical_for_any_worker_count(ilsvrc2012, tmp_path):
    """data.dct_scaling: at 72 px every sample JPEG decodes at 1/2-1/8 scale, so the shards differ
    from the exact ones; the manifest says so, and 1 or 2 workers write the same bytes."""
    root, _, exact = ilsvrc2012
    cfg = cfg_for("ilsvrc2012", root, encoding="jpeg", dct_scaling=True)
    one = writer.prepare(cfg, tmp_path / "one", workers=1, work=root.parent / "work")
    two = writer.prepare(cfg, tmp_path / "two", workers=2, work=root.parent / "work")
    assert one["dct_scaling"] is True and exact["dct_scaling"] is False
    assert one["digest"] == two["digest"] != exact["digest"]


def test_a_resume_redoes_a_shard_whose_source_changed_with_the_same_size_and_mtime(tmp_path):
    """A JPEG rewritten in place with other pixels, padded to its old size, its mtime set
    back (`touch -r`): the fingerprint (name, size, mtime) cannot tell, the recorded sha256 of the
    source can. The resumed preparation then equals a clean one, not the stale one."""
    FX.sample_dir()
    root = FX.make_imagefolder(tmp_path / "folder")
    cfg = cfg_for("imagefolder", root, encoding="jpeg")
    stale = writer.prepare(cfg, tmp_path / "p", workers=1, work=tmp_path / "w")  # parts/ stay: resumable
    victim = sorted((root / "train" / FX.WNIDS[0]).iterdir())[0]
    st = victim.stat()
    other = io.BytesIO()
    Image.open(io.BytesIO(FX.image_bytes(FX.WNIDS[4]))).convert("RGB").resize((300, 200)).save(other, "JPEG")
    data = other.getvalue()
    assert len(data) < st.st_size
    victim.write_bytes(data + b"\0" * (st.st_size - len(data)))  # bytes after EOI are ignored by decoders
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert victim.stat().st_size == st.st_size and victim.stat().st_mtime_ns == st.st_mtime_ns
    resumed = writer.prepare(cfg, tmp_path / "p", workers=1, work=tmp_path / "w")
    clean = writer.prepare(cfg, tmp_path / "clean", workers=1, work=tmp_path / "w")
    assert clean["digest"] != stale["digest"]
    assert resumed["digest"] == clean["digest"]
    rec = json.loads((tmp_path / "p" / "train" / "parts" / "shard-00000.json").read_text())
    assert rec["sources"][0] == writer.file_sha256(victim)  # the record keeps each source's sha256
