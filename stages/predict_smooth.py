"""Stage predict_smooth: every checkpoint x test scene, plain tiles and smooth blending."""

from pathlib import Path

from tqdm import tqdm

from aerialseg.params import load_params
from aerialseg.stage import run_stage

IMAGES, MODELS, OUT = Path("data/resized"), Path("data/models"), Path("data/predictions")


def main() -> str:
    params = load_params()
    from aerialseg.datasets.layout import SceneFiles
    from aerialseg.inference import load_model, predict_class_maps
    from aerialseg.io import DataError, atomic_dir, read_rgb, write_index_mask
    from aerialseg.training import list_checkpoints

    checkpoints = list_checkpoints(MODELS)
    if not checkpoints:
        raise DataError(f"{MODELS}: no checkpoints; run the train stage first")
    scenes = params.data.split.test
    images = {s: read_rgb(SceneFiles(IMAGES, s).image) for s in scenes}
    p = params.predict
    with atomic_dir(OUT) as tmp:
        for epoch, path in tqdm(checkpoints.items(), desc="checkpoints", unit="ckpt"):
            model = load_model(path)
            for scene_id, image in images.items():
                plain, smooth = predict_class_maps(model, image, window=p.window, subdivisions=p.subdivisions,
                                                   tta=p.tta, batch_size=p.batch_size)
                write_index_mask(tmp / f"epoch_{epoch:03d}" / f"{scene_id}_plain.png", plain)
                write_index_mask(tmp / f"epoch_{epoch:03d}" / f"{scene_id}_smooth.png", smooth)
    return f"{len(checkpoints)} checkpoints x {len(scenes)} test scenes predicted plain and smooth ({p.tta})"


if __name__ == "__main__":
    run_stage("predict_smooth", main)
