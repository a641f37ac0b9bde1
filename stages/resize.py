"""Stage resize: Lanczos-4 images, nearest-exact labels, scaled world files -> data/resized.

Scenes are resized in parallel (params ``jobs``), one scene per worker at a time.
"""

from functools import partial
from pathlib import Path

from aerialseg.io import atomic_dir
from aerialseg.parallel import map_scenes
from aerialseg.params import load_params
from aerialseg.preprocess import resize_scene_files
from aerialseg.stage import run_stage

SRC, OUT = Path("data/raw"), Path("data/resized")


def main() -> str:
    params = load_params()
    scenes = list(params.data.split.all_scenes)
    with atomic_dir(OUT) as tmp:
        shapes, peak = map_scenes(partial(resize_scene_files, source=SRC, target=tmp, scale=params.resize_scale),
                                  scenes, params.jobs, "resize")
    height, width = shapes[-1]
    return (f"{len(scenes)} scenes resized by {params.resize_scale} (last: {width}x{height} px); "
            f"peak memory per worker {peak:.0f} MB")


if __name__ == "__main__":
    run_stage("resize", main)
