"""Stage resize: every scene to resize.gsd (metres per pixel) -> data/resized: Lanczos-4 images,
nearest-exact labels, scaled world files.

A scene's own ground sample distance is its world file's pixel size (or its source's declared
one). Scenes are resized in parallel (params ``jobs``), one scene per worker at a time.
"""

from functools import partial

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.names import RAW, RESIZED
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.prepare.parallel import map_scenes
from aerialseg.prepare.preprocess import carry_sources, resize_scene_files


def main() -> str:
    params = load_params()
    scenes = list(read_split(RAW).all_scenes)
    gsd = params.resize.gsd
    with atomic_dir(RESIZED) as tmp:
        shapes, peak = map_scenes(partial(resize_scene_files, source=RAW, target=tmp, gsd=gsd,
                                          declared_gsd=params.data.declared_gsd), scenes, params.jobs, "resize")
        carry_sources(RAW, tmp)
    height, width = shapes[-1]
    return (f"{len(scenes)} scenes resized to {gsd:g} m/px (last: {width}x{height} px); "
            f"peak memory per worker {peak:.0f} MB")


if __name__ == "__main__":
    run_stage("resize", main, outputs=[RESIZED])
