"""The whole DVC pipeline, end to end, on a tiny configuration in a temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tiny_project import copy_project

# one project, reproduced once and edited test after test: under pytest-xdist the whole module runs in one worker
pytestmark = pytest.mark.xdist_group("pipeline")


def _env(project: Path) -> dict:
    """Stages run the copy's own sources, so that edits to them take effect."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                PYTHONPATH=str(Path(project) / "src"))


def _run(args, cwd, check=True):
    env = _env(cwd)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC copy of the repository with tiny params, reproduced once."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    _run(["git", "init", "-q"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    _run(["dvc", "repro"], root)
    return root


@pytest.mark.slow
def test_repro_leaves_every_output(project):
    for path in ("data/raw/2_10_image.tif", "data/raw/2_10_image.tfw",
                 "data/resized/2_13_label_noboundary.tif", "data/masks/2_13_noboundary.png",
                 "data/tiles/index.csv", "data/models/epoch_001.keras", "data/models/epoch_002.keras",
                 "data/predictions/epoch_002/2_13_smooth.tif", "data/predictions/epoch_002/2_13_plain.tif",
                 "data/models/model_card.json", "data/export/model.onnx", "data/export/model_int8.onnx",
                 "data/predictions_int8/2_13_smooth.tif",
                 "metrics/data_report.json", "metrics/eval.json", "metrics/checkpoints.json",
                 "metrics/epoch_table.md", "metrics/train/metrics.json", "reports/gallery.png",
                 "reports/progress.gif", "reports/loss.png", "reports/iou.png", "reports/confusion.png",
                 "reports/legend.png", "dvc.lock"):
        assert (project / path).is_file(), path
    checkpoints = json.loads((project / "metrics/checkpoints.json").read_text())
    assert sorted(checkpoints) == ["001", "002"]
    table = (project / "metrics/epoch_table.md").read_text().splitlines()
    assert sum(line.startswith("| 1 ") or line.startswith("| 2 ") for line in table) == 2
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert evaluation["epoch"] == 2
    for key in ("smooth", "plain", "smooth_int8", "colour_baseline"):
        assert 0.0 <= evaluation[key]["noboundary"]["miou_6"] <= 1.0
    # predictions are GeoTIFFs where the resized test scene lies, in data.crs, as QGIS opens them
    import rasterio

    with rasterio.open(project / "data/resized/2_13_image.tif") as scene, \
            rasterio.open(project / "data/predictions/epoch_002/2_13_smooth.tif") as prediction:
        assert prediction.crs == rasterio.crs.CRS.from_epsg(25833) and scene.crs is None  # world file only
        assert prediction.transform == scene.transform and prediction.shape == scene.shape
        assert prediction.colormap(1)[0][:3] == (255, 255, 255) and prediction.nodata == 255
    card = json.loads((project / "data/models/model_card.json").read_text())
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert card["ground_sample_distance_m"] == params["resize"]["gsd"]


@pytest.mark.slow
def test_second_repro_is_up_to_date(project):
    out = _run(["dvc", "repro"], project).stdout
    assert "Data and pipelines are up to date." in out


def _stale(project: Path) -> set[str]:
    """Stages ``dvc status`` reports as changed."""
    return set(json.loads(_run(["dvc", "status", "--json"], project).stdout or "{}"))


def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))
    return text


@pytest.mark.slow
def test_an_edit_reruns_only_what_it_touches_and_reuses_what_it_can(project):
    src = project / "src" / "aerialseg"
    states = {p: p.stat().st_mtime_ns for p in (project / "data/train_state").iterdir()}
    models = {p.name: p.read_bytes() for p in (project / "data/models").iterdir()}
    logs = {p: p.read_bytes() for p in (project / "metrics/train").rglob("*") if p.is_file()}
    originals = {}
    try:
        # a docstring of the blending: only prediction is stale, and it predicts nothing again (the int8
        # stage, which keeps no cache, predicts the same maps, so evaluate does not run)
        originals["predict/blending.py"] = _edit(src / "predict/blending.py",
                                                 '"""Map a window (..., H, W, C) of the image',
                                         '"""Map a window (..., H, W, C) (reworded) of the image')
        assert _stale(project) == {"predict_smooth", "predict_int8"}
        out = _run(["dvc", "repro"], project).stdout
        assert "predicted 0 new checkpoint(s), reused 2" in out
        assert "Running stage 'evaluate'" not in out and "Running stage 'train'" not in out

        # a docstring of the model and a comment in training: train reruns but trains nothing
        originals["train/model.py"] = _edit(src / "train/model.py", '"""Return an uncompiled U-Net',
                                            '"""Build an uncompiled U-Net')
        originals["train/loop.py"] = _edit(src / "train/loop.py", "# a state may have been loaded, then rejected",
                                         "# a state may have been restored and then refused")
        assert _stale(project) == {"train"}
        out = _run(["dvc", "repro"], project).stdout
        assert "train: reused 2 epochs, trained 0" in out
        assert "Running stage 'predict_smooth'" not in out
        assert {p: p.stat().st_mtime_ns for p in (project / "data/train_state").iterdir()} == states
        assert {p.name: p.read_bytes() for p in (project / "data/models").iterdir()} == models
        assert {p: p.read_bytes() for p in (project / "metrics/train").rglob("*") if p.is_file()} == logs

        # a change of behaviour in the blending: every checkpoint is predicted again
        _edit(src / "predict/blending.py", "np.maximum(weight, np.float32(1e-12))",
              "np.maximum(weight, np.float32(1e-11))")
        out = _run(["dvc", "repro"], project).stdout
        assert "predicted 2 new checkpoint(s), reused 0" in out
    finally:
        for name, text in originals.items():
            (src / name).write_text(text)
    _run(["dvc", "repro"], project)
    assert not _stale(project)


def _metrics(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "metrics").glob("*.json"))}


@pytest.mark.slow
def test_forced_repro_gives_identical_metrics_and_checkpoints(project):
    before = _metrics(project)
    checkpoints = {p.name: p.read_bytes() for p in (project / "data/models").glob("*.keras")}
    shutil.rmtree(project / "data/train_state")  # otherwise the forced train stage reuses the state
    out = _run(["dvc", "repro", "--force"], project).stdout
    assert "train: reused 0 epochs, trained 2" in out
    assert _metrics(project) == before
    # retrained in another process, byte for byte: no save time or memory address inside
    assert {p.name: p.read_bytes() for p in (project / "data/models").glob("*.keras")} == checkpoints


@pytest.mark.slow
def test_more_epochs_predict_only_new_checkpoints_and_diff_per_key(project):
    _run(["git", "add", "-A"], project)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baseline"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["epochs"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], project).stdout
    assert "train: reused 2 epochs, trained 1; 3 epochs" in out
    assert "predicted 1 new checkpoint(s), reused 2" in out
    table = (project / "metrics/epoch_table.md").read_text()
    assert sum(line.startswith("| ") and line[2].isdigit() for line in table.splitlines()) == 3
    diff = _run(["dvc", "metrics", "diff", "--all"], project).stdout
    assert "metrics/eval.json" in diff and "smooth.noboundary.iou.car" in diff
    assert "colour_baseline.noboundary.miou_6" in diff
    _run(["dvc", "plots", "show", "-o", "plots_html"], project)
    html = (project / "plots_html" / "index.html").read_text()
    assert "mean_iou" in html and "confusion.png" in html


def _temporaries(project: Path) -> list[str]:
    from aerialseg.core.atomic import is_temporary

    found = []
    for top in ("data", "metrics", "reports"):
        for path in (project / top).rglob("*"):
            if is_temporary(path.name):
                found.append(str(path.relative_to(project)))
    return found


def _kill_stage_midway(project: Path, stage: str, ready) -> list:
    """SIGKILL a stage's own process (not its workers) once ``ready(process)`` holds while it is
    stopped; return its descendants then."""
    import time

    import psutil

    process = subprocess.Popen(["dvc", "repro", "--force", "-s", stage], cwd=project, env=_env(project),
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    below = None
    deadline = time.time() + 300
    while below is None and process.poll() is None and time.time() < deadline:
        try:
            # the Python process itself: with SHELL unset DVC runs "/bin/sh -c 'python stages/…'",
            # and that shell (dash) stays between DVC and the stage
            scripts = [p for p in psutil.Process(process.pid).children(recursive=True)
                       if f"stages/{stage}.py" in p.cmdline()]
            if scripts and ready(scripts[0]):
                # frozen, the stage cannot finish (rename its temporary) between the check and the kill
                scripts[0].suspend()
                if ready(scripts[0]):
                    below = scripts[0].children(recursive=True)
                    scripts[0].kill()  # as the OOM killer would: the stage only, not its process group
                else:
                    scripts[0].resume()
        except psutil.Error:
            pass
        time.sleep(0.01)
    process.wait(timeout=120)
    assert below is not None, f"{stage} ended before it could be killed"
    return below


def _all_gone(processes, seconds: float = 10.0) -> list:
    import time

    import psutil

    deadline = time.time() + seconds
    alive = processes
    while alive and time.time() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return [" ".join(p.cmdline())[:120] for p in alive if p.is_running()]


@pytest.mark.slow
def test_killed_stages_leave_no_debris_and_no_processes(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["jobs"] = 2  # worker processes, whatever the machine's core count
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro"], project)
    lock = (project / "dvc.lock").read_text()

    # encode_masks, killed while its workers run: they follow it, and the next run cleans up
    workers = _kill_stage_midway(
        project, "encode_masks",
        lambda p: len(p.children(recursive=True)) >= 2 and any((project / "data").glob(".masks.*.tmp")))
    assert workers
    assert not _all_gone(workers)
    assert any((project / "data").glob(".masks.*.tmp"))  # debris beside the output, not in it
    _run(["dvc", "repro"], project)  # may restore the output from DVC's run cache without running the stage
    assert (project / "dvc.lock").read_text() == lock
    assert not [t for t in _temporaries(project) if t.count("/") > 1]  # nothing inside an output
    _run(["dvc", "repro", "--force", "-s", "tile"], project)  # the next stage to run sweeps data/
    assert not _temporaries(project)
    assert (project / "dvc.lock").read_text() == lock

    # predict_smooth, killed while it writes a checkpoint's predictions into the persistent folder
    (project / "data/predictions/epoch_002/key.json").unlink()  # so that epoch 2 is predicted again
    _kill_stage_midway(project, "predict_smooth",
                       lambda p: any((project / "data/predictions").glob(".epoch_002.*.tmp")))
    assert _temporaries(project)
    _run(["dvc", "repro"], project)  # DVC restores the locked predictions, or the stage predicts epoch 2 again
    assert not _temporaries(project)
    assert (project / "data/predictions/epoch_002/key.json").is_file()
    assert (project / "dvc.lock").read_text() == lock


@pytest.mark.slow
def test_sigkilled_repro_resumes_and_matches_a_fresh_run(project):
    import signal
    import time

    import numpy as np
    import pandas as pd

    from tiny_training import final_weights

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["epochs"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(project)
    process = subprocess.Popen(["dvc", "repro", "train"], cwd=project, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = project / "data/train_state/state_0005.weights.h5"
    deadline = time.time() + 300
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    out = _run(["dvc", "repro", "train"], project).stdout
    assert "train: reused 5 epochs, trained 3; 8 epochs" in out or "train: reused 6 epochs, trained 2; 8 epochs" in out
    resumed_history = pd.read_csv(project / "data/models/history.csv")
    resumed_weights = final_weights(project / "data/models")
    resumed_live = pd.read_csv(project / "metrics/train/plots/metrics/train/loss.tsv", sep="\t")

    shutil.rmtree(project / "data/train_state")
    out = _run(["dvc", "repro", "--force", "train"], project).stdout
    assert "train: reused 0 epochs, trained 8" in out
    pd.testing.assert_frame_equal(pd.read_csv(project / "data/models/history.csv"), resumed_history)
    for ours, theirs in zip(resumed_weights, final_weights(project / "data/models"), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert list(resumed_live["step"]) == list(range(8))
    pd.testing.assert_frame_equal(pd.read_csv(project / "metrics/train/plots/metrics/train/loss.tsv", sep="\t"),
                                  resumed_live)


@pytest.mark.slow
def test_bad_param_stops_the_stage_with_one_line(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tile"]["patch_size"] = 68
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = _run([sys.executable, "stages/tile.py"], project, check=False)
    finally:
        params["tile"]["patch_size"] = 64
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert result.returncode == 1
    assert result.stderr.strip() == "tile: error: tile.patch_size: 68 is not divisible by 2**model.depth = 8"


STAGE_UNDER_LIMIT = ("import resource, runpy, signal, sys\n"
                     "limit = int(sys.argv[1])\n"
                     "if limit:\n"
                     "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                     "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
                     "runpy.run_path(sys.argv[2], run_name='__main__')\n")


def _mount_full_tmpfs(folder: Path, free: int) -> bool:
    """Put ``folder``'s files on a tmpfs with ``free`` bytes left, if this process may mount one.

    The folder's own files stay underneath, untouched, and reappear when it is unmounted.
    """
    import tempfile

    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    staged = Path(tempfile.mkdtemp())
    shutil.copytree(folder, staged / "copy")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        shutil.rmtree(staged)
        return False
    shutil.copytree(staged / "copy", folder, dirs_exist_ok=True)
    shutil.rmtree(staged)
    used = shutil.disk_usage(folder).used
    subprocess.run(["mount", "-o", f"remount,size={used + free}", str(folder)], check=True)
    return True


@pytest.mark.slow
def test_a_full_disk_while_predicting_is_one_line_publishes_nothing_and_a_rerun_matches(project):
    _run(["dvc", "repro"], project)
    lock = (project / "dvc.lock").read_text()
    predictions = project / "data/predictions"
    undisturbed = {p.relative_to(predictions): p.read_bytes() for p in sorted(predictions.rglob("*")) if p.is_file()}
    (predictions / "epoch_002/key.json").unlink()  # so that the stage predicts epoch 2 again
    left = {p.relative_to(predictions): p.read_bytes() for p in sorted(predictions.rglob("*")) if p.is_file()}
    smallest = min(len(data) for name, data in undisturbed.items() if name.suffix == ".tif")
    tmpfs = _mount_full_tmpfs(predictions, 4096)  # one page: the first GeoTIFF at most, never all of them
    try:
        result = subprocess.run([sys.executable, "-c", STAGE_UNDER_LIMIT, "0" if tmpfs else str(smallest // 2),
                                 "stages/predict_smooth.py"], cwd=project, env=_env(project), capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 1, result.stderr[-3000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("predict_smooth: error: data/predictions/epoch_002/") and ".tif: " in last, last
        assert "Traceback" not in result.stderr
        published = {p.relative_to(predictions): p.read_bytes() for p in sorted(predictions.rglob("*"))
                     if p.is_file()}
        assert published == left  # nothing of epoch 2 published, nothing temporary left
    finally:
        if tmpfs:
            subprocess.run(["umount", str(predictions)], check=True)
    _run(["dvc", "repro"], project)  # space again: the stage predicts epoch 2 as an undisturbed run does
    assert {p.relative_to(predictions): p.read_bytes() for p in sorted(predictions.rglob("*"))
            if p.is_file()} == undisturbed
    assert (project / "dvc.lock").read_text() == lock
