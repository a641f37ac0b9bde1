"""Stage report: the seed's table, curves, gallery and progress animation, regenerated."""

import numpy as np
import pandas as pd

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import read_class_map
from aerialseg.core.input_spec import read_input
from aerialseg.core.io import open_image, read_index_mask, read_json
from aerialseg.core.names import (
    CHECKPOINTS_JSON,
    CONFUSION_JSON,
    EPOCH_TABLE,
    HISTORY_FILE,
    MASKS,
    MODELS,
    PREDICTIONS,
    REPORTS,
    RESIZED,
    SPLIT_FILE,
    MaskFiles,
    SceneFiles,
    prediction_file,
    prediction_folder,
)
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.evaluate import report


def main() -> str:
    params = load_params()
    classes = params.classes
    checkpoints = read_json(CHECKPOINTS_JSON)
    report.write_table(EPOCH_TABLE, checkpoints, len(classes))
    report.training_curves(pd.read_csv(MODELS / HISTORY_FILE), REPORTS)

    test = read_split(RESIZED).test
    scene = params.report.gallery_scene or test[0]
    if scene not in test:
        raise DataError(f"report.gallery_scene: {scene} is not a test scene ({RESIZED / SPLIT_FILE}: "
                        f"{', '.join(test)})")
    image = report.display_rgb(open_image(SceneFiles(RESIZED, scene).image), read_input(RESIZED),
                               params.report.display_bands)
    truth = read_index_mask(MaskFiles(MASKS, scene).full)
    epochs = sorted(int(k) for k in checkpoints)
    rows = []
    for epoch in epochs:
        folder = prediction_folder(PREDICTIONS, epoch)
        rows.append((epoch, read_class_map(prediction_file(folder, scene, "plain")),
                     read_class_map(prediction_file(folder, scene, "smooth"))))
    report.gallery(image, truth, rows, REPORTS / "gallery.png", classes)
    frames = report.progress_frames(image, [(e, s) for e, _, s in rows], classes)
    report.write_animation(frames, REPORTS / "progress.gif")
    report.before_after(image, rows[-1][1], rows[-1][2], rows[-1][0], REPORTS / "plain_vs_smooth.png",
                        classes)
    report.legend(REPORTS / "legend.png", classes)
    confusion = read_json(CONFUSION_JSON)
    report.confusion_figure(np.array(confusion["smooth"]["noboundary"]), REPORTS / "confusion.png",
                            f"Test confusion, epoch {epochs[-1]}, smooth, eroded-boundary labels", classes)
    return f"{EPOCH_TABLE} ({len(epochs)} rows), gallery, progress.gif, curves, confusion and legend in {REPORTS}/"


if __name__ == "__main__":
    run_stage("report", main, outputs=[REPORTS, EPOCH_TABLE.parent])
