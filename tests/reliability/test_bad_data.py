"""Bad input data through the real prepare entry point: a clear message naming the problem,
a non-zero exit, no traceback, and no manifest that would make the data look prepared.

Part of the reliability corpus (make reliability, reports/reliability.json); the params/tracking/system cases are elsewhere.
"""

import os
import subprocess
import sys
from pathlib import Path

import imagenet_fixtures as FX
import pytest
import yaml

pytestmark = pytest.mark.slow  # real subprocesses, servers or browsers; `make test` runs them

REPO = Path(__file__).resolve().parents[2]


def run_prepare(tmp_path: Path, source: str, root: Path, **data) -> subprocess.CompletedProcess:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update({"source": source, "root": str(root), "image_size": 64, "shard_size": 8, **data})
    params["model"]["input_size"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    # untracked (no MLflow store or import: seconds less per run): these tests read the stage's
    # messages and outputs only; prepare's MLflow run is tested by the pipeline's tests
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_TRACKING": "off"}
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "prepare.py"), "--params",
                           str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), "--workers", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    err = proc.stderr
    for needle in needles:
        assert needle in err, (needle, err[-3000:])


def folder_with(tmp_path: Path, name: str, content: bytes) -> Path:
    root = FX.make_imagefolder(tmp_path / "folder")
    (root / "train" / FX.WNIDS[1] / name).write_bytes(content)
    return root


@pytest.fixture(autouse=True)
def _sample():
    FX.sample_dir()


@pytest.mark.parametrize("name,make,reason", [
    ("truncated.JPEG", lambda good: good[: len(good) // 3], "JPEG"),
    ("corrupt.JPEG", lambda good: good[:200] + bytes(range(256)) * 40, "JPEG"),
    ("empty.JPEG", lambda good: b"", "empty"),
    ("webpage.JPEG", lambda good: b"<html><body>Moved</body></html>\n" * 30, "not an image"),
], ids=["truncated_jpeg", "corrupt_jpeg", "zero_byte_file", "non_image_file"])
def test_unusable_image_files_fail_naming_the_file(tmp_path, name, make, reason):
    root = folder_with(tmp_path, name, make(FX.image_bytes(FX.WNIDS[1])))
    proc = run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.0)
    assert_user_error(proc, name, reason, "data.max_bad_fraction")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_nonexistent_data_root(tmp_path):
    proc = run_prepare(tmp_path, "ilsvrc2012", tmp_path / "no-such-folder")
    assert_user_error(proc, "no-such-folder")


def test_missing_devkit(tmp_path):
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=False)
    import shutil
    shutil.rmtree(root / "ILSVRC2012_devkit_t12")
    assert_user_error(run_prepare(tmp_path, "ilsvrc2012", root), "devkit")


def test_class_folder_unknown_to_the_devkit(tmp_path):
    """A mislabelled class: images filed under a wnid the devkit does not list."""
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=False)
    (root / "train" / FX.WNIDS[0]).rename(root / "train" / "n99999999")
    assert_user_error(run_prepare(tmp_path, "ilsvrc2012", root), "n99999999")


def test_ground_truth_that_does_not_match_the_validation_images(tmp_path):
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=False)
    gt = root / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("\n".join(gt.read_text().split()[:-1]) + "\n")  # one label short
    assert_user_error(run_prepare(tmp_path, "ilsvrc2012", root), "ground_truth")


def test_ground_truth_id_out_of_range(tmp_path):
    """A mislabelled validation image: an ILSVRC id that is no class."""
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=False)
    gt = root / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
    lines = gt.read_text().split()
    gt.write_text("\n".join(["1001"] + lines[1:]) + "\n")
    assert_user_error(run_prepare(tmp_path, "ilsvrc2012", root), "1001")


def test_missing_class_folder_in_validation(tmp_path):
    """ImageFolder: a validation class that has no training folder."""
    root = FX.make_imagefolder(tmp_path / "folder")
    (root / "train" / FX.WNIDS[2]).rename(tmp_path / "moved-away")
    assert_user_error(run_prepare(tmp_path, "imagefolder", root), FX.WNIDS[2])


def test_archive_with_a_member_escaping_the_folder(tmp_path):
    import io
    import tarfile
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = FX.image_bytes(FX.WNIDS[0])
        info = tarfile.TarInfo("../../evil.JPEG")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (root / "ILSVRC2012_img_val.tar").write_bytes(buf.getvalue())
    assert_user_error(run_prepare(tmp_path, "ilsvrc2012", root), "evil.JPEG")
    assert not list(tmp_path.rglob("evil.JPEG"))


# ------------------------------------------------------------------ what a real tree holds


def bomb_png(side: int = 40000) -> bytes:
    """A real, decodable PNG of side x side 1-bit pixels (1.6 gigapixels, about 200 KB): a
    decompression bomb that Pillow would expand to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + one bit per pixel
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_skipped_and_named_with_its_size(tmp_path):
    """A 40000 x 40000 PNG saved as .JPEG: skipped within data.max_bad_fraction, listed with its
    size; above it, exit 2 naming the file (it used to end in a worker's traceback, exit 1)."""
    bomb = bomb_png()
    root = folder_with(tmp_path, "bomb.JPEG", bomb)
    proc = run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    (skipped,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"]
    assert skipped["path"] == str(root / "train" / FX.WNIDS[1] / "bomb.JPEG")
    assert "too large" in skipped["reason"] and "1600000000 pixels" in skipped["reason"]
    assert f"{len(bomb):,} bytes" in skipped["reason"]
    proc = run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.0)
    assert_user_error(proc, str(root / "train" / FX.WNIDS[1] / "bomb.JPEG"), "too large", "data.max_bad_fraction")


def test_unusable_files_are_named_by_a_path_that_exists(tmp_path):
    """Files the listing refuses are named by their real path, not by a `listing/` pseudo-path."""
    root = folder_with(tmp_path, "notes.txt", b"not an image")
    proc = run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.0)
    path = root / "train" / FX.WNIDS[1] / "notes.txt"
    assert_user_error(proc, f"{path}: not an image file")
    assert "listing/" not in proc.stderr and path.is_file()


def test_an_empty_class_folder_is_not_an_unusable_image(tmp_path):
    root = FX.make_imagefolder(tmp_path / "folder")
    (root / "train" / "n09999999").mkdir()
    proc = run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["skipped"] == [] and m["empty_classes"] == ["n09999999"] and "n09999999" in m["classes"]
    assert "class 'n09999999' has no usable training image" in proc.stderr


def test_a_class_folder_name_with_a_newline_is_refused(tmp_path):
    root = FX.make_imagefolder(tmp_path / "folder")
    (root / "train" / FX.WNIDS[0]).rename(root / "train" / "tench\nfish")
    proc = run_prepare(tmp_path, "imagefolder", root)
    assert_user_error(proc, "'tench\\nfish'", "control character", "rename the folder")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_report_names_skipped_files_and_empty_classes(tmp_path):
    """The manifest of a real preparation, through the report's scope section."""
    import json
    from dataclasses import fields

    from harness.report.render import Doc
    from harness.report.sections import ReportInputs, scope

    root = folder_with(tmp_path, "notes.txt", b"not an image")
    (root / "train" / "n09999999").mkdir()
    assert run_prepare(tmp_path, "imagefolder", root, max_bad_fraction=0.5).returncode == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    inp = ReportInputs(**{f.name: None for f in fields(ReportInputs)} | {
        "manifest": manifest, "compare": {"counts": {"claims_total": 1, "claims_tested": 0, "claims_untested": 1}}})
    doc = Doc()
    scope(doc, inp)
    text = repr(doc.blocks)
    assert "notes.txt" in text and "not an image file" in text
    assert "1 class(es) have no usable training image: n09999999." in text
