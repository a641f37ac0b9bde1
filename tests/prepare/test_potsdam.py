"""The real-Potsdam source: official archives, unsafe members, label hygiene, the stages on it."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from aerialseg.core.config.data_params import PotsdamParams
from aerialseg.core.errors import DataError
from aerialseg.core.io import read_rgb, write_rgb
from aerialseg.core.names import SceneFiles
from aerialseg.core.palette import index_to_rgb
from aerialseg.prepare.sources.archives import check_free_space, extract_members, list_members
from aerialseg.prepare.sources.potsdam import check_tile_ids, potsdam_release
from aerialseg.prepare.sources.release import collect_release

from conftest import CLASSES, ROOT

SIZE = 48


def _tif_bytes(tmp: Path, rgb: np.ndarray) -> bytes:
    path = tmp / "scratch.tif"
    write_rgb(path, rgb)
    return path.read_bytes()


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    index = np.repeat(np.repeat(rng.integers(0, 6, (6, 6)), 8, 0), 8, 1).astype(np.uint8)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return image, index


def make_release(folder: Path, tiles: dict[str, str], skip_label: tuple[str, ...] = ()) -> Path:
    """The three official zips, in the official folder structure, for the given tiles.

    ``tiles`` maps a tile id to its label's condition: clean, noisy (near-palette colours,
    as compression leaves them) or overlay (the label blended over the image, like 4_12).
    """
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".scratch"
    scratch.mkdir()
    with zipfile.ZipFile(folder / "2_Ortho_RGB.zip", "w") as rgb, \
            zipfile.ZipFile(folder / "5_Labels_all.zip", "w") as full, \
            zipfile.ZipFile(folder / "5_Labels_all_noBoundary.zip", "w") as noboundary:
        for seed, (tile_id, condition) in enumerate(tiles.items()):
            image, index = _scene(seed)
            label = index_to_rgb(index, CLASSES.colours)
            if condition == "noisy":
                noise = np.random.default_rng(seed).integers(-6, 7, label.shape)
                label = np.clip(label.astype(int) + noise, 0, 255).astype(np.uint8)
            elif condition == "overlay":
                label = ((label.astype(int) + image) // 2).astype(np.uint8)
            rgb.writestr(f"2_Ortho_RGB/top_potsdam_{tile_id}_RGB.tif", _tif_bytes(scratch, image))
            rgb.writestr(f"2_Ortho_RGB/top_potsdam_{tile_id}_RGB.tfw", "0.05\n0\n0\n-0.05\n366000.025\n5808000.975\n")
            if tile_id not in skip_label:
                full.writestr(f"top_potsdam_{tile_id}_label.tif", _tif_bytes(scratch, label))
            boundary = np.where(np.arange(SIZE)[:, None] % 8 == 0, 255, index).astype(np.uint8)
            eroded = index_to_rgb(boundary, CLASSES.colours)
            noboundary.writestr(f"top_potsdam_{tile_id}_label_noBoundary.tif", _tif_bytes(scratch, eroded))
    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    return folder


def collect_tiles(source: Path, destination: Path, tiles: list[str], **release) -> list[str]:
    """What download does for data.source potsdam (the default RGB release, or ``release``'s options)."""
    check_tile_ids(tiles)
    params = PotsdamParams(path=str(source), url=(), sha256=(), train=(), val=(), test=(),
                           **{"bands": "RGB", "ndsm": False, **release})
    return collect_release(source, destination, tiles, potsdam_release(params))


def _files_below(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_collects_only_the_requested_tiles_from_the_official_zips(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean", "2_11": "clean", "2_12": "clean"})
    out = tmp_path / "raw"
    assert collect_tiles(release, out, ["2_10", "2_11"]) == []  # nothing to note
    files = SceneFiles(out, "2_11")
    assert all(p.is_file() for p in files.required() + [files.world])
    assert read_rgb(files.image).shape == (SIZE, SIZE, 3)
    assert not any("2_12" in name for name in _files_below(out))


def test_extracted_folders_work_too(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean"})
    for archive in release.glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(release / archive.stem)
        archive.unlink()
    collect_tiles(release, tmp_path / "raw", ["2_10"])
    assert SceneFiles(tmp_path / "raw", "2_10").label_noboundary.is_file()


def test_image_without_label_names_the_tile_and_archive(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean", "3_12": "clean"}, skip_label=("3_12",))
    with pytest.raises(DataError, match=r"Potsdam scene 3_12 has an image but no label top_potsdam_3_12_label.tif "
                                        r"\(expected as 5_Labels_all.zip: top_potsdam_3_12_label.tif, or extracted; "
                                        r"is 5_Labels_all.zip there\?\)$"):
        collect_tiles(release, tmp_path / "raw", ["2_10", "3_12"])


def test_files_are_named_by_scene_id_and_their_origins_recorded(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean"})
    out = tmp_path / "raw"
    collect_tiles(release, out, ["2_10"])
    assert sorted(p.name for p in out.iterdir()) == ["2_10_image.tfw", "2_10_image.tif", "2_10_label.tif",
                                                     "2_10_label_noboundary.tif", "sources.json"]
    origins = json.loads((out / "sources.json").read_text())
    assert origins["2_10_label_noboundary.tif"].endswith("5_Labels_all_noBoundary.zip: member "
                                                         "top_potsdam_2_10_label_noBoundary.tif")


def test_a_scene_id_that_is_no_potsdam_tile_is_refused_in_one_line(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean"})
    with pytest.raises(DataError, match=r"^data.potsdam: 'area1' is not a Potsdam tile id \(row_column, like 2_10\)$"):
        collect_tiles(release, tmp_path / "raw", ["2_10", "area1"])
    assert not (tmp_path / "raw").exists()


def test_missing_tile_and_missing_archives_are_named(tmp_path):
    release = make_release(tmp_path / "release", {"2_10": "clean"})
    with pytest.raises(DataError, match=r"scene 7_7 has no image top_potsdam_7_7_RGB.tif"):
        collect_tiles(release, tmp_path / "raw", ["2_10", "7_7"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no Potsdam archives \(2_Ortho_RGB.zip, 5_Labels_all.zip"):
        collect_tiles(tmp_path / "empty", tmp_path / "raw", ["2_10"])
    with pytest.raises(DataError, match="data.potsdam.path is not a folder"):
        collect_tiles(tmp_path / "nowhere", tmp_path / "raw", ["2_10"])


def _add_zip_member(archive: Path, name: str, data: bytes = b"gotcha", symlink: bool = False) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink"])
def test_unsafe_zip_members_refuse_the_archive_and_write_nothing(tmp_path, case):
    release = make_release(tmp_path / "data" / "release", {"2_10": "clean"})
    archive = release / "5_Labels_all.zip"
    outside = tmp_path / "evil.txt"
    name, expected = {
        "dotdot": ("../../../evil.txt", "points outside the archive"),
        "absolute": (str(outside), "has an absolute path"),
        "symlink": ("top_potsdam_2_10_label_link.tif", "is a symbolic link"),
    }[case]
    _add_zip_member(archive, name, b"/etc/passwd" if case == "symlink" else b"gotcha", symlink=case == "symlink")
    out = tmp_path / "data" / "raw"
    with pytest.raises(DataError, match=f"5_Labels_all.zip: refused: member .* {expected}"):
        collect_tiles(release, out, ["2_10"])
    assert not outside.exists()
    assert not out.exists() or not _files_below(out)
    assert {p.name for p in tmp_path.iterdir()} == {"data"}
    assert {p.name for p in (tmp_path / "data").iterdir()} <= {"release", "raw"}


def test_unsafe_tar_members_are_refused(tmp_path):
    archive = tmp_path / "labels.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        link = tarfile.TarInfo("top_potsdam_2_10_label.tif")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(DataError, match="refused: member 'top_potsdam_2_10_label.tif' is a link"):
        list_members(archive)
    archive = tmp_path / "slip.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("../slip.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DataError, match="points outside the archive"):
        list_members(archive)


def test_corrupt_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "2_Ortho_RGB.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="2_Ortho_RGB.zip: not a readable archive"):
        list_members(bad)


def test_free_space_is_checked_before_extracting(tmp_path):
    with pytest.raises(DataError, match=r"not enough free disk space: extracting needs .* GB free"):
        check_free_space(tmp_path / "raw", needed=10**18)
    release = make_release(tmp_path / "release", {"2_10": "clean"})
    members = list_members(release / "5_Labels_all.zip")
    assert [p.name for p in extract_members(members, tmp_path / "flat")] == ["top_potsdam_2_10_label.tif"]


# --- the download, resize and encode stages on a Potsdam-style release ---------------------------

def _workspace(tmp_path: Path, train: list[str], exclude: list[str]) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="potsdam", exclude=exclude)
    params["data"]["potsdam"].update(path="release", train=train, val=["2_11"], test=["2_13"])
    params["data"]["folder"]["path"] = "release"  # download depends on every folder, whichever source is active
    params["data"]["vaihingen"]["path"] = "release"
    params["report"]["gallery_scene"] = "2_13"
    params["resize"]["gsd"] = 0.1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_release(root / "release", {"2_10": "clean", "2_11": "noisy", "2_13": "clean", "4_12": "overlay"})
    return root


def _stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_stages_snap_noise_report_it_and_skip_the_excluded_overlay(tmp_path):
    root = _workspace(tmp_path, train=["2_10", "4_12"], exclude=["4_12"])
    for name in ("download", "resize", "encode_masks"):
        result = _stage(root, name)
        assert result.returncode == 0, result.stderr[-2000:]
    assert not (root / "data/raw/4_12_image.tif").exists()
    assert (root / "data/resized/2_10_image.tfw").is_file()
    report = json.loads((root / "metrics/data_report.json").read_text())
    assert set(report["tiles"]) == {"2_10", "2_11", "2_13"}
    noisy = report["tiles"]["2_11"]["full"]
    assert noisy["snapped"] > 0 and noisy["off_palette"] == 0
    assert report["tiles"]["2_10"]["full"]["snapped"] == 0
    shares = report["tiles"]["2_10"]["full"]["class_share"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-5) and len(shares) == 6
    assert "near-palette pixels snapped" in result.stdout


def test_overlay_label_stops_encoding_with_the_tile_and_share_unless_excluded(tmp_path):
    root = _workspace(tmp_path, train=["2_10", "4_12"], exclude=[])
    for name in ("download", "resize"):
        assert _stage(root, name).returncode == 0
    result = _stage(root, "encode_masks")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("encode_masks: error: ") and "scene 4_12:" in line
    assert "% of pixels have colours that are no class's" in line
    assert 'add "4_12" to data.exclude' in line
    # the file the user can fix (the archive member), and the param that would tolerate it
    assert line.startswith("encode_masks: error: release/5_Labels_all.zip: member ") and \
        "top_potsdam_4_12_label.tif (as data/resized/4_12_label.tif): scene 4_12" in line
    assert "more than encode.max_offpalette = " in line and "raise encode.max_offpalette" in line
    assert not (root / "data/masks").exists() and not (root / "metrics/data_report.json").exists()


def _dvc_project(root: Path) -> dict:
    """Make a workspace a git + DVC project running this checkout's stages; the environment to run it."""
    import shutil

    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True, env=env, capture_output=True)
    return env


def _stale(root: Path, env: dict) -> dict:
    result = subprocess.run(["dvc", "status", "--json", "download"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300, check=True)
    return json.loads(result.stdout or "{}")


def test_a_replaced_added_or_removed_archive_makes_download_stale(tmp_path):
    root = _workspace(tmp_path, train=["2_10"], exclude=[])
    env = _dvc_project(root)
    repro = subprocess.run(["dvc", "repro", "download"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=300)
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    assert _stale(root, env) == {}
    # a corrected label: the same archive name, other contents
    make_release(tmp_path / "fixed", {"2_13": "clean", "2_10": "clean", "2_11": "noisy"})
    (root / "release/5_Labels_all.zip").write_bytes((tmp_path / "fixed/5_Labels_all.zip").read_bytes())
    changed = _stale(root, env)["download"]
    assert {"changed deps": {"release": "modified"}} in changed
    assert subprocess.run(["dvc", "repro", "download"], cwd=root, env=env, capture_output=True).returncode == 0
    assert _stale(root, env) == {}
    (root / "release/extra_tile.tif").write_bytes(b"new")  # an added file
    assert "download" in _stale(root, env)
    (root / "release/extra_tile.tif").unlink()
    assert _stale(root, env) == {}
    (root / "release/5_Labels_all_noBoundary.zip").unlink()  # a removed archive
    assert "download" in _stale(root, env)
