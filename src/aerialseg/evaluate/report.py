"""The seed's report, regenerated: epoch table, curves, gallery, progress animation, legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from aerialseg.core.atomic import atomic_path  # noqa: E402
from aerialseg.core.classes import ClassTable  # noqa: E402
from aerialseg.core.errors import DataError  # noqa: E402
from aerialseg.core.input_spec import RGB, InputSpec  # noqa: E402
from aerialseg.core.io import write_text  # noqa: E402
from aerialseg.core.palette import index_to_rgb  # noqa: E402

TABLE_PROTOCOL = "noboundary"


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def epoch_table(checkpoints: dict, num_classes: int) -> str:
    """The seed's "Training Metrics" table plus test mIoU and mean F1, plain vs smooth.

    One row per checkpoint, in epoch order. Test scores use the eroded-boundary labels
    and the mean over all ``num_classes`` classes.
    """
    miou, mf1 = f"miou_{num_classes}", f"mf1_{num_classes}"
    header = ("| Epoch | Loss | Accuracy | Jaccard | Val loss | Val accuracy | Val Jaccard "
              "| Test mIoU plain | Test mIoU smooth | Test mF1 plain | Test mF1 smooth |")
    lines = [header, "|" + ":---:|" * 11]
    for key in sorted(checkpoints, key=int):
        entry = checkpoints[key]
        train, val, test = entry.get("train", {}), entry.get("val", {}), entry["test"]
        cells = [str(int(key)), *(_fmt(train.get(k)) for k in ("loss", "accuracy", "jaccard")),
                 *(_fmt(val.get(k)) for k in ("loss", "accuracy", "jaccard")),
                 _fmt(test["plain"][TABLE_PROTOCOL][miou]), _fmt(test["smooth"][TABLE_PROTOCOL][miou]),
                 _fmt(test["plain"][TABLE_PROTOCOL][mf1]), _fmt(test["smooth"][TABLE_PROTOCOL][mf1])]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nTest scores: ISPRS eroded-boundary labels (boundary pixels ignored), "
            f"mean over all {num_classes} classes. "
            "Jaccard: the seed's global soft Jaccard coefficient (not a per-class IoU).\n")
    return "\n".join(lines) + "\n" + note


def _save(fig, path: Path, dpi: int = 100) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."), bbox_inches="tight")
    plt.close(fig)


def training_curves(history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Training/validation loss and IoU curves as PNG (the seed's two plots)."""
    epochs = history["epoch"] + 1
    paths = []
    for name, columns, title in (
        ("loss.png", [("loss", "training"), ("val_loss", "validation")], "Training and validation loss"),
        ("iou.png", [("mean_iou", "training mean IoU"), ("val_mean_iou", "validation mean IoU"),
                     ("jaccard", "training Jaccard (seed)"), ("val_jaccard", "validation Jaccard (seed)")],
         "Training and validation IoU"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        for column, label in columns:
            if column in history:
                ax.plot(epochs, history[column], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, out_dir / name)
        paths.append(out_dir / name)
    return paths


def display_rgb(image: np.ndarray, spec: InputSpec, display: tuple[str, ...] | None = None) -> np.ndarray:
    """An image of any bands as 8-bit RGB to look at: the bands ``display`` names (None: red, green and
    blue where all three are there, else the first three: false colour; one or two bands grey),
    each stretched by the input's normalisation (``low .. high`` onto 0 .. 255: 8-bit bands as they are).
    DataError naming ``report.display_bands`` for a band the input does not have."""
    if display is None:
        display = RGB if set(RGB) <= set(spec.bands) else spec.bands[:3]
    missing = [band for band in display if band not in spec.bands]
    if missing or len(display) not in (1, 2, 3):
        raise DataError(f"report.display_bands: {', '.join(display)}: name 1 to 3 of the input's bands "
                        f"({', '.join(spec.bands)})")
    picked = [spec.bands.index(band) for band in (display * 3)[:3]] if len(display) < 3 else \
        [spec.bands.index(band) for band in display]
    if spec.identity and image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., picked])
    low, span = spec.unit_scale()
    stretched = (image[..., picked].astype(np.float64) - low[picked]) / span[picked] * 255.0
    return np.clip(np.nan_to_num(stretched), 0, 255).astype(np.uint8)


def gallery(image: np.ndarray, truth: np.ndarray, rows: list[tuple[int, np.ndarray, np.ndarray]], path: Path,
            classes: ClassTable, thumb: int = 256) -> None:
    """The seed's "Output" table: input | ground truth | plain | smooth, one row per checkpoint."""
    n = len(rows)
    fig, axes = plt.subplots(n, 4, figsize=(4 * thumb / 100, n * thumb / 100 + 0.4), squeeze=False)
    titles = ("input", "ground truth", "plain tiles", "smooth blending")
    for r, (epoch, plain, smooth) in enumerate(rows):
        for c, picture in enumerate((image, *(index_to_rgb(m, classes.colours) for m in (truth, plain, smooth)))):
            ax = axes[r, c]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(f"epoch {epoch}", fontsize=10)
    fig.subplots_adjust(wspace=0.02, hspace=0.05)
    _save(fig, path)


def progress_frames(image: np.ndarray, rows: list[tuple[int, np.ndarray]], classes: ClassTable) -> list[np.ndarray]:
    """One frame per checkpoint: input beside the smooth prediction, the epoch printed on it."""
    import cv2

    frames = []
    for epoch, smooth in rows:
        frame = np.concatenate([image, index_to_rgb(smooth, classes.colours)], axis=1).copy()
        text = f"epoch {epoch}"
        scale = max(0.5, frame.shape[0] / 400)
        origin = (10, int(30 * scale))
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        frames.append(frame)
    return frames


def write_animation(frames: list[np.ndarray], path: Path, seconds_per_frame: float = 0.8) -> None:
    """Write frames as a looping GIF (the seed's progress video)."""
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=int(seconds_per_frame * 1000), loop=0)


def legend(path: Path, classes: ClassTable) -> None:
    """The table's classes with their colours."""
    fig, ax = plt.subplots(figsize=(3.2, max(2.2, 0.36 * len(classes))))
    for i, (name, colour) in enumerate(zip(classes.names, classes.colours, strict=True)):
        ax.add_patch(plt.Rectangle((0, -i), 0.8, 0.8, facecolor=np.array(colour) / 255, edgecolor="black"))
        ax.text(1.1, -i + 0.4, name.replace("_", " "), va="center", fontsize=10)
    ax.set_xlim(0, 5)
    ax.set_ylim(-len(classes) + 0.8, 1)
    ax.axis("off")
    _save(fig, path)


def confusion_figure(matrix: np.ndarray, path: Path, title: str, classes: ClassTable) -> None:
    """Row-normalised confusion matrix (recall per class on the diagonal)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [n.replace("_", "\n") for n in classes.names]
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    _save(fig, path)


def write_table(path: Path, checkpoints: dict, num_classes: int) -> None:
    """Write the epoch table as Markdown."""
    write_text(path, epoch_table(checkpoints, num_classes))


def before_after(image: np.ndarray, plain: np.ndarray, smooth: np.ndarray, epoch: int, path: Path,
                 classes: ClassTable, thumb: int = 384) -> None:
    """Input beside the plain tiled and the smooth-blended prediction of one checkpoint."""
    fig, axes = plt.subplots(1, 3, figsize=(3 * thumb / 100, thumb / 100 + 0.5))
    pictures = (image, index_to_rgb(plain, classes.colours), index_to_rgb(smooth, classes.colours))
    for ax, picture, title in zip(axes, pictures,
                                  ("input", f"plain tiles (epoch {epoch})", f"smooth blending (epoch {epoch})"),
                                  strict=True):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.subplots_adjust(wspace=0.03)
    _save(fig, path)
