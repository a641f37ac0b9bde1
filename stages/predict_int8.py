"""Stage predict_int8: the int8 model's smooth-blended class maps of the test scenes.

The same blending, window, overlap and test-time augmentation as predict_smooth, on ONNX
Runtime (no TensorFlow), so that evaluate can score the int8 model beside the Keras one.
"""

from tqdm import tqdm

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.geo.geoio import georeference_of, parse_crs, write_class_geotiff
from aerialseg.core.io import open_image
from aerialseg.core.model_card import card_classes
from aerialseg.core.names import EXPORT_INT8, EXPORTS, PREDICTIONS_INT8, RESIZED, SceneFiles, prediction_file
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.predict.blending import predict_smooth
from aerialseg.predict.onnx_model import OnnxSegmenter


def main() -> str:
    params = load_params()
    p = params.predict
    model = OnnxSegmenter(EXPORTS / EXPORT_INT8)
    crs = parse_crs(params.data.crs, "data.crs")  # of scenes without a CRS of their own
    classes, _ = card_classes(model.card, model.num_classes, str(EXPORTS / EXPORT_INT8))  # the card's
    scenes = read_split(RESIZED).test
    with atomic_dir(PREDICTIONS_INT8) as folder:
        for scene_id in tqdm(scenes, desc="test scenes", unit="scene"):
            path = SceneFiles(RESIZED, scene_id).image
            probabilities = predict_smooth(open_image(path), model, window=p.window, num_classes=model.num_classes,
                                           subdivisions=p.subdivisions, tta=p.tta, batch_size=p.batch_size)
            write_class_geotiff(prediction_file(folder, scene_id, "smooth"), probabilities.argmax(-1).astype("uint8"),
                                georeference_of(path, crs), classes)
    return f"{len(scenes)} test scenes, smooth ({p.tta}, subdivisions {p.subdivisions}) with {EXPORTS / EXPORT_INT8}"


if __name__ == "__main__":
    run_stage("predict_int8", main, outputs=[PREDICTIONS_INT8])
