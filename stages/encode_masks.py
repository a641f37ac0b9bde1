"""Stage encode_masks: official-colour labels -> uint8 class indices (255 = boundary)."""

from pathlib import Path

from tqdm import tqdm

from aerialseg.datasets.layout import MaskFiles, SceneFiles
from aerialseg.io import atomic_dir
from aerialseg.params import load_params
from aerialseg.preprocess import encode_scene
from aerialseg.stage import run_stage

SRC, OUT = Path("data/resized"), Path("data/masks")


def main() -> str:
    params = load_params()
    scenes = params.data.split.all_scenes
    ignored = 0
    with atomic_dir(OUT) as tmp:
        for scene_id in tqdm(scenes, desc="encode", unit="scene"):
            ignored += sum(encode_scene(SceneFiles(SRC, scene_id), MaskFiles(tmp, scene_id)).values())
    return f"{len(scenes)} scenes encoded; {ignored} boundary pixels set to ignore"


if __name__ == "__main__":
    run_stage("encode_masks", main)
