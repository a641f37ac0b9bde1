"""Stage evaluate: score every checkpoint's test predictions, plus the colour-only baseline.

Writes metrics/checkpoints.json (per checkpoint: training values and test scores, plain
and smooth, full and eroded-boundary labels) and metrics/eval.json (the last checkpoint,
its int8 ONNX model's smooth maps as ``smooth_int8``, and the colour baseline). Reads class
maps and logs only: no TensorFlow.
"""

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import read_class_map
from aerialseg.core.io import open_image, read_index_mask, write_json
from aerialseg.core.names import (
    CHECKPOINTS_JSON,
    CONFUSION_JSON,
    EVAL_JSON,
    HISTORY_FILE,
    MASKS,
    MODELS,
    PREDICTION_KINDS,
    PREDICTIONS,
    PREDICTIONS_INT8,
    RESIZED,
    MaskFiles,
    SceneFiles,
    list_checkpoints,
    prediction_file,
    prediction_folder,
)
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.evaluate.scoring import (
    colour_baseline,
    confusion_matrices,
    label_masks,
    predict_colours,
    score_tree,
    training_values,
)


def main() -> str:
    params = load_params()
    split, classes = read_split(RESIZED), params.classes
    n = len(classes)
    labels = {s: label_masks(MASKS, s) for s in split.test}
    epochs = list(list_checkpoints(MODELS))
    if not epochs:
        raise DataError(f"{MODELS}: no checkpoints to evaluate")
    history = training_values(MODELS / HISTORY_FILE, epochs)
    per_checkpoint, matrices = {}, {}
    for epoch in epochs:
        folder = prediction_folder(PREDICTIONS, epoch)
        predictions = {s: {k: read_class_map(prediction_file(folder, s, k)) for k in PREDICTION_KINDS}
                       for s in split.test}
        matrices[epoch] = confusion_matrices(predictions, labels, n)
        per_checkpoint[f"{epoch:03d}"] = {**history.get(epoch, {}), "test": score_tree(matrices[epoch], classes)}

    train_images = [open_image(SceneFiles(RESIZED, s).image) for s in split.train]
    train_masks = [read_index_mask(MaskFiles(MASKS, s).full) for s in split.train]
    classifier = colour_baseline(train_images, train_masks, params.seed, params.evaluate.baseline_pixels)
    baseline = {s: {"colour": predict_colours(classifier, open_image(SceneFiles(RESIZED, s).image))}
                for s in split.test}
    baseline_scores = score_tree(confusion_matrices(baseline, labels, n), classes)["colour"]

    int8 = {s: {"smooth_int8": read_class_map(prediction_file(PREDICTIONS_INT8, s, "smooth"))} for s in split.test}
    int8_scores = score_tree(confusion_matrices(int8, labels, n), classes)

    last = epochs[-1]
    write_json(CHECKPOINTS_JSON, per_checkpoint)
    write_json(EVAL_JSON, {
        "epoch": last,
        "test_scenes": len(split.test),
        **per_checkpoint[f"{last:03d}"]["test"],
        **int8_scores,
        "colour_baseline": baseline_scores,
    })
    write_json(CONFUSION_JSON, {k: {lk: m.tolist() for lk, m in v.items()} for k, v in matrices[last].items()})
    key = f"miou_{n}"
    smooth = per_checkpoint[f"{last:03d}"]["test"]["smooth"]["noboundary"][key]
    plain = per_checkpoint[f"{last:03d}"]["test"]["plain"]["noboundary"][key]
    colour = baseline_scores["noboundary"][key]
    quantised = int8_scores["smooth_int8"]["noboundary"][key]
    return (f"{len(epochs)} checkpoints; epoch {last} test mIoU (noboundary, {n} classes) "
            f"smooth {smooth:.4f} (int8 {quantised:.4f}), plain {plain:.4f}, colour-only baseline {colour:.4f}")


if __name__ == "__main__":
    run_stage("evaluate", main, outputs=[EVAL_JSON.parent])
