"""aerialseg predict under faults: a full disk during each GIS write, broken outputs of an earlier
run, a kill mid-write, a concurrent run on the same folder, a bad image in a batch, no scheduler.

The disk is filled for real where the test may mount a small tmpfs (root), and with a
file-size limit (RLIMIT_FSIZE, the same EFBIG/short-write path through libtiff and SQLite)
elsewhere. Runs under a fault, and the kills, are processes of their own; the clean runs
and reruns around them go through ``main()`` in the test's process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from aerialseg.core.atomic import is_temporary
from aerialseg.core.io import read_rgb

from conftest import FIXTURES

BASE = ["--window", "64", "--tta", "none", "--backend", "keras"]
PREDICT = ("import resource, signal, sys\n"
           "limit = int(sys.argv[1])\n"
           "if limit:\n"
           "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
           "from aerialseg.cli import main\n"
           "sys.exit(main(['predict', *sys.argv[2:]]))\n")


def predict(*args: str, file_size_limit: int = 0, timeout: int = 300) -> subprocess.CompletedProcess:
    """``aerialseg predict ARGS`` in a process of its own, optionally under a file-size limit."""
    return subprocess.run([sys.executable, "-c", PREDICT, str(file_size_limit), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def predict_here(capsys, *args) -> subprocess.CompletedProcess:
    """``aerialseg predict ARGS`` through ``main()`` in this process, for the runs whose process is
    not what the test is about (no TensorFlow start-up each); the same exit code and stderr."""
    capsys.readouterr()
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp("faults")
    tiny_checkpoint(folder / "model.keras", depth=2, base_filters=4, seed=3)
    rgb = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")
    images = folder / "images"
    images.mkdir()
    for i, (y, x) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256), (128, 128)]):
        write_orthophoto(images / f"tile_{i}.tif", rgb[y:y + 256, x:x + 256])
    write_orthophoto(folder / "whole.tif", rgb)
    return folder


def write_orthophoto(path: Path, rgb: np.ndarray) -> None:
    profile = {"driver": "GTiff", "width": rgb.shape[1], "height": rgb.shape[0], "count": 3, "dtype": "uint8",
               "crs": "EPSG:25833", "transform": rasterio.Affine(0.4, 0, 366_000, 0, -0.4, 5_808_000),
               "compress": "lzw", "tiled": True, "blockxsize": 128, "blockysize": 128}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))


def contents(path: Path):
    """What a GIS reads from an output: a GeoTIFF's pixels (as bytes) and georeference, a GeoPackage's
    features."""
    if path.suffix in (".xml", ".qml"):  # a class map's category names (GDAL, QGIS) and QGIS style
        return path.read_text()
    if path.suffix == ".gpkg":
        with fiona.open(path) as layer:
            return layer.crs.to_string(), [(dict(f.properties), f.geometry["coordinates"]) for f in layer]
    with rasterio.open(path) as src:
        pixels = src.read()
        return pixels.shape, pixels.tobytes(), src.crs, src.transform, src.overviews(1), src.colorinterp


def outputs_of(folder: Path) -> dict[str, object]:
    return {p.name: contents(p) for p in sorted(folder.iterdir()) if not is_temporary(p.name)}


@contextlib.contextmanager
def small_disk(folder: Path, size: int):
    """A tmpfs of ``size`` bytes at ``folder`` if this process may mount one; yields whether it did."""
    folder.mkdir(parents=True)
    mounted = (os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


# culprit: (options, outputs in the order they are written; the last is the one the disk fills on)
CASES = {
    "class GeoTIFF": ([], ["whole.tif"]),
    "COG": (["--cog"], ["whole.tif"]),
    "probability GeoTIFF": (["--probabilities"], ["whole.tif", "whole_probabilities.tif"]),
    "GeoPackage": (["--vector"], ["whole.tif", "whole.gpkg"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_full_disk_during_each_write_publishes_nothing_and_a_rerun_completes(files, tmp_path, case, capsys):
    options, written = CASES[case]
    clean = tmp_path / "clean"
    done = predict_here(capsys, files / "model.keras", files / "whole.tif", "-o", clean / "whole.tif", *options, *BASE)
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = [(clean / name).stat().st_size for name in written]
    before, culprit = sizes[:-1], sizes[-1]
    out = tmp_path / "disk"
    with small_disk(out, sum(before) + culprit // 2) as tmpfs:
        limit = 0 if tmpfs else (max(before, default=0) + culprit) // 2
        result = predict(files / "model.keras", files / "whole.tif", "-o", out / "whole.tif", *options, *BASE,
                         file_size_limit=limit)
        assert result.returncode == 1, result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"aerialseg predict: error: {out / written[-1]}: "), result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "_tiffWriteProc" not in result.stderr.replace(last, "")
        assert list(out.iterdir()) == []  # nothing published, no temporary left
    again = predict_here(capsys, files / "model.keras", files / "whole.tif", "-o", out / "whole.tif", *options, *BASE)
    assert again.returncode == 0, again.stderr[-2000:]
    assert outputs_of(out) == outputs_of(clean)


def test_a_rerun_redoes_truncated_and_empty_outputs(files, tmp_path, capsys):
    clean, out = tmp_path / "clean", tmp_path / "out"
    for folder in (clean, out):
        assert predict_here(capsys, files / "model.keras", files / "images", "-o", f"{folder}/", *BASE).returncode == 0
    truncated, empty = out / "tile_1.tif", out / "tile_3.tif"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    empty.write_bytes(b"")
    result = predict_here(capsys, files / "model.keras", files / "images", "-o", f"{out}/", *BASE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{truncated}: not a whole file" in result.stderr
    assert f"{empty}: not a whole file (it is empty)" in result.stderr
    assert "3 of 5 images already have their outputs" in result.stderr
    assert outputs_of(out) == outputs_of(clean)


WRITER = textwrap.dedent("""\
    import os, sys
    from aerialseg.core.atomic import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"written by another run")
        print(tmp, flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), 9)
        sys.stdin.readline()  # a live run, still writing until told to finish
    """)


def test_a_kill_mid_write_leaves_no_temporary_after_a_rerun(files, tmp_path, capsys):
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", WRITER, str(out / "tile_0.tif"), "kill"], capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left = Path(killed.stdout.strip())
    assert left.is_file() and is_temporary(left.name)
    result = predict_here(capsys, files / "model.keras", files / "images", "-o", f"{out}/", *BASE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "removed 1 temporary file(s) that interrupted runs left" in result.stderr
    assert sorted(p.name for p in out.glob("*.tif")) == [f"tile_{i}.tif" for i in range(5)]
    assert not [p for p in out.iterdir() if is_temporary(p.name)]


def test_a_run_never_sweeps_the_live_temporaries_of_a_concurrent_one(files, tmp_path, capsys):
    out = tmp_path / "out"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out / "theirs.tif"), "live"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        result = predict_here(capsys, files / "model.keras", files / "images", "-o", f"{out}/", *BASE)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "removed" not in result.stderr
        assert live.read_bytes() == b"written by another run"
        writer.communicate("done\n", timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == 0
    assert (out / "theirs.tif").read_bytes() == b"written by another run"
    assert not [p for p in out.iterdir() if is_temporary(p.name)]


def test_one_unreadable_image_among_five_fails_alone(files, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(files / "images", images)
    bad = images / "tile_2.tif"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated: a header and nothing else
    result = predict_here(capsys, files / "model.keras", images, "-o", f"{tmp_path / 'out'}/", *BASE)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("aerialseg predict: error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"aerialseg predict: error: {bad}: ")
    assert result.stderr.strip().splitlines()[-1] == "aerialseg predict: 4 of 5 written; 1 failed"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["tile_0.tif", "tile_1.tif", "tile_3.tif",
                                                                        "tile_4.tif"]
    fast = predict_here(capsys, files / "model.keras", images, "-o", f"{tmp_path / 'fast'}/", "--fail-fast", *BASE)
    assert fast.returncode == 1
    assert fast.stderr.strip().splitlines()[-1].startswith(f"aerialseg predict: error: {bad}: ")
    assert sorted(p.name for p in (tmp_path / "fast").glob("*.tif")) == ["tile_0.tif", "tile_1.tif"]


def test_an_unreachable_dask_scheduler_is_reported_before_the_model_is_loaded(files, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    broken_model = tmp_path / "broken.keras"
    broken_model.write_bytes(b"not a checkpoint")
    result = predict(broken_model, files / "images", "-o", f"{tmp_path / 'out'}/", "--dask",
                     f"tcp://127.0.0.1:{port}", *BASE, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"aerialseg predict: error: --dask: cannot reach a Dask scheduler at tcp://127.0.0.1:{port} "
        f"({os.strerror(errno.ECONNREFUSED)})"]
