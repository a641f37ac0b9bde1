"""Stage predict_smooth: every checkpoint x test scene, plain tiles and smooth blending.

Class maps are GeoTIFFs on the resized scene's grid, in ``data.crs``, with the classes and
colours of the model card beside the checkpoints; the ``predict`` params set window, overlap
and tta. Predictions of checkpoints whose weights, settings (the output format, CRS and
classes included), test images and predicting code did not change are reused
(data/predictions persists between runs), so extending ``epochs`` only predicts the new
checkpoints.
"""

from dataclasses import asdict

from tqdm import tqdm

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import georeference_of, parse_crs, write_class_geotiff
from aerialseg.core.io import open_image
from aerialseg.core.model_card import card_classes, read_card_file
from aerialseg.core.names import MODEL_CARD, MODELS, PREDICTIONS, RESIZED, SceneFiles, list_checkpoints, prediction_file
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.predict import prediction_cache as cache
from aerialseg.predict.inference import predict_class_maps, prediction_code_digest, weights_fingerprint
from aerialseg.predict.loading import load_model


def main() -> str:
    params = load_params()
    checkpoints = list_checkpoints(MODELS)
    if not checkpoints:
        raise DataError(f"{MODELS}: no checkpoints; run the train stage first")
    card = read_card_file(MODELS / MODEL_CARD)  # what train wrote: the classes the checkpoints predict
    if card.classes is None:
        raise DataError(f"{MODELS / MODEL_CARD}: names no classes; run the train stage again")
    scenes = read_split(RESIZED).test
    paths = {s: SceneFiles(RESIZED, s).image for s in scenes}
    images = {s: open_image(p) for s, p in paths.items()}
    crs = parse_crs(params.data.crs, "data.crs")
    grids = {s: georeference_of(path, crs) for s, path in paths.items()}
    p = params.predict
    # what is written is part of what is cached: GeoTIFFs in this CRS, in the class table's colours
    settings = {**asdict(p), "format": "geotiff", "crs": crs.to_wkt(), "classes": card.classes.legend()}
    own = {s: grid.crs.to_wkt() for s, grid in grids.items() if grid.crs is not None and grid.crs != crs}
    if own:  # scenes in a CRS of their own (data.source folder): their maps are in it
        settings["scene_crs"] = own
    code = prediction_code_digest()
    new, reused = [], []
    for epoch, path in tqdm(checkpoints.items(), desc="checkpoints", unit="ckpt"):
        model = load_model(path)
        classes, _ = card_classes(card, int(model.output_shape[-1]), str(path))  # refuses a mismatch
        key = cache.prediction_key(weights_fingerprint(model), settings, paths, code)
        if cache.is_current(PREDICTIONS, epoch, key):
            reused.append(epoch)
            continue
        with cache.store(PREDICTIONS, epoch, key) as folder:
            for scene_id, image in images.items():
                plain, smooth = predict_class_maps(model, image, window=p.window, subdivisions=p.subdivisions,
                                                   tta=p.tta, batch_size=p.batch_size)
                for kind, class_map in (("plain", plain), ("smooth", smooth)):
                    # on the resized image's grid, with its CRS: opens in place in QGIS
                    write_class_geotiff(prediction_file(folder, scene_id, kind), class_map, grids[scene_id],
                                        classes)
        new.append(epoch)
    removed = cache.prune(PREDICTIONS, set(checkpoints))
    return (f"predicted {len(new)} new checkpoint(s), reused {len(reused)}, removed {len(removed)} stale; "
            f"{len(scenes)} test scenes, plain and smooth ({p.tta}, subdivisions {p.subdivisions})")


if __name__ == "__main__":
    run_stage("predict_smooth", main, outputs=[PREDICTIONS])
