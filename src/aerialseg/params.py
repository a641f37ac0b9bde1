"""Load ``params.yaml`` into frozen, validated objects that mirror the file's sections.

This is the only module that knows the file's shape: ``params.resize.scale`` is
``resize: scale:`` in the YAML. Every problem is a ``ParamsError`` whose message starts
with the dotted key at fault, so a stage can print one line that tells the user what to
fix; an unknown key (a typo) is refused with the closest valid name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import yaml

from aerialseg.errors import ParamsError
from aerialseg.palette import CLASS_COLOURS, CLASS_NAMES

DATA_SOURCES = ("synthetic", "potsdam")
LR_SCHEDULES = ("exponential", "constant")
SWITCHES = ("auto", "on", "off")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
CLASS_WEIGHTING = ("none", "median_frequency")
TTA_MODES = ("d4", "flips", "none")
ENCODERS = ("none", "resnet50", "efficientnetv2b0", "convnext_tiny")
ENCODER_WEIGHTS_DIR = "weights"  # a DVC dependency of train: weights files given by path live here
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's generators take 32-bit seeds
_TILE_ID = re.compile(r"^\d+_\d+$")
_QUOTE_HINT = 'write "2_10", not 2_10 (YAML reads 2_10 as the number 210)'


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

    def without(self, excluded: tuple[str, ...]) -> "Split":
        """The same split with ``excluded`` tiles removed everywhere."""
        keep = lambda ids: tuple(i for i in ids if i not in excluded)  # noqa: E731
        return Split(keep(self.train), keep(self.val), keep(self.test))


@dataclass(frozen=True)
class SyntheticParams:
    """``data.synthetic``: the built-in generator's scene size and split."""

    scene_size: int
    split: Split


@dataclass(frozen=True)
class PotsdamParams:
    """``data.potsdam``: where the official release lies, optional mirrors, and the split."""

    path: str
    url: tuple[str, ...]
    sha256: tuple[str, ...]
    split: Split

    @property
    def downloads(self) -> tuple[tuple[str, str], ...]:
        """(url, sha256) of every archive to fetch into ``path`` before extracting."""
        return tuple(zip(self.url, self.sha256))


@dataclass(frozen=True)
class DataParams:
    """``data``: the source, the tiles left out, and each source's settings."""

    source: str
    exclude: tuple[str, ...]
    synthetic: SyntheticParams
    potsdam: PotsdamParams
    crs: str = "EPSG:25833"  # of scenes whose world files place them without saying in which CRS

    @property
    def split(self) -> Split:
        """The split of the active source, with excluded tiles removed."""
        active = self.synthetic if self.source == "synthetic" else self.potsdam
        return active.split.without(self.exclude)


@dataclass(frozen=True)
class ResizeParams:
    scale: float


@dataclass(frozen=True)
class EncodeParams:
    tolerance: int
    max_offpalette: float


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
    encoder: str = "none"  # "none": the seed's U-Net; else a keras.applications backbone
    encoder_weights: str = "none"  # "none" | "imagenet" | a file under weights/


@dataclass(frozen=True)
class JitterParams:
    """Photometric jitter strengths; 0 turns a component off.

    ``brightness`` is an additive shift as a fraction of the 0..255 range, ``contrast``
    and ``saturation`` multiply by a factor in ``[1 - s, 1 + s]``, ``hue`` rotates by up to
    that fraction of the colour wheel. Masks are never touched.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    @property
    def active(self) -> bool:
        """Whether any component changes pixels."""
        return any((self.brightness, self.contrast, self.saturation, self.hue))


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float
    lr_schedule: str
    lr_decay: float
    dice_weight: float
    focal_weight: float
    focal_gamma: float
    mixed_precision: str = "off"
    jit_compile: str = "off"
    strategy: str = "one_device"
    # "none", "median_frequency", or one relative weight per class in palette order
    class_weights: str | tuple[float, ...] = "none"
    jitter: JitterParams = JitterParams()
    lr_floor: float = 0.01  # the exponential schedule never goes below lr_floor * learning_rate
    freeze_encoder_epochs: int = 0  # epochs training the decoder alone, encoder frozen
    encoder_lr_factor: float = 1.0  # the encoder's learning rate, relative, once unfrozen


@dataclass(frozen=True)
class PredictParams:
    window: int
    subdivisions: int
    tta: str
    batch_size: int


@dataclass(frozen=True)
class EvaluateParams:
    baseline_pixels: int


@dataclass(frozen=True)
class ReportParams:
    gallery_scene: str


@dataclass(frozen=True)
class Params:
    """Everything in ``params.yaml``, validated, with the file's names and nesting."""

    seed: int
    epochs: int
    batch_size: int
    checkpoint_every: int
    jobs: int | None
    data: DataParams
    resize: ResizeParams
    encode: EncodeParams
    tile: TileParams
    model: ModelParams
    train: TrainParams
    predict: PredictParams
    evaluate: EvaluateParams
    report: ReportParams

    @property
    def checkpoint_epochs(self) -> list[int]:
        """Epochs after which a checkpoint is saved: every ``checkpoint_every``, and the last."""
        return checkpoint_epochs(self.epochs, self.checkpoint_every)


def checkpoint_epochs(epochs: int, every: int) -> list[int]:
    """Every ``every``-th epoch up to ``epochs``, and ``epochs`` itself."""
    found = list(range(every, epochs + 1, every))
    if not found or found[-1] != epochs:
        found.append(epochs)
    return found


class _Section:
    """Typed access to one mapping of the file; names the dotted key in every error.

    ``close()`` refuses the keys nobody asked for, so a misspelt key is an error instead
    of a silently ignored setting.
    """

    def __init__(self, raw: Any, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            where = prefix.rstrip(".") or "params"
            raise ParamsError(f"{where}: expected a mapping, got {_shown(raw)}")
        self.raw = raw
        self.prefix = prefix
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return self.prefix + name

    def get(self, name: str) -> Any:
        self.read.add(name)
        if name not in self.raw:
            raise ParamsError(f"{self.key(name)}: missing")
        return self.raw[name]

    def section(self, name: str) -> "_Section":
        return _Section(self.get(name), self.key(name) + ".")

    def close(self) -> None:
        unknown = sorted((k for k in self.raw if k not in self.read), key=str)
        if unknown:
            name = str(unknown[0])
            close = difflib.get_close_matches(name, sorted(self.read), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(sorted(self.read))}"
            shown = name if re.fullmatch(r"[\w.-]+", name) else _shown(unknown[0])  # a key with a newline, say
            raise ParamsError(f"{self.key(shown)}: unknown key; {hint}")

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{self.key(name)}: expected an integer, got {_shown(value)}")
        if minimum is not None and value < minimum:
            raise ParamsError(f"{self.key(name)}: must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ParamsError(f"{self.key(name)}: must be <= {maximum}, got {value}")
        return value

    def number(self, name: str, minimum: float | None = None, exclusive: bool = False,
               maximum: float | None = None) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ParamsError(f"{self.key(name)}: expected a number, got {_shown(value)}")
        value = float(value)
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            raise ParamsError(f"{self.key(name)}: must be {'>' if exclusive else '>='} {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ParamsError(f"{self.key(name)}: must be <= {maximum}, got {value}")
        return value

    def optional_integer(self, name: str, minimum: int, maximum: int | None = None) -> int | None:
        if self.get(name) is None:
            return None
        return self.integer(name, minimum, maximum)

    def boolean(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise ParamsError(f"{self.key(name)}: expected true or false, got {_shown(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.get(name)
        if not isinstance(value, str) or value not in choices:
            raise ParamsError(f"{self.key(name)}: unknown value {_shown(value)}; expected one of {', '.join(choices)}")
        return value

    def string(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{self.key(name)}: expected a non-empty string, got {_shown(value)}")
        return value

    def tile_id(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise ParamsError(f"{self.key(name)}: {_shown(value)} is not a quoted tile id; {_QUOTE_HINT}")
        if not _TILE_ID.match(value):
            raise ParamsError(f"{self.key(name)}: {_shown(value)} is not a tile id like 2_10")
        return value

    def tile_ids(self, name: str, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.get(name)
        if not isinstance(value, list) or (not value and not allow_empty):
            hint = f"; {_QUOTE_HINT}" if isinstance(value, int) else ""
            raise ParamsError(f"{self.key(name)}: expected a list of tile ids like [\"2_10\"], "
                              f"got {_shown(value)}{hint}")
        for item in value:
            if not isinstance(item, str):
                raise ParamsError(f"{self.key(name)}: {_shown(item)} is not a quoted tile id; {_QUOTE_HINT}")
            if not _TILE_ID.match(item):
                raise ParamsError(f"{self.key(name)}: {_shown(item)} is not a tile id like 2_10")
        if len(set(value)) != len(value):
            raise ParamsError(f"{self.key(name)}: lists a tile twice")
        return tuple(value)

    def string_list(self, name: str) -> tuple[str, ...]:
        """A string, a list of non-empty strings, or null (no strings)."""
        value = self.get(name)
        if value is None:
            return ()
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ParamsError(f"{self.key(name)}: expected a string, a list of strings or null, got {_shown(value)}")
        return tuple(values)


def _shown(value: Any, limit: int = 60) -> str:
    """A value as it should appear in a one-line message: repr, shortened."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sectioned(root: _Section, name: str, parse: Callable[[_Section], Any]) -> Any:
    """Parse one section with ``parse`` and refuse its unknown keys."""
    section = root.section(name)
    value = parse(section)
    section.close()
    return value


def _split(section: _Section) -> Split:
    split = Split(section.tile_ids("train"), section.tile_ids("val"), section.tile_ids("test"))
    seen: dict[str, str] = {}
    for name, ids in split.items():
        for tile_id in ids:
            if tile_id in seen:
                raise ParamsError(f"{section.key(name)}: tile {tile_id} is also in {seen[tile_id]}; "
                                  "a scene must belong to one split only")
            seen[tile_id] = section.key(name)
    return split


def _synthetic(section: _Section) -> SyntheticParams:
    return SyntheticParams(scene_size=section.integer("scene_size", minimum=256, maximum=20_000),
                           split=_split(section))


def _potsdam(section: _Section) -> PotsdamParams:
    urls, sums = section.string_list("url"), section.string_list("sha256")
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise ParamsError(f"{section.key('url')}: {url!r} is not an http(s) URL")
    if len(sums) != len(urls):
        raise ParamsError(f"{section.key('sha256')}: give one checksum per url ({len(urls)} url(s), "
                          f"{len(sums)} checksum(s)); downloads are always verified")
    for digest in sums:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ParamsError(f"{section.key('sha256')}: {_shown(digest)} is not a 64-digit hex SHA-256")
    return PotsdamParams(path=section.string("path"), url=urls, sha256=tuple(d.lower() for d in sums),
                         split=_split(section))


def _data(section: _Section) -> DataParams:
    data = DataParams(source=section.choice("source", DATA_SOURCES),
                      exclude=section.tile_ids("exclude", allow_empty=True),
                      synthetic=_sectioned(section, "synthetic", _synthetic),
                      potsdam=_sectioned(section, "potsdam", _potsdam),
                      crs=section.string("crs"))
    for name, ids in data.split.items():
        if not ids:
            raise ParamsError(f"data.{data.source}.{name}: no tiles left after data.exclude")
    return data


def _resize(section: _Section) -> ResizeParams:
    return ResizeParams(scale=section.number("scale", minimum=0.0, exclusive=True, maximum=1.0))


def _encode(section: _Section) -> EncodeParams:
    tolerance = section.integer("tolerance", minimum=0)
    if tolerance > 127:
        raise ParamsError(f"{section.key('tolerance')}: {tolerance} could snap a colour to either of two "
                          "class colours; use a value <= 127")
    return EncodeParams(tolerance=tolerance, max_offpalette=section.number("max_offpalette", minimum=0.0, maximum=1.0))


def _tile(section: _Section) -> TileParams:
    tile = TileParams(patch_size=section.integer("patch_size", minimum=8, maximum=8192),
                      stride=section.integer("stride", minimum=1),
                      shard_size=section.integer("shard_size", minimum=1))
    if tile.stride > tile.patch_size:
        raise ParamsError(f"{section.key('stride')}: {tile.stride} exceeds tile.patch_size {tile.patch_size}")
    shard_bytes = tile.shard_size * tile.patch_size**2 * 4
    if shard_bytes > 8 * 2**30:
        raise ParamsError(f"{section.key('shard_size')}: {tile.shard_size} tiles of {tile.patch_size}² px make "
                          f"a {shard_bytes / 2**30:.0f} GiB shard buffer; keep it under 8 GiB")
    return tile


def _model(section: _Section) -> ModelParams:
    return ModelParams(depth=section.integer("depth", minimum=1, maximum=10),
                       base_filters=section.integer("base_filters", minimum=1, maximum=1024),
                       max_filters=section.optional_integer("max_filters", minimum=1, maximum=4096),
                       batch_norm=section.boolean("batch_norm"),
                       encoder=section.choice("encoder", ENCODERS),
                       encoder_weights=_encoder_weights(section))


def _encoder_weights(section: _Section) -> str:
    value = section.string("encoder_weights")
    encoder = section.get("encoder")
    if value == "none":
        return value
    if encoder == "none":
        raise ParamsError(f"{section.key('encoder_weights')}: {value!r} needs a pretrained encoder; set model.encoder "
                          f"to one of {', '.join(ENCODERS[1:])} or encoder_weights to none")
    if value == "imagenet":
        return value
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or path.parts[0] != ENCODER_WEIGHTS_DIR or len(path.parts) < 2:
        raise ParamsError(f"{section.key('encoder_weights')}: {value!r} is not imagenet, none or a file under "
                          f"{ENCODER_WEIGHTS_DIR}/ (the folder DVC tracks for train, so that a new file retrains)")
    return value


def _class_weights(section: _Section) -> str | tuple[float, ...]:
    value = section.get("class_weights")
    if isinstance(value, str):
        return section.choice("class_weights", CLASS_WEIGHTING)
    if not isinstance(value, dict):
        raise ParamsError(f"{section.key('class_weights')}: expected one of {', '.join(CLASS_WEIGHTING)} "
                          f"or a mapping from class name to weight, got {_shown(value)}")
    unknown = sorted((k for k in value if k not in CLASS_NAMES), key=str)
    missing = [name for name in CLASS_NAMES if name not in value]
    if unknown or missing:
        problem = f"unknown class {unknown[0]!r}" if unknown else f"no weight for {missing[0]!r}"
        raise ParamsError(f"{section.key('class_weights')}: {problem}; give all of {', '.join(CLASS_NAMES)}")
    weights = section.section("class_weights")
    result = tuple(weights.number(name, minimum=0.0, maximum=1e6) for name in CLASS_NAMES)
    if not any(result):
        raise ParamsError(f"{section.key('class_weights')}: at least one weight must be > 0")
    return result


def _jitter(section: _Section) -> JitterParams:
    jitter = JitterParams(brightness=section.number("brightness", minimum=0.0, maximum=1.0),
                          contrast=section.number("contrast", minimum=0.0),
                          saturation=section.number("saturation", minimum=0.0),
                          hue=section.number("hue", minimum=0.0))
    for name in ("contrast", "saturation"):
        if getattr(jitter, name) >= 1.0:
            raise ParamsError(f"{section.key(name)}: {getattr(jitter, name)} would allow a factor <= 0; "
                              "use a value < 1")
    if jitter.hue > 0.5:
        raise ParamsError(f"{section.key('hue')}: {jitter.hue} exceeds half the colour wheel (0.5)")
    return jitter


def _train(section: _Section) -> TrainParams:
    train = TrainParams(
        learning_rate=section.number("learning_rate", minimum=0.0, exclusive=True, maximum=10.0),
        lr_schedule=section.choice("lr_schedule", LR_SCHEDULES),
        lr_decay=section.number("lr_decay", minimum=0.0, exclusive=True),
        dice_weight=section.number("dice_weight", minimum=0.0, maximum=1e6),
        focal_weight=section.number("focal_weight", minimum=0.0, maximum=1e6),
        focal_gamma=section.number("focal_gamma", minimum=0.0, maximum=100.0),
        mixed_precision=section.choice("mixed_precision", SWITCHES),
        jit_compile=section.choice("jit_compile", SWITCHES),
        strategy=section.choice("strategy", STRATEGIES),
        class_weights=_class_weights(section),
        jitter=_sectioned(section, "jitter", _jitter),
        lr_floor=section.number("lr_floor", minimum=0.0, maximum=1.0),
        freeze_encoder_epochs=section.integer("freeze_encoder_epochs", minimum=0, maximum=100_000),
        encoder_lr_factor=section.number("encoder_lr_factor", minimum=0.0, exclusive=True, maximum=1.0),
    )
    if train.lr_decay > 1.0:
        raise ParamsError(f"{section.key('lr_decay')}: {train.lr_decay} would grow the learning rate; use a value <= 1")
    if train.dice_weight == 0 and train.focal_weight == 0:
        raise ParamsError(f"{section.key('focal_weight')}: dice_weight and focal_weight cannot both be 0")
    return train


def _predict(section: _Section) -> PredictParams:
    return PredictParams(window=section.integer("window", minimum=8, maximum=8192),
                         subdivisions=section.integer("subdivisions", minimum=1, maximum=64),
                         tta=section.choice("tta", TTA_MODES),
                         batch_size=section.integer("batch_size", minimum=1, maximum=4096))


def _evaluate(section: _Section) -> EvaluateParams:
    return EvaluateParams(baseline_pixels=section.integer("baseline_pixels", minimum=100, maximum=100_000_000))


def _report(section: _Section) -> ReportParams:
    return ReportParams(gallery_scene=section.tile_id("gallery_scene"))


ENCODER_STRIDE = 32  # every supported backbone down-samples its input 32 times
SOURCE_GSD_M = 0.05  # ISPRS Potsdam (and the synthetic scenes) at full resolution: 5 cm per pixel


def input_multiple(model: ModelParams) -> tuple[int, str]:
    """What model inputs' sides must be divisible by, and how to name it in a message."""
    if model.encoder == "none":
        return 2**model.depth, "2**depth"
    return ENCODER_STRIDE, f"the output stride of encoder {model.encoder}"


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
    multiple, multiple_is = input_multiple(params.model)
    if params.tile.patch_size % multiple:
        named = "2**model.depth" if params.model.encoder == "none" else multiple_is
        raise ParamsError(f"tile.patch_size: {params.tile.patch_size} is not divisible by {named} = {multiple}")
    check_window(params.predict.window, multiple, params.predict.subdivisions, multiple_is=multiple_is)
    if params.checkpoint_every > params.epochs:
        raise ParamsError(f"checkpoint_every: {params.checkpoint_every} exceeds epochs {params.epochs}")
    if params.train.freeze_encoder_epochs and params.model.encoder == "none":
        raise ParamsError(f"train.freeze_encoder_epochs: {params.train.freeze_encoder_epochs} needs a pretrained "
                          "encoder (model.encoder is none); set it to 0")
    test = params.data.split.test
    if params.report.gallery_scene not in test:
        raise ParamsError(f"report.gallery_scene: {params.report.gallery_scene} is not a test scene of "
                          f"data.{params.data.source}.test")


def parse_params(raw: Any) -> Params:
    """Validate a parsed ``params.yaml`` mapping and return frozen ``Params``."""
    root = _Section(raw)
    params = Params(
        seed=root.integer("seed", minimum=0, maximum=MAX_SEED),
        epochs=root.integer("epochs", minimum=1, maximum=100_000),
        batch_size=root.integer("batch_size", minimum=1, maximum=65_536),
        checkpoint_every=root.integer("checkpoint_every", minimum=1),
        jobs=root.optional_integer("jobs", minimum=1, maximum=1024),
        data=_sectioned(root, "data", _data),
        resize=_sectioned(root, "resize", _resize),
        encode=_sectioned(root, "encode", _encode),
        tile=_sectioned(root, "tile", _tile),
        model=_sectioned(root, "model", _model),
        train=_sectioned(root, "train", _train),
        predict=_sectioned(root, "predict", _predict),
        evaluate=_sectioned(root, "evaluate", _evaluate),
        report=_sectioned(root, "report", _report),
    )
    root.close()
    _check_across_sections(params)
    return params


def model_card(params: Params) -> dict:
    """What predicting with a run's checkpoints needs, kept beside them: the ground sample
    distance the model learned (so ``aerialseg predict`` resamples other resolutions to it),
    classes and colours, the prediction window and overlap, the architecture and the input
    convention."""
    return {
        "producer": "aerialseg", "ground_sample_distance_m": SOURCE_GSD_M / params.resize.scale,
        "class_names": list(CLASS_NAMES), "class_colours": [list(c) for c in CLASS_COLOURS],
        "window": params.predict.window, "subdivisions": params.predict.subdivisions, "tta": params.predict.tta,
        "model": {"encoder": params.model.encoder, "depth": params.model.depth,
                  "base_filters": params.model.base_filters, "input_multiple": input_multiple(params.model)[0]},
        "input": "RGB uint8 in [0, 255], (N, H, W, 3); normalisation is inside the model",
    }


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
