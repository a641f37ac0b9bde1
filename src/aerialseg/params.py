"""Load ``params.yaml`` into frozen, validated objects.

This is the only module that knows the file's shape. Every problem is reported as a
``ParamsError`` whose message starts with the dotted key at fault, so a stage can print
one line that tells the user what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aerialseg.blending import TTA_MODES
from aerialseg.palette import CLASS_NAMES

DATA_SOURCES = ("synthetic", "potsdam")
LR_SCHEDULES = ("exponential", "constant")
SWITCHES = ("auto", "on", "off")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
CLASS_WEIGHTING = ("none", "median_frequency")
JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")
_TILE_ID = re.compile(r"^\d+_\d+$")


class ParamsError(ValueError):
    """A parameter is missing, of the wrong type, or out of range."""


@dataclass(frozen=True)
class Split:
    """Scene ids of each split; a scene belongs to exactly one split."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def items(self) -> list[tuple[str, tuple[str, ...]]]:
        """(split name, scene ids) pairs in a fixed order."""
        return [("train", self.train), ("val", self.val), ("test", self.test)]

    @property
    def all_scenes(self) -> tuple[str, ...]:
        """Every scene id, train first."""
        return self.train + self.val + self.test


@dataclass(frozen=True)
class DataParams:
    source: str
    exclude: tuple[str, ...]
    synthetic_scene_size: int
    synthetic_split: Split
    potsdam_path: str
    potsdam_split: Split
    # (url, sha256) of archives to fetch into potsdam_path before extracting
    potsdam_downloads: tuple[tuple[str, str], ...] = ()

    @property
    def split(self) -> Split:
        """The split of the active source, with excluded tiles removed."""
        split = self.synthetic_split if self.source == "synthetic" else self.potsdam_split
        keep = lambda ids: tuple(i for i in ids if i not in self.exclude)  # noqa: E731
        return Split(keep(split.train), keep(split.val), keep(split.test))


@dataclass(frozen=True)
class TileParams:
    patch_size: int
    stride: int
    shard_size: int


@dataclass(frozen=True)
class ModelParams:
    depth: int
    base_filters: int
    max_filters: int | None
    batch_norm: bool


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float
    lr_schedule: str
    lr_decay: float
    dice_weight: float
    focal_weight: float
    focal_gamma: float
    mixed_precision: str
    jit_compile: str
    strategy: str
    # "none", "median_frequency", or one relative weight per class in palette order
    class_weights: str | tuple[float, ...]
    jitter: dict[str, float]


@dataclass(frozen=True)
class EncodeParams:
    tolerance: int
    max_offpalette: float


@dataclass(frozen=True)
class PredictParams:
    window: int
    subdivisions: int
    tta: str
    batch_size: int


@dataclass(frozen=True)
class Params:
    """Everything in ``params.yaml``, validated."""

    seed: int
    epochs: int
    batch_size: int
    checkpoint_every: int
    data: DataParams
    resize_scale: float
    encode: EncodeParams
    jobs: int | None
    tile: TileParams
    model: ModelParams
    train: TrainParams
    predict: PredictParams
    baseline_pixels: int
    gallery_scene: str

    @property
    def checkpoint_epochs(self) -> list[int]:
        """Epochs after which a checkpoint is saved: every ``checkpoint_every``, and the last."""
        epochs = list(range(self.checkpoint_every, self.epochs + 1, self.checkpoint_every))
        if epochs[-1] != self.epochs:
            epochs.append(self.epochs)
        return epochs


class _Reader:
    """Typed access to a nested mapping that names the dotted key in every error."""

    def __init__(self, raw: Any, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            where = prefix.rstrip(".") or "params"
            raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
        self.raw = raw
        self.prefix = prefix

    def key(self, name: str) -> str:
        return self.prefix + name

    def get(self, name: str) -> Any:
        if name not in self.raw:
            raise ParamsError(f"{self.key(name)}: missing")
        return self.raw[name]

    def section(self, name: str) -> "_Reader":
        return _Reader(self.get(name), self.key(name) + ".")

    def integer(self, name: str, minimum: int | None = None) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{self.key(name)}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ParamsError(f"{self.key(name)}: must be >= {minimum}, got {value}")
        return value

    def number(self, name: str, minimum: float | None = None, exclusive: bool = False) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{self.key(name)}: expected a number, got {value!r}")
        value = float(value)
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            op = ">" if exclusive else ">="
            raise ParamsError(f"{self.key(name)}: must be {op} {minimum}, got {value}")
        return value

    def optional_integer(self, name: str, minimum: int) -> int | None:
        if self.get(name) is None:
            return None
        return self.integer(name, minimum)

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise ParamsError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.get(name)
        if value not in choices:
            raise ParamsError(
                f"{self.key(name)}: unknown value {value!r}; expected one of {', '.join(choices)}"
            )
        return value

    def string(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return value

    def tile_ids(self, name: str, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.get(name)
        if not isinstance(value, list) or (not value and not allow_empty):
            raise ParamsError(f"{self.key(name)}: expected a list of tile ids like 2_10")
        for item in value:
            if not isinstance(item, str):
                raise ParamsError(f"{self.key(name)}: {item!r} is not a quoted tile id; write \"2_10\", "
                                  "not 2_10 (YAML reads 2_10 as the number 210)")
        ids = tuple(value)
        for tile_id in ids:
            if not _TILE_ID.match(tile_id):
                raise ParamsError(f"{self.key(name)}: {tile_id!r} is not a tile id like 2_10")
        if len(set(ids)) != len(ids):
            raise ParamsError(f"{self.key(name)}: lists a tile twice")
        return ids


def _split(section: _Reader) -> Split:
    split = Split(section.tile_ids("train"), section.tile_ids("val"), section.tile_ids("test"))
    seen: dict[str, str] = {}
    for name, ids in split.items():
        for tile_id in ids:
            if tile_id in seen:
                raise ParamsError(
                    f"{section.key(name)}: tile {tile_id} is also in {seen[tile_id]}; "
                    "a scene must belong to one split only"
                )
            seen[tile_id] = section.key(name)
    return split


def parse_params(raw: Any) -> Params:
    """Validate a parsed ``params.yaml`` mapping and return frozen ``Params``."""
    root = _Reader(raw)
    data = root.section("data")
    synthetic = data.section("synthetic")
    potsdam = data.section("potsdam")
    data_params = DataParams(
        source=data.choice("source", DATA_SOURCES),
        exclude=data.tile_ids("exclude", allow_empty=True),
        synthetic_scene_size=synthetic.integer("scene_size", minimum=256),
        synthetic_split=_split(synthetic),
        potsdam_path=potsdam.string("path"),
        potsdam_split=_split(potsdam),
        potsdam_downloads=_downloads(potsdam),
    )
    model_section = root.section("model")
    model = ModelParams(
        depth=model_section.integer("depth", minimum=1),
        base_filters=model_section.integer("base_filters", minimum=1),
        max_filters=model_section.optional_integer("max_filters", minimum=1),
        batch_norm=model_section.boolean("batch_norm"),
    )
    tile_section = root.section("tile")
    tile = TileParams(
        patch_size=tile_section.integer("patch_size", minimum=8),
        stride=tile_section.integer("stride", minimum=1),
        shard_size=tile_section.integer("shard_size", minimum=1),
    )
    multiple = 2**model.depth
    if tile.patch_size % multiple:
        raise ParamsError(
            f"tile.patch_size: {tile.patch_size} is not divisible by 2**model.depth = {multiple}"
        )
    if tile.stride > tile.patch_size:
        raise ParamsError(f"tile.stride: {tile.stride} exceeds tile.patch_size {tile.patch_size}")
    predict_section = root.section("predict")
    predict = PredictParams(
        window=predict_section.integer("window", minimum=8),
        subdivisions=predict_section.integer("subdivisions", minimum=1),
        tta=predict_section.choice("tta", TTA_MODES),
        batch_size=predict_section.integer("batch_size", minimum=1),
    )
    if predict.window % multiple:
        raise ParamsError(
            f"predict.window: {predict.window} is not divisible by 2**model.depth = {multiple}"
        )
    if predict.window % predict.subdivisions:
        raise ParamsError(
            f"predict.subdivisions: window {predict.window} is not divisible by "
            f"{predict.subdivisions}"
        )
    train_section = root.section("train")
    train = TrainParams(
        learning_rate=train_section.number("learning_rate", minimum=0.0, exclusive=True),
        lr_schedule=train_section.choice("lr_schedule", LR_SCHEDULES),
        lr_decay=train_section.number("lr_decay", minimum=0.0, exclusive=True),
        dice_weight=train_section.number("dice_weight", minimum=0.0),
        focal_weight=train_section.number("focal_weight", minimum=0.0),
        focal_gamma=train_section.number("focal_gamma", minimum=0.0),
        mixed_precision=train_section.choice("mixed_precision", SWITCHES),
        jit_compile=train_section.choice("jit_compile", SWITCHES),
        strategy=train_section.choice("strategy", STRATEGIES),
        class_weights=_class_weights(train_section),
        jitter=_jitter(train_section.section("jitter")),
    )
    if train.lr_decay > 1.0:
        raise ParamsError(f"train.lr_decay: {train.lr_decay} would grow the learning rate; use a value <= 1")
    if train.dice_weight == 0 and train.focal_weight == 0:
        raise ParamsError("train.focal_weight: dice_weight and focal_weight cannot both be 0")
    epochs = root.integer("epochs", minimum=1)
    checkpoint_every = root.integer("checkpoint_every", minimum=1)
    if checkpoint_every > epochs:
        raise ParamsError(f"checkpoint_every: {checkpoint_every} exceeds epochs {epochs}")
    scale = root.section("resize").number("scale", minimum=0.0, exclusive=True)
    if scale > 1.0:
        raise ParamsError(f"resize.scale: {scale} would enlarge the images; use a value <= 1")
    params = Params(
        seed=root.integer("seed", minimum=0),
        epochs=epochs,
        batch_size=root.integer("batch_size", minimum=1),
        checkpoint_every=checkpoint_every,
        data=data_params,
        resize_scale=scale,
        encode=_encode(root.section("encode")),
        jobs=root.optional_integer("jobs", minimum=1),
        tile=tile,
        model=model,
        train=train,
        predict=predict,
        baseline_pixels=root.section("evaluate").integer("baseline_pixels", minimum=100),
        gallery_scene=str(root.section("report").get("gallery_scene")),
    )
    split = params.data.split
    for name, ids in split.items():
        if not ids:
            raise ParamsError(f"data.{params.data.source}.{name}: no tiles left after data.exclude")
    if params.gallery_scene not in split.test:
        raise ParamsError(
            f"report.gallery_scene: {params.gallery_scene} is not a test scene of "
            f"data.{params.data.source}.test"
        )
    return params


def _encode(section: _Reader) -> EncodeParams:
    encode = EncodeParams(tolerance=section.integer("tolerance", minimum=0),
                          max_offpalette=section.number("max_offpalette", minimum=0.0))
    if encode.tolerance > 127:
        raise ParamsError(f"{section.key('tolerance')}: {encode.tolerance} could snap a colour to either of two "
                          "class colours; use a value <= 127")
    if encode.max_offpalette > 1:
        raise ParamsError(f"{section.key('max_offpalette')}: {encode.max_offpalette} is a share; use 0..1")
    return encode


def _string_list(section: _Reader, name: str) -> list[str]:
    value = section.get(name)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ParamsError(f"{section.key(name)}: expected a string, a list of strings or null, got {value!r}")
    return values


def _downloads(section: _Reader) -> tuple[tuple[str, str], ...]:
    urls, sums = _string_list(section, "url"), _string_list(section, "sha256")
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise ParamsError(f"{section.key('url')}: {url!r} is not an http(s) URL")
    if len(sums) != len(urls):
        raise ParamsError(f"{section.key('sha256')}: give one checksum per url ({len(urls)} url(s), "
                          f"{len(sums)} checksum(s)); downloads are always verified")
    for digest in sums:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ParamsError(f"{section.key('sha256')}: {digest!r} is not a 64-digit hex SHA-256")
    return tuple(zip(urls, (d.lower() for d in sums)))


def _class_weights(section: _Reader) -> str | tuple[float, ...]:
    value = section.get("class_weights")
    if isinstance(value, str):
        return section.choice("class_weights", CLASS_WEIGHTING)
    if not isinstance(value, dict):
        raise ParamsError(f"{section.key('class_weights')}: expected one of {', '.join(CLASS_WEIGHTING)} "
                          f"or a mapping from class name to weight, got {value!r}")
    unknown = sorted(set(value) - set(CLASS_NAMES))
    missing = [name for name in CLASS_NAMES if name not in value]
    if unknown or missing:
        problem = f"unknown class {unknown[0]!r}" if unknown else f"no weight for {missing[0]!r}"
        raise ParamsError(f"{section.key('class_weights')}: {problem}; give all of {', '.join(CLASS_NAMES)}")
    weights = section.section("class_weights")
    result = tuple(weights.number(name, minimum=0.0) for name in CLASS_NAMES)
    if not any(result):
        raise ParamsError(f"{section.key('class_weights')}: at least one weight must be > 0")
    return result


def _jitter(section: _Reader) -> dict[str, float]:
    unknown = sorted(set(section.raw) - set(JITTER_KEYS))
    if unknown:
        raise ParamsError(f"{section.key(unknown[0])}: unknown key; expected {', '.join(JITTER_KEYS)}")
    jitter = {name: section.number(name, minimum=0.0) for name in JITTER_KEYS}
    for name in ("contrast", "saturation"):
        if jitter[name] >= 1.0:
            raise ParamsError(f"{section.key(name)}: {jitter[name]} would allow a factor <= 0; use a value < 1")
    if jitter["hue"] > 0.5:
        raise ParamsError(f"{section.key('hue')}: {jitter['hue']} exceeds half the colour wheel (0.5)")
    return jitter


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors name the file or the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    return parse_params(raw)
