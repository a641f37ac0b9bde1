"""What every on-disk artefact is called: stage folders, scene, tile, checkpoint, state and prediction files.

Stages and library share these names instead of importing each other's code for a glob,
so reading a checkpoint list or a prediction path never pulls in training or inference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# stage outputs, relative to the project root (dvc.yaml uses the same paths)
RAW = Path("data/raw")
RESIZED = Path("data/resized")
MASKS = Path("data/masks")
TILES = Path("data/tiles")
MODELS = Path("data/models")
TRAIN_STATE = Path("data/train_state")
PREDICTIONS = Path("data/predictions")
EXPORTS = Path("data/export")  # the final checkpoint as ONNX files, fp32 and int8
PREDICTIONS_INT8 = Path("data/predictions_int8")  # the int8 model's smooth test predictions
TRAIN_LIVE = Path("metrics/train")
DATA_REPORT = Path("metrics/data_report.json")
CHECKPOINTS_JSON = Path("metrics/checkpoints.json")
EVAL_JSON = Path("metrics/eval.json")
CONFUSION_JSON = Path("metrics/confusion.json")
EPOCH_TABLE = Path("metrics/epoch_table.md")
REPORTS = Path("reports")

HISTORY_FILE = "history.csv"
TILE_INDEX_FILE = "index.csv"
TILE_MANIFEST_FILE = "manifest.json"
RUN_FILE = "run.json"
PREDICTION_KEY_FILE = "key.json"
INPUT_FILE = "input.json"  # beside raw/resized scene files: the bands by name, their type and normalisation
SPLIT_FILE = "split.json"  # beside raw/resized scene files: the scenes of each split, as download resolved them
AUDIT_FILE = "audit.json"  # beside raw/resized scene files of own data: each scene's CRS, GSD, coverage
SOURCES_FILE = "sources.json"  # beside raw/resized scene files: the archive member or file each came from
MODEL_CARD = "model_card.json"  # beside the checkpoints: what predicting needs (ground sample distance...)
PREDICTION_KINDS = ("plain", "smooth")
EXPORT_FP32 = "model.onnx"
EXPORT_INT8 = "model_int8.onnx"
POLYGON_LAYER = "classes"  # the GeoPackage layer of class polygons

_CHECKPOINT = re.compile(r"^epoch_(\d+)\.keras$")
_STATE = re.compile(r"^state_(\d+)\.weights\.h5$")
_PREDICTION_FOLDER = re.compile(r"^epoch_(\d+)$")


@dataclass(frozen=True)
class SceneFiles:
    """The files of one scene in a stage folder (``data/raw``, ``data/resized``), named by its scene id
    whatever the source: ``{scene}_image.tif`` (+ ``.tfw``; ``.tif.aux.xml`` for a CRS of its own),
    ``{scene}_label.tif``, ``{scene}_label_noboundary.tif``. Every name ends in its own suffix, so no
    two scene ids that pass the id rule (``core/config/declarations.py``) share a file. Each source maps
    its release's names to these (``prepare/sources``) and records where every file came from in
    ``SOURCES_FILE``."""

    folder: Path
    scene: str

    @property
    def image(self) -> Path:
        return Path(self.folder) / f"{self.scene}_image.tif"

    @property
    def world(self) -> Path:
        return Path(self.folder) / f"{self.scene}_image.tfw"

    @property
    def srs(self) -> Path:
        """GDAL's auxiliary file beside the image, holding the scene's own CRS where its source gives
        one (otherwise ``data.crs`` is the scene's)."""
        return Path(self.folder) / f"{self.scene}_image.tif.aux.xml"

    @property
    def label(self) -> Path:
        return Path(self.folder) / f"{self.scene}_label.tif"

    @property
    def label_noboundary(self) -> Path:
        return Path(self.folder) / f"{self.scene}_label_noboundary.tif"

    def required(self) -> list[Path]:
        """The files every stage after download needs (the world file is optional)."""
        return [self.image, self.label, self.label_noboundary]


@dataclass(frozen=True)
class MaskFiles:
    """Encoded class-index masks of one scene (uint8 PNG, 255 = ignore)."""

    folder: Path
    scene: str

    @property
    def full(self) -> Path:
        return Path(self.folder) / f"{self.scene}_full.png"

    @property
    def noboundary(self) -> Path:
        return Path(self.folder) / f"{self.scene}_noboundary.png"


def numbered(folder: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """Entries of ``folder`` whose name matches ``pattern``, by the number it captures, ascending.

    The one parser of epoch numbers in file names: checkpoints, states and prediction
    folders all go through it. A missing folder has no entries.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def checkpoint_path(folder: Path, epoch: int) -> Path:
    """The checkpoint saved after ``epoch`` (1-based) epochs."""
    return Path(folder) / f"epoch_{epoch:03d}.keras"


def list_checkpoints(folder: Path) -> dict[int, Path]:
    """Checkpoints in a models folder, by epoch, in epoch order."""
    return numbered(folder, _CHECKPOINT)


def state_path(folder: Path, epoch: int) -> Path:
    """The full training state after ``epoch`` completed epochs."""
    return Path(folder) / f"state_{epoch:04d}.weights.h5"


def list_states(folder: Path) -> dict[int, Path]:
    """Training states in a state folder, by completed epochs, oldest first."""
    return numbered(folder, _STATE)


def prediction_folder(root: Path, epoch: int) -> Path:
    """Where the test predictions of one checkpoint live."""
    return Path(root) / f"epoch_{epoch:03d}"


def list_prediction_folders(root: Path) -> dict[int, Path]:
    """Prediction folders by checkpoint epoch."""
    return {epoch: path for epoch, path in numbered(root, _PREDICTION_FOLDER).items() if path.is_dir()}


def prediction_file(folder: Path, scene: str, kind: str) -> Path:
    """The class map of one test scene in a checkpoint's prediction folder (kind: plain or smooth)."""
    return Path(folder) / f"{scene}_{kind}.tif"


def shard_files(folder: Path, split: str, shard: int) -> tuple[Path, Path]:
    """(images, masks) arrays of one shard of a split in a tile store."""
    base = Path(folder) / split
    return base / f"images_{shard:03d}.npy", base / f"masks_{shard:03d}.npy"
