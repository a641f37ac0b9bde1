"""Load ``params.yaml`` into frozen, validated objects that mirror the file's sections.

This module (with ``aerialseg.core.config.data_params`` for the ``data`` section) is the only one
that knows the file's shape: ``params.resize.gsd`` is ``resize: gsd:`` in the YAML. Each
key is declared once, beside its field, with its type and bounds
(``aerialseg.core.config.declarations``); rules between fields sit in the section's ``check``, rules
between sections in ``_check_across_sections``. Every problem is a
``ParamsError`` whose message starts with the dotted key at fault, so a stage can print one
line that tells the user what to fix; an unknown key (a typo) is refused with the closest
valid name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import yaml

from aerialseg.core.classes import ClassTable
from aerialseg.core.config.class_params import read_class_table
from aerialseg.core.config.data_params import DataParams
from aerialseg.core.config.declarations import (
    Boolean,
    Choice,
    Custom,
    Integer,
    Nested,
    Number,
    OrNull,
    SceneId,
    Section,
    String,
    StringList,
    param,
    parse_section,
    shown,
)
from aerialseg.core.errors import ParamsError

LR_SCHEDULES = ("exponential", "constant")
SWITCHES = ("auto", "on", "off")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
CLASS_WEIGHTING = ("none", "median_frequency")
TTA_MODES = ("d4", "flips", "none")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")  # ONNX Runtime's static-quantisation calibrators
ENCODERS = ("none", "resnet50", "efficientnetv2b0", "convnext_tiny")
ENCODER_WEIGHTS_DIR = "weights"  # a DVC dependency of train: weights files given by path live here
ENCODER_STRIDE = 32  # every supported backbone down-samples its input 32 times
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's generators take 32-bit seeds


@dataclass(frozen=True, kw_only=True)
class ResizeParams:
    """``resize``: every scene is brought to one ground sample distance, whatever its own."""

    gsd: float = param(Number(0.0, 1000.0, exclusive=True))  # metres per pixel

    RENAMED: ClassVar[dict[str, str]] = {
        "scale": "replaced by resize.gsd, the ground sample distance every scene is brought to in metres per "
                 "pixel (scale 0.125 of Potsdam's 5 cm is resize.gsd: 0.4; the seed's 0.5 is 0.1)"}


@dataclass(frozen=True, kw_only=True)
class EncodeParams:
    tolerance: int = param(Integer(minimum=0))
    max_offpalette: float = param(Number(0.0, 1.0))

    def check(self, section: Section) -> None:
        if self.tolerance > 127:
            raise ParamsError(f"{section.key('tolerance')}: {self.tolerance} could snap a colour to either of two "
                              "class colours; use a value <= 127")


@dataclass(frozen=True, kw_only=True)
class TileParams:
    patch_size: int = param(Integer(8, 8192))
    stride: int = param(Integer(minimum=1))
    shard_size: int = param(Integer(minimum=1))

    def check(self, section: Section) -> None:
        if self.stride > self.patch_size:
            raise ParamsError(f"{section.key('stride')}: {self.stride} exceeds tile.patch_size {self.patch_size}")
        shard_bytes = self.shard_size * self.patch_size**2 * 4
        if shard_bytes > 8 * 2**30:
            raise ParamsError(f"{section.key('shard_size')}: {self.shard_size} tiles of {self.patch_size}² px make "
                              f"a {shard_bytes / 2**30:.0f} GiB shard buffer; keep it under 8 GiB")


def _encoder_weights(section: Section, name: str) -> str:
    value: str = String().read(section, name)
    encoder = section.get("encoder")
    if value == "none":
        return value
    if encoder == "none":
        raise ParamsError(f"{section.key(name)}: {value!r} needs a pretrained encoder; set model.encoder "
                          f"to one of {', '.join(ENCODERS[1:])} or encoder_weights to none")
    if value == "imagenet":
        return value
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or path.parts[0] != ENCODER_WEIGHTS_DIR or len(path.parts) < 2:
        raise ParamsError(f"{section.key(name)}: {value!r} is not imagenet, none or a file under "
                          f"{ENCODER_WEIGHTS_DIR}/ (the folder DVC tracks for train, so that a new file retrains)")
    return value


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    depth: int = param(Integer(1, 10))
    base_filters: int = param(Integer(1, 1024))
    max_filters: int | None = param(Integer(1, 4096, optional=True))
    batch_norm: bool = param(Boolean())
    encoder: str = param(Choice(ENCODERS), default="none")  # none: the seed's U-Net; else a backbone
    encoder_weights: str = param(Custom(_encoder_weights), default="none")  # none | imagenet | weights/FILE
    # a pretrained stem's kernels for bands other than red, green, blue: the colours' mean, or zeros
    extra_bands: str = param(Choice(("mean", "zero")), default="mean")

    def input_multiple(self) -> tuple[int, str]:
        """What model inputs' sides must be divisible by, and how to name it in a message."""
        if self.encoder == "none":
            return 2**self.depth, "2**depth"
        return ENCODER_STRIDE, f"the output stride of encoder {self.encoder}"


@dataclass(frozen=True, kw_only=True)
class JitterParams:
    """Photometric jitter strengths; 0 turns a component off.

    ``brightness`` is an additive shift as a fraction of the 0..255 range, ``contrast``
    and ``saturation`` multiply by a factor in ``[1 - s, 1 + s]``, ``hue`` rotates by up to
    that fraction of the colour wheel. Masks are never touched.
    """

    brightness: float = param(Number(0.0, 1.0), default=0.0)
    contrast: float = param(Number(minimum=0.0), default=0.0)
    saturation: float = param(Number(minimum=0.0), default=0.0)
    hue: float = param(Number(minimum=0.0), default=0.0)

    @property
    def active(self) -> bool:
        """Whether any component changes pixels."""
        return any((self.brightness, self.contrast, self.saturation, self.hue))

    def check(self, section: Section) -> None:
        for name in ("contrast", "saturation"):
            if getattr(self, name) >= 1.0:
                raise ParamsError(f"{section.key(name)}: {getattr(self, name)} would allow a factor <= 0; "
                                  "use a value < 1")
        if self.hue > 0.5:
            raise ParamsError(f"{section.key('hue')}: {self.hue} exceeds half the colour wheel (0.5)")


def _class_weights(section: Section, name: str) -> str | tuple[tuple[str, float], ...]:
    """A weighting's name, or (class name, weight) pairs; the names are checked against the class
    table with the other rules between sections."""
    value = section.get(name)
    if isinstance(value, str):
        return Choice(CLASS_WEIGHTING).read(section, name)
    if not isinstance(value, dict):
        raise ParamsError(f"{section.key(name)}: expected one of {', '.join(CLASS_WEIGHTING)} "
                          f"or a mapping from class name to weight, got {shown(value)}")
    weights = section.section(name)
    result = tuple((str(c), Number(0.0, 1e6).read(weights, c)) for c in value)
    if not any(w for _, w in result):
        raise ParamsError(f"{section.key(name)}: at least one weight must be > 0")
    return result


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    learning_rate: float = param(Number(0.0, 10.0, exclusive=True))
    lr_schedule: str = param(Choice(LR_SCHEDULES))
    lr_decay: float = param(Number(minimum=0.0, exclusive=True))
    dice_weight: float = param(Number(0.0, 1e6))
    focal_weight: float = param(Number(0.0, 1e6))
    focal_gamma: float = param(Number(0.0, 100.0))
    mixed_precision: str = param(Choice(SWITCHES), default="off")
    jit_compile: str = param(Choice(SWITCHES), default="off")
    strategy: str = param(Choice(STRATEGIES), default="one_device")
    # "none", "median_frequency", or one relative weight per class in palette order
    class_weights: str | tuple[tuple[str, float], ...] = param(Custom(_class_weights), default="none")
    jitter: JitterParams = param(Nested(JitterParams), default=JitterParams())
    lr_floor: float = param(Number(0.0, 1.0), default=0.01)  # the schedule's floor, x learning_rate
    freeze_encoder_epochs: int = param(Integer(0, 100_000), default=0)  # the decoder alone, encoder frozen
    encoder_lr_factor: float = param(Number(0.0, 1.0, exclusive=True), default=1.0)  # relative, once thawed

    def check(self, section: Section) -> None:
        if self.lr_decay > 1.0:
            raise ParamsError(f"{section.key('lr_decay')}: {self.lr_decay} would grow the learning rate; "
                              "use a value <= 1")
        if self.dice_weight == 0 and self.focal_weight == 0:
            raise ParamsError(f"{section.key('focal_weight')}: dice_weight and focal_weight cannot both be 0")


@dataclass(frozen=True, kw_only=True)
class PredictParams:
    """``predict``: how checkpoints are blended over images; the defaults are the CLI's when nothing says more."""

    window: int = param(Integer(8, 8192), default=128)
    subdivisions: int = param(Integer(1, 64), default=2)
    tta: str = param(Choice(TTA_MODES), default="d4")
    batch_size: int = param(Integer(1, 4096), default=16)


@dataclass(frozen=True, kw_only=True)
class EvaluateParams:
    baseline_pixels: int = param(Integer(100, 100_000_000))


@dataclass(frozen=True, kw_only=True)
class ExportParams:
    """``export``: the int8 model's calibration (the export stage; ``aerialseg export`` defaults to it)."""

    calibration_tiles: int = param(Integer(1, 10_000), default=64)  # 10 000 windows of 128² are 2 GB
    calibration_method: str = param(Choice(CALIBRATION_METHODS), default="minmax")


@dataclass(frozen=True, kw_only=True)
class ReportParams:
    gallery_scene: str | None = param(OrNull(SceneId()))  # null: the first test scene
    display_bands: tuple[str, ...] | None = param(OrNull(StringList()), default=None)  # null: red, green, blue


@dataclass(frozen=True, kw_only=True)
class Params:
    """Everything in ``params.yaml``, validated, with the file's names and nesting."""

    seed: int = param(Integer(0, MAX_SEED))
    epochs: int = param(Integer(1, 100_000))
    batch_size: int = param(Integer(1, 65_536))
    checkpoint_every: int = param(Integer(minimum=1))
    jobs: int | None = param(Integer(1, 1024, optional=True))
    classes: ClassTable = param(Custom(read_class_table))
    data: DataParams = param(Nested(DataParams))
    resize: ResizeParams = param(Nested(ResizeParams))
    encode: EncodeParams = param(Nested(EncodeParams))
    tile: TileParams = param(Nested(TileParams))
    model: ModelParams = param(Nested(ModelParams))
    train: TrainParams = param(Nested(TrainParams))
    predict: PredictParams = param(Nested(PredictParams))
    evaluate: EvaluateParams = param(Nested(EvaluateParams))
    export: ExportParams = param(Nested(ExportParams))
    report: ReportParams = param(Nested(ReportParams))

    @property
    def checkpoint_epochs(self) -> list[int]:
        """Epochs after which a checkpoint is saved: every ``checkpoint_every``, and the last."""
        return checkpoint_epochs(self.epochs, self.checkpoint_every)

    def check(self, section: Section) -> None:
        _check_across_sections(self)


def checkpoint_epochs(epochs: int, every: int) -> list[int]:
    """Every ``every``-th epoch up to ``epochs``, and ``epochs`` itself."""
    found = list(range(every, epochs + 1, every))
    if not found or found[-1] != epochs:
        found.append(epochs)
    return found


def check_window(window: int, multiple: int, subdivisions: int, *, window_key: str = "predict.window",
                 subdivisions_key: str = "predict.subdivisions", multiple_is: str = "2**depth") -> None:
    """Refuse a prediction window the model cannot take or the blending cannot step through.

    Shared by the params and the CLI (which names its options instead of the keys).
    """
    if window % multiple:
        raise ParamsError(f"{window_key}: {window} is not divisible by {multiple_is} = {multiple} of the model")
    if window % subdivisions:
        raise ParamsError(f"{subdivisions_key}: window {window} is not divisible by {subdivisions}")


def _check_across_sections(params: Params) -> None:
    """The rules that tie one section to another."""
    multiple, multiple_is = params.model.input_multiple()
    if params.tile.patch_size % multiple:
        named = "2**model.depth" if params.model.encoder == "none" else multiple_is
        raise ParamsError(f"tile.patch_size: {params.tile.patch_size} is not divisible by {named} = {multiple}")
    check_window(params.predict.window, multiple, params.predict.subdivisions, multiple_is=multiple_is)
    if params.checkpoint_every > params.epochs:
        raise ParamsError(f"checkpoint_every: {params.checkpoint_every} exceeds epochs {params.epochs}")
    if params.train.freeze_encoder_epochs and params.model.encoder == "none":
        raise ParamsError(f"train.freeze_encoder_epochs: {params.train.freeze_encoder_epochs} needs a pretrained "
                          "encoder (model.encoder is none); set it to 0")
    gallery, listed = params.report.gallery_scene, params.data.split.test
    if gallery is not None and listed and gallery not in listed:
        raise ParamsError(f"report.gallery_scene: {params.report.gallery_scene} is not a test scene of "
                          f"data.{params.data.source}.test")
    params.data.folder.vector.check_classes(params.classes.names, "data.folder.vector.")
    weights, names = params.train.class_weights, params.classes.names
    if not isinstance(weights, str):
        unknown = [c for c, _ in weights if c not in names]
        missing = [c for c in names if c not in dict(weights)]
        if unknown or missing:
            problem = f"unknown class {unknown[0]!r}" if unknown else f"no weight for {missing[0]!r}"
            raise ParamsError(f"train.class_weights: {problem}; give one for each of classes.table: {', '.join(names)}")


def parse_params(raw: Any) -> Params:
    """Validate a parsed ``params.yaml`` mapping and return frozen ``Params``."""
    return parse_section(Params, Section(raw))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors name the file or the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParamsError(f"{path}: cannot be read ({err})") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    return parse_params(raw)
