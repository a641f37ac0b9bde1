"""Stage download: bring every scene of the split into data/raw under its official name.

data.source synthetic draws Potsdam-like scenes; potsdam takes the official tiles from
data.potsdam.path.
"""

from pathlib import Path

from tqdm import tqdm

from aerialseg.datasets import potsdam, synthetic
from aerialseg.datasets.layout import SceneFiles
from aerialseg.io import atomic_dir
from aerialseg.params import load_params
from aerialseg.stage import run_stage

OUT = Path("data/raw")


def main() -> str:
    params = load_params()
    scenes = list(params.data.split.all_scenes)
    with atomic_dir(OUT) as tmp:
        if params.data.source == "synthetic":
            size = params.data.synthetic_scene_size
            for i, scene_id in enumerate(tqdm(scenes, desc="synthetic scenes", unit="scene")):
                scene = synthetic.generate_scene(params.seed, scene_id, size)
                synthetic.write_scene_files(SceneFiles(tmp, scene_id), scene, i)
        else:
            potsdam.collect_tiles(Path(params.data.potsdam_path), tmp, scenes)
    return f"{len(scenes)} {params.data.source} scenes in {OUT}"


if __name__ == "__main__":
    run_stage("download", main)
