"""Stage export: the final checkpoint as ONNX files, fp32 and int8, each carrying the model card.

The int8 model is calibrated on a seeded sample of training tiles (``export`` in params.yaml)
and scored on the test scenes by the next stages (predict_int8, evaluate), so its accuracy
cost is a tracked metric. Both files run with ``aerialseg predict``.
"""

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.model_card import read_card_file
from aerialseg.core.names import EXPORT_FP32, EXPORT_INT8, EXPORTS, MODEL_CARD, MODELS, TILES, list_checkpoints
from aerialseg.core.stage import run_stage
from aerialseg.predict.calibration import calibration_windows
from aerialseg.predict.export import export_model
from aerialseg.predict.quantize import SPEED_WINDOWS, Calibration, quantize_int8, speed_note


def main() -> str:
    params = load_params()
    checkpoints = list_checkpoints(MODELS)
    if not checkpoints:
        raise DataError(f"{MODELS}: no checkpoints; run the train stage first")
    epoch, checkpoint = max(checkpoints.items())
    card = read_card_file(MODELS / MODEL_CARD)  # the export carries what train recorded
    p, e = params.predict, params.export
    windows = calibration_windows([TILES], e.calibration_tiles, params.seed, p.window, fixed_window=False)
    source = f"{len(windows)} train tiles of {TILES}, seed {params.seed}"
    with atomic_dir(EXPORTS) as folder:
        export_model(checkpoint, folder / EXPORT_FP32, "onnx", gsd_m=card.ground_sample_distance_m, window=p.window,
                     subdivisions=p.subdivisions, tta=p.tta, card=card)
        speed: list[float] = []
        quantize_int8(folder / EXPORT_FP32, folder / EXPORT_INT8, Calibration(windows, e.calibration_method, source),
                      on_speed=speed.append)
    note = speed_note(EXPORT_INT8, speed[0], SPEED_WINDOWS)  # this machine's measure: said, not an output
    return (f"epoch {epoch} as {EXPORTS / EXPORT_FP32} and {EXPORT_INT8} (int8, {e.calibration_method} on {source}); "
            f"{note}")


if __name__ == "__main__":
    run_stage("export", main, outputs=[EXPORTS])
