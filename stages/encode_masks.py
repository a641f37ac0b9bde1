"""Stage encode_masks: colour labels -> uint8 class indices through the class table (255 = ignore).

Colours near a class's (encode.tolerance) are snapped, other colours become ignore, and a
label with too many of them (encode.max_offpalette) stops the stage naming the scene.
Everything counted goes to metrics/data_report.json. A split that scores a class no training scene
shows stops here, before any tile is cut; a class rare in training is a warning.
"""

from functools import partial

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.io import read_json, write_json
from aerialseg.core.names import AUDIT_FILE, DATA_REPORT, MASKS, RESIZED
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage, warn
from aerialseg.prepare.parallel import map_scenes
from aerialseg.prepare.preprocess import data_report, encode_scene_files
from aerialseg.prepare.splitting import check_split_classes


def main() -> str:
    params = load_params()
    split = read_split(RESIZED)
    scenes = list(split.all_scenes)
    tolerance, max_offpalette = params.encode.tolerance, params.encode.max_offpalette
    with atomic_dir(MASKS) as tmp:
        encode = partial(encode_scene_files, source=RESIZED, target=tmp, classes=params.classes, tolerance=tolerance,
                         max_offpalette=max_offpalette)
        encoded, peak = map_scenes(encode, scenes, params.jobs, "encode")
        warnings = check_split_classes(split, {s: e.class_pixels for s, e in zip(scenes, encoded, strict=True)},
                                       params.classes.names)
        audit = read_json(RESIZED / AUDIT_FILE) if (RESIZED / AUDIT_FILE).is_file() else None
        report = data_report({s: e.report for s, e in zip(scenes, encoded, strict=True)}, tolerance, max_offpalette,
                             audit)
        write_json(DATA_REPORT, report)
    for warning in warnings:
        warn("encode_masks", warning)
    totals = report["totals"]
    return (f"{len(scenes)} scenes encoded; {totals['snapped']} near-palette pixels snapped, "
            f"{totals['off_palette']} off-palette pixels set to ignore; report in {DATA_REPORT}; "
            f"peak memory per worker {peak:.0f} MB")


if __name__ == "__main__":
    run_stage("encode_masks", main, outputs=[MASKS, DATA_REPORT.parent])
