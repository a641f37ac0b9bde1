"""Preprocessing at Potsdam scale: aerialseg's resize + encode + tile vs the seed's way.

Writes synthetic 6000 x 6000 scenes in the official layout (uncompressed RGB TIFF, full
and no-boundary colour labels, world file), then times, each in its own process so that
peak memory means something:

- ``aerialseg``: ``resize_scene`` and ``encode_scene`` over worker processes (``--jobs``),
  one scene per worker at a time, then ``scene_tiles`` + ``write_split`` into uint8 shards;
- ``folder``: the same pixels as a user's folder (``data.source: folder``): GeoTIFFs stored as
  the release stores its tiles (uncompressed, in strips), half in EPSG:25833 and half in
  EPSG:32633, with one-band class-index GeoTIFF labels; download's ``collect_scene`` over worker
  processes into the stage layout, then the same resize, encode and tile. The Potsdam path's
  download hard-links the release's files (no pixel is read), so ``folder_vs_potsdam`` (Mpx/s of
  this side over ``aerialseg``'s, target >= 1/1.5) is what taking own GeoTIFFs costs;
- ``folder_deflate``: the same with DEFLATE-compressed, tiled GeoTIFFs, as orthophotos are often
  delivered: the decoding on top (``folder_deflate_vs_potsdam``);
- ``folder_vector``: the ``folder`` images with the same labels as polygons (each scene's class map
  vectorised, one GeoPackage per scene in EPSG:4326), reprojected and burnt by download
  (``vector_vs_raster_labels``: Mpx/s over the ``folder`` side's, target >= 1/1.5);
- ``naive``: the seed's way: load every image and label into lists, resize, cut patches in
  Python loops, min-max scale each patch with scikit-learn, convert each mask patch's
  colours class by class, append everything to lists, then ``np.array`` them.

Both cut the same patches; aerialseg also moves a last row and column of windows back to
cover the border (more tiles), which the naive way drops, and keeps images as uint8
(the naive way: float64, class indices).
The five alternate ``--repeats`` times (this machine's speed drifts); prints one JSON
line with the median input megapixels per second of each, the ratio of the medians and
the range of per-repeat ratios, and peak RSS per worker / process. Targets: ratio >= 5,
aerialseg worker peak <= 1.5 GB.

    python bench/preprocess.py [--scenes 4] [--size 6000] [--scale 0.5] [--patch 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SCENE_IDS = ["2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11"]


def _scene_pixels(seed: int, size: int):
    """One scene's image (H, W, 3) and class indices (H, W): 50 px blocks of six classes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 6, (size // 50 + 1, size // 50 + 1)).astype(np.uint8)
    index = np.repeat(np.repeat(blocks, 50, 0), 50, 1)[:size, :size]
    paint = np.array([[200, 200, 200], [120, 60, 50], [90, 160, 70], [40, 110, 40], [30, 30, 200],
                      [150, 40, 40]], np.uint8)  # the image's colours; the labels take the class table's
    return paint[index] + rng.integers(0, 40, (size, size, 1), dtype=np.uint8), index


def write_official_scenes(folder: Path, count: int, size: int) -> list[str]:
    """Synthetic scenes under official names: uncompressed TIFFs like the ISPRS release."""
    import cv2

    from aerialseg.core.config.params import load_params
    from aerialseg.core.geo.worldfile import WorldFile, write_world_file
    from aerialseg.core.names import SceneFiles
    from aerialseg.core.palette import index_to_rgb

    colours = load_params(ROOT / "params.yaml").classes.colours

    ids = SCENE_IDS[:count]
    flags = [cv2.IMWRITE_TIFF_COMPRESSION, 1]
    for seed, scene_id in enumerate(ids):
        image, index = _scene_pixels(seed, size)
        files = SceneFiles(folder, scene_id)
        cv2.imwrite(str(files.image), image[..., ::-1], flags)
        del image
        label = index_to_rgb(index, colours)
        cv2.imwrite(str(files.label), label[..., ::-1], flags)
        eroded = index.copy()
        eroded[::97] = 255
        cv2.imwrite(str(files.label_noboundary), index_to_rgb(eroded, colours)[..., ::-1], flags)
        write_world_file(files.world, WorldFile(0.05, 0, 0, -0.05, 366000.025, 5808000.975))
    return ids


def write_folder_scenes(folder: Path, count: int, size: int, compress: bool = False, vector: bool = False) -> list[str]:
    """The same pixels as ``write_official_scenes`` as a user's folder: GeoTIFF images in two CRSs (every
    other scene in EPSG:32633) and class-index GeoTIFF labels on the same grids; uncompressed strips,
    or with ``compress`` DEFLATE in 512 px tiles; with ``vector`` the labels as polygons instead, one
    GeoPackage per scene in EPSG:4326 (the class map vectorised, then reprojected by GDAL)."""
    import rasterio
    from affine import Affine

    ids = SCENE_IDS[:count]
    for seed, scene_id in enumerate(ids):
        image, index = _scene_pixels(seed, size)
        profile = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32633" if seed % 2 else "EPSG:25833",
                   "transform": Affine(0.05, 0, 366000.0, 0, -0.05, 5808000.0), "dtype": "uint8"}
        if compress:
            profile.update(compress="deflate", tiled=True, blockxsize=512, blockysize=512)
        for sub, bands in (("images", image.transpose(2, 0, 1)), ("labels", index[None])):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            if sub == "labels" and vector:
                _write_polygons(folder / sub / f"{scene_id}.gpkg", index, profile)
                continue
            with rasterio.open(folder / sub / f"{scene_id}.tif", "w", count=len(bands), **profile) as dst:
                dst.write(bands)
    return ids


def _write_polygons(path: Path, index, profile: dict) -> None:
    """A class map as polygons with a ``class`` attribute (the class index), in EPSG:4326."""
    import fiona
    from rasterio.features import shapes
    from rasterio.warp import transform_geom

    schema = {"geometry": "Polygon", "properties": {"class": "int"}}
    with fiona.open(path, "w", driver="GPKG", crs="EPSG:4326", schema=schema) as dst:
        dst.writerecords({"geometry": transform_geom(profile["crs"], "EPSG:4326", geometry),
                          "properties": {"class": int(value)}}
                         for geometry, value in shapes(index, transform=profile["transform"]))


def run_aerialseg(raw: Path, work: Path, ids: list[str], scale: float, patch: int, jobs: int | None) -> dict:
    """Our stages' library calls, as the stages make them."""
    from functools import partial

    from aerialseg.core.config.params import load_params
    from aerialseg.prepare.parallel import map_scenes, peak_rss_mb
    from aerialseg.prepare.preprocess import encode_scene_files, resize_scene_files

    classes = load_params(ROOT / "params.yaml").classes
    from aerialseg.prepare.tile_writer import scene_tiles, write_split

    resized, masks, tiles = work / "resized", work / "masks", work / "tiles"
    started = time.perf_counter()
    _, resize_peak = map_scenes(partial(resize_scene_files, source=raw, target=resized, gsd=0.05 / scale,
                                        declared_gsd=None), ids, jobs,
                                "resize")
    resized_at = time.perf_counter()
    _, encode_peak = map_scenes(partial(encode_scene_files, source=resized, target=masks, classes=classes, tolerance=16,
                                        max_offpalette=0.01), ids, jobs, "encode")
    encoded_at = time.perf_counter()
    stream = scene_tiles(ids, resized, masks, patch, patch)
    index = write_split(tiles, "train", stream, patch, shard_size=64, class_names=classes.names)
    finished = time.perf_counter()
    return {"seconds": finished - started, "tiles": len(index),
            "phases_s": {"resize": round(resized_at - started, 2), "encode": round(encoded_at - resized_at, 2),
                         "tile": round(finished - encoded_at, 2)},
            "worker_peak_rss_mb": round(max(resize_peak, encode_peak)), "main_peak_rss_mb": round(peak_rss_mb())}


def run_folder(folder: Path, work: Path, ids: list[str], scale: float, patch: int, jobs: int | None,
               labels: str = "labels/{stem}.tif") -> dict:
    """A user's folder, as the stages take it: download's pairing and collecting, then ``run_aerialseg``."""
    import dataclasses
    from functools import partial

    from aerialseg.core.config.data_params import FolderParams, SplitFractions
    from aerialseg.core.config.params import load_params
    from aerialseg.prepare.parallel import map_scenes
    from aerialseg.prepare.sources.folder import Collecting, collect_scene
    from aerialseg.prepare.sources.folder_scenes import find_scenes

    defaults = load_params(ROOT / "params.yaml")
    params = FolderParams(
        bands=("red", "green", "blue"), path=str(folder), images="images/*.tif", labels=labels, manifest=None,
        min_label_coverage=0.5, train=tuple(ids), val=(), test=(),
        fractions=SplitFractions(val=0.0, test=0.0), vector=defaults.data.folder.vector)
    started = time.perf_counter()
    scenes = {scene.scene: scene for scene in find_scenes(params)}
    raw = work / "raw"
    raw.mkdir(parents=True)
    classes = dataclasses.replace(defaults.classes, ignore_values=(255,))  # what no polygon covers (none here)
    settings = Collecting(classes, 0.5, defaults.data.folder.vector)
    _, peak = map_scenes(partial(collect_scene, destination=raw, settings=settings),
                         [scenes[i] for i in ids], jobs, "download")
    downloaded = time.perf_counter() - started
    rest = run_aerialseg(raw, work, ids, scale, patch, jobs)
    return {**rest, "seconds": downloaded + rest["seconds"],
            "phases_s": {"download": round(downloaded, 2), **rest["phases_s"]},
            "worker_peak_rss_mb": round(max(peak, rest["worker_peak_rss_mb"]))}


def run_naive(raw: Path, ids: list[str], scale: float, patch: int) -> dict:
    """The seed notebook's way, kept faithful on purpose (lists, loops, per-patch scaler)."""
    import cv2
    import numpy as np
    from sklearn.preprocessing import MinMaxScaler

    from aerialseg.core.config.params import load_params
    from aerialseg.core.names import SceneFiles

    class_colours = load_params(ROOT / "params.yaml").classes.colours

    started = time.perf_counter()
    images, labels = [], []
    for scene_id in ids:  # load all
        files = SceneFiles(raw, scene_id)
        image = cv2.cvtColor(cv2.imread(str(files.image)), cv2.COLOR_BGR2RGB)
        label = cv2.cvtColor(cv2.imread(str(files.label)), cv2.COLOR_BGR2RGB)
        size = (int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale)))
        images.append(cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4))
        labels.append(cv2.resize(label, size, interpolation=cv2.INTER_NEAREST_EXACT))
    image_patches, mask_patches = [], []
    for image, label in zip(images, labels, strict=True):
        for y in range(0, image.shape[0] - patch + 1, patch):
            for x in range(0, image.shape[1] - patch + 1, patch):
                single = image[y:y + patch, x:x + patch]
                scaled = MinMaxScaler().fit_transform(single.reshape(-1, 3)).reshape(single.shape)
                image_patches.append(scaled)
                single_label = label[y:y + patch, x:x + patch]
                classes = np.zeros(single_label.shape[:2], np.uint8)
                for k, colour in enumerate(class_colours):
                    classes[np.all(single_label == colour, axis=-1)] = k
                mask_patches.append(classes)
    image_dataset, mask_dataset = np.array(image_patches), np.array(mask_patches)
    assert len(image_dataset) == len(mask_dataset)
    return {"seconds": time.perf_counter() - started, "tiles": len(image_dataset),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _in_subprocess(kind: str, args: argparse.Namespace, raw: Path, work: Path) -> dict:
    """Run one part in a fresh process: its peak memory is its own, not inherited from ours."""
    command = [sys.executable, __file__, "--run", kind, "--raw", str(raw), "--work", str(work),
               "--scenes", str(args.scenes), "--size", str(args.size), "--scale", str(args.scale),
               "--patch", str(args.patch)]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4, help=f"6000 px scenes (at most {len(SCENE_IDS)})")
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--scale", type=float, default=0.5, help="resize factor (the seed's setting: 0.5)")
    parser.add_argument("--patch", type=int, default=512)
    parser.add_argument("--jobs", type=int, default=None, help="aerialseg workers (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians are reported")
    parser.add_argument("--run", choices=["generate", "generate_folder", "generate_folder_deflate",
                                          "generate_folder_vector", "aerialseg", "folder", "folder_vector", "naive"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    add_out_option(parser)
    args = parser.parse_args()
    ids = SCENE_IDS[:args.scenes]
    if args.run == "generate":
        print(json.dumps({"scenes": write_official_scenes(args.raw, args.scenes, args.size)}))
        return
    if args.run in ("generate_folder", "generate_folder_deflate", "generate_folder_vector"):
        scenes = write_folder_scenes(args.raw, args.scenes, args.size, compress=args.run.endswith("deflate"),
                                     vector=args.run.endswith("vector"))
        print(json.dumps({"scenes": scenes}))
        return
    if args.run in ("folder", "folder_vector"):
        labels = "labels/{stem}.gpkg" if args.run == "folder_vector" else "labels/{stem}.tif"
        print(json.dumps(run_folder(args.raw, args.work, ids, args.scale, args.patch, args.jobs, labels)))
        return
    if args.run == "aerialseg":
        print(json.dumps(run_aerialseg(args.raw, args.work, ids, args.scale, args.patch, args.jobs)))
        return
    if args.run == "naive":
        print(json.dumps(run_naive(args.raw, ids, args.scale, args.patch)))
        return

    import shutil
    from statistics import median

    from aerialseg.prepare.parallel import resolve_jobs

    ours, own, packed, drawn, naive = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="aerialseg-bench-") as tmp:
        raw, own_folder, packed_folder, vector_folder, work = (
            Path(tmp) / name for name in ("raw", "own", "own_deflate", "own_vector", "work"))
        raw.mkdir()
        _in_subprocess("generate", args, raw, work)
        _in_subprocess("generate_folder", args, own_folder, work)
        _in_subprocess("generate_folder_deflate", args, packed_folder, work)
        _in_subprocess("generate_folder_vector", args, vector_folder, work)
        for _ in range(args.repeats):
            for kind, results, source in (("aerialseg", ours, raw), ("folder", own, own_folder),
                                          ("folder", packed, packed_folder), ("folder_vector", drawn, vector_folder),
                                          ("naive", naive, raw)):
                shutil.rmtree(work, ignore_errors=True)
                os.sync()  # no write-back of earlier files may compete with the timed runs
                results.append(_in_subprocess(kind, args, source, work))
    megapixels = args.scenes * args.size * args.size / 1e6
    ours_s, naive_s = median(r["seconds"] for r in ours), median(r["seconds"] for r in naive)
    own_s, packed_s = median(r["seconds"] for r in own), median(r["seconds"] for r in packed)
    drawn_s = median(r["seconds"] for r in drawn)
    vector_ratios = [f["seconds"] / v["seconds"] for f, v in zip(own, drawn, strict=True)]
    ratios = [n["seconds"] / o["seconds"] for o, n in zip(ours, naive, strict=True)]
    own_ratios = [o["seconds"] / f["seconds"] for o, f in zip(ours, own, strict=True)]
    emit({
        "bench": "preprocess", "scenes": args.scenes, "size": args.size, "scale": args.scale, "patch": args.patch,
        "jobs": resolve_jobs(args.jobs, args.scenes), "repeats": args.repeats,
        "aerialseg_mpx_per_s": round(megapixels / ours_s, 1),
        "naive_mpx_per_s": round(megapixels / naive_s, 1),
        "folder_mpx_per_s": round(megapixels / own_s, 1),
        "folder_vs_potsdam": round(ours_s / own_s, 2),
        "folder_vs_potsdam_range": [round(min(own_ratios), 2), round(max(own_ratios), 2)],
        "folder_phases_s": {phase: round(median(r["phases_s"][phase] for r in own), 2) for phase in own[0]["phases_s"]},
        "folder_worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in own),
        "folder_deflate_mpx_per_s": round(megapixels / packed_s, 1),
        "folder_deflate_vs_potsdam": round(ours_s / packed_s, 2),
        "folder_deflate_phases_s": {phase: round(median(r["phases_s"][phase] for r in packed), 2)
                                    for phase in packed[0]["phases_s"]},
        "folder_vector_mpx_per_s": round(megapixels / drawn_s, 1),
        "vector_vs_raster_labels": round(own_s / drawn_s, 2),
        "vector_vs_raster_labels_range": [round(min(vector_ratios), 2), round(max(vector_ratios), 2)],
        "folder_vector_phases_s": {phase: round(median(r["phases_s"][phase] for r in drawn), 2)
                                   for phase in drawn[0]["phases_s"]},
        "speedup": round(naive_s / ours_s, 2),
        "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)],
        "aerialseg_worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in ours),
        "aerialseg_main_peak_rss_mb": max(r["main_peak_rss_mb"] for r in ours),
        "naive_peak_rss_mb": max(r["peak_rss_mb"] for r in naive),
        "aerialseg_phases_s": {phase: round(median(r["phases_s"][phase] for r in ours), 2)
                               for phase in ours[0]["phases_s"]},
        "tiles": {"aerialseg": ours[0]["tiles"], "folder": own[0]["tiles"], "folder_vector": drawn[0]["tiles"],
                  "naive": naive[0]["tiles"]},
    }, args.out)


if __name__ == "__main__":
    main()
