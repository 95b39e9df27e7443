"""Building the cache: sources, bad files, atomic writes, idempotence, missing-cache message."""
import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from course_lib.core import datasets
from course_lib.core.data import load_cifar10
from tests.conftest import CLASSES, H, W


def plant_bad_files(root):
    """One file of each kind of bad input, in train/cat/; returns their names."""
    d = root / "train" / "cat"
    good = io.BytesIO()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(good, format="JPEG")
    (d / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notanimage.jpg").write_bytes(b"this is text, not a JPEG")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(d / "wrongsize.png")
    return {"truncated.jpg", "empty.jpg", "notanimage.jpg", "wrongsize.png"}


def test_bad_images_are_listed_by_path_skipped_and_counted(image_folder, tmp_path, capsys):
    bad = plant_bad_files(image_folder)
    out = datasets.build_cache(str(image_folder), tmp_path / "c.npz", size=(H, W))
    printed = capsys.readouterr().out
    cache = datasets.load_cache_file(out)
    skipped = {os.path.basename(s["path"]) for s in cache["provenance"]["skipped"]}
    assert skipped == bad
    for name in bad:
        assert f"skipped {image_folder / 'train' / 'cat' / name}" in printed
    assert "skipped: 4" in printed
    assert "empty file" in printed and "wrong size 10x10" in printed
    assert len(cache["train_y"]) == 4 * len(CLASSES)  # the good ones all kept
    assert cache["train_x"].shape[1:] == (3, H, W)


def test_per_class_counts_are_printed(image_folder, tmp_path, capsys):
    datasets.build_cache(str(image_folder), tmp_path / "c.npz", size=(H, W))
    assert "train: 12 images (cat=4, dog=4, frog=4)" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["tar.gz", "tar", "zip"])
def test_archives_give_the_same_content_as_the_directory(image_folder, tmp_path, kind):
    ref = datasets.load_cache_file(datasets.build_cache(str(image_folder), tmp_path / "dir.npz",
                                                        size=(H, W), log=lambda *_: None))
    archive = tmp_path / f"imgs.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in image_folder.rglob("*.png"):
                zf.write(p, "top/" + str(p.relative_to(image_folder)))
    else:
        with tarfile.open(archive, "w:gz" if kind == "tar.gz" else "w") as tf:
            tf.add(image_folder, arcname="top")
    got = datasets.load_cache_file(datasets.build_cache(str(archive), tmp_path / "a.npz",
                                                        size=(H, W), log=lambda *_: None))
    assert got["classes"] == list(CLASSES)
    for key in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(got[key], ref[key])
    assert got["provenance"]["source_sha256"] == datasets.sha256_file(archive)
    assert got["provenance"]["content_sha256"] == ref["provenance"]["content_sha256"]


def test_rerun_on_valid_cache_does_nothing_and_force_rebuilds(image_folder, tmp_path, capsys):
    out = datasets.build_cache(str(image_folder), tmp_path / "c.npz", size=(H, W))
    mtime = out.stat().st_mtime_ns
    datasets.build_cache(str(image_folder), out, size=(H, W))
    assert "already valid" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == mtime
    datasets.build_cache(str(image_folder), out, size=(H, W), force=True)
    assert out.stat().st_mtime_ns != mtime


def test_corrupt_cache_is_rebuilt_and_no_temp_file_is_left(image_folder, tmp_path):
    out = tmp_path / "c.npz"
    out.write_bytes(b"half a file")
    assert not datasets.cache_is_valid(out)
    datasets.build_cache(str(image_folder), out, size=(H, W), log=lambda *_: None)
    assert datasets.cache_is_valid(out)
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_failed_build_leaves_no_cache(image_folder, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(datasets.np, "savez", boom)
    with pytest.raises(OSError):
        datasets.build_cache(str(image_folder), tmp_path / "c.npz", size=(H, W), log=lambda *_: None)
    assert list(tmp_path.glob("c.npz*")) == []


def test_missing_cache_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        load_cifar10(cache_path=tmp_path / "nope.npz")


@pytest.mark.parametrize("damage", ["truncated", "not_a_zip", "other_npz"])
def test_damaged_cache_says_so_and_names_the_rebuild_command(image_folder, tmp_path, damage):
    out = datasets.build_cache(str(image_folder), tmp_path / "c.npz", size=(H, W), log=lambda *_: None)
    whole = out.read_bytes()
    if damage == "truncated":  # an interrupted copy: the zip directory at the end is missing
        out.write_bytes(whole[: len(whole) // 2])
    elif damage == "not_a_zip":
        out.write_bytes(b"<html>proxy error</html>")
    else:  # a valid .npz that is not the course's cache
        np.savez(out, x=np.zeros(3))
        out = out.with_suffix(".npz")
    with pytest.raises(datasets.DamagedCacheError, match="is damaged") as info:
        load_cifar10(cache_path=out)
    msg = str(info.value)
    assert str(out) in msg and "make data" in msg and "prepare_cifar10.py --source" in msg
    assert not datasets.cache_is_valid(out)  # and so ``make data`` rebuilds it without --force


def test_bad_source_says_what_to_pass(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hello")
    with pytest.raises(ValueError, match="--source download"):
        datasets.build_cache(str(f), tmp_path / "c.npz", log=lambda *_: None)


def test_prepare_script_cli_reports_errors_without_traceback(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "data_scripts" / "prepare_cifar10.py"
    r = subprocess.run([sys.executable, str(script), "--source", str(tmp_path / "missing"),
                        "--out", str(tmp_path / "c.npz")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
