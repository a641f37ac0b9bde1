"""Stage resize: Lanczos-4 images, nearest-exact labels, scaled world files -> data/resized."""

from pathlib import Path

from tqdm import tqdm

from aerialseg.datasets.layout import SceneFiles
from aerialseg.io import atomic_dir
from aerialseg.params import load_params
from aerialseg.preprocess import resize_scene
from aerialseg.stage import run_stage

SRC, OUT = Path("data/raw"), Path("data/resized")


def main() -> str:
    params = load_params()
    scenes = params.data.split.all_scenes
    shape = None
    with atomic_dir(OUT) as tmp:
        for scene_id in tqdm(scenes, desc="resize", unit="scene"):
            shape = resize_scene(SceneFiles(SRC, scene_id), SceneFiles(tmp, scene_id), params.resize_scale)
    return f"{len(scenes)} scenes resized by {params.resize_scale} (last: {shape[1]}x{shape[0]} px)"


if __name__ == "__main__":
    run_stage("resize", main)
