"""Stage report: the seed's table, curves, gallery and progress animation, regenerated."""

from pathlib import Path

from aerialseg.params import load_params
from aerialseg.stage import run_stage

IMAGES, MASKS, MODELS, PREDICTIONS = Path("data/resized"), Path("data/masks"), Path("data/models"), Path("data/predictions")
CHECKPOINTS_JSON, EVAL_JSON, CONFUSION_JSON = Path("metrics/checkpoints.json"), Path("metrics/eval.json"), Path("metrics/confusion.json")
TABLE, REPORTS = Path("metrics/epoch_table.md"), Path("reports")


def main() -> str:
    params = load_params()
    import numpy as np
    import pandas as pd

    from aerialseg import report
    from aerialseg.datasets.layout import MaskFiles, SceneFiles
    from aerialseg.io import read_index_mask, read_json, read_rgb
    from aerialseg.prediction_cache import epoch_folder, prediction_file

    checkpoints = read_json(CHECKPOINTS_JSON)
    report.write_table(TABLE, checkpoints)
    report.training_curves(pd.read_csv(MODELS / "history.csv"), REPORTS)

    scene = params.gallery_scene
    image = read_rgb(SceneFiles(IMAGES, scene).image)
    truth = read_index_mask(MaskFiles(MASKS, scene).full)
    epochs = sorted(int(k) for k in checkpoints)
    rows = []
    for epoch in epochs:
        folder = epoch_folder(PREDICTIONS, epoch)
        rows.append((epoch, read_index_mask(prediction_file(folder, scene, "plain")),
                     read_index_mask(prediction_file(folder, scene, "smooth"))))
    report.gallery(image, truth, rows, REPORTS / "gallery.png")
    report.write_animation(report.progress_frames(image, [(e, s) for e, _, s in rows]), REPORTS / "progress.gif")
    report.before_after(image, rows[-1][1], rows[-1][2], rows[-1][0], REPORTS / "plain_vs_smooth.png")
    report.legend(REPORTS / "legend.png")
    confusion = read_json(CONFUSION_JSON)
    report.confusion_figure(np.array(confusion["smooth"]["noboundary"]), REPORTS / "confusion.png",
                            f"Test confusion, epoch {epochs[-1]}, smooth, eroded-boundary labels")
    return f"{TABLE} ({len(epochs)} rows), gallery, progress.gif, curves, confusion and legend in {REPORTS}/"


if __name__ == "__main__":
    run_stage("report", main)
