"""Export a checkpoint for other tools: a TensorFlow SavedModel or an ONNX file, carrying its model card.

The card (``aerialseg.core.model_card``) says what a tool needs to use the model the way
aerialseg does: classes and colours, the ground sample distance it was trained at, window,
overlap and test-time augmentation, and the input convention; the export adds its layout.
ONNX files carry it as the ``aerialseg`` metadata prop, a SavedModel as
``assets.extra/aerialseg.json``.

``--layout nchw01`` is the layout of QGIS's Deepness plugin (checked against Deepness 0.6's
``model_base.py`` and ``segmentor.py``): one input ``(N, 3, window, window)`` of RGB in [0, 1]
with fixed height and width (Deepness reads the tile size from the input's shape as integers,
and requires a square output), and its metadata keys with JSON values as it parses them:
``model_type`` "Segmentor", ``class_names`` {"0": name, ...}, ``resolution`` in cm/px,
``tile_size`` in px and ``tiles_overlap`` in %. No standardisation keys: the model scales its
own input. The default layout (``nhwc255``) is aerialseg's own and carries no Deepness keys.

An ONNX export can also be quantised to int8 (``aerialseg.predict.quantize``): the fp32 file
is written to a temporary folder first and only the int8 one reaches ``out``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aerialseg.core.atomic import atomic_dir, atomic_path
from aerialseg.core.classes import numbered_classes
from aerialseg.core.config.params import check_window
from aerialseg.core.framework import keras
from aerialseg.core.io import sha256_of, write_json
from aerialseg.core.model_card import LAYOUTS, Card, ExportInfo, build_card, card_json
from aerialseg.predict.loading import input_multiple, load_model
from aerialseg.predict.onnx_convert import write_onnx
from aerialseg.predict.onnx_model import METADATA_KEY, set_metadata_props

if TYPE_CHECKING:
    from aerialseg.predict.quantize import Calibration

FORMATS = ("onnx", "savedmodel")
SAVEDMODEL_METADATA = Path("assets.extra") / "aerialseg.json"


def export_card(model: keras.Model, card: Card | None, *, gsd_m: float | None, window: int,
                subdivisions: int, tta: str, layout: str, checkpoint_sha256: str | None = None) -> Card:
    """The checkpoint's card (or, without one, what the model itself says: numbered classes, 8-bit
    RGB) with the export's settings and what the export is (of which checkpoint file, by its SHA-256)."""
    classes = numbered_classes(int(model.output_shape[-1]))
    base = card or build_card(classes, gsd=None, window=None, subdivisions=None, tta=None, input_multiple=None)
    bands = ", ".join(base.input.bands)
    eight_bit = base.input.identity
    values = "in [0, 255]" if eight_bit else f"as {base.input.dtype} values (normalised in the graph)"
    scaled = "in [0, 1]" if eight_bit else f"as {base.input.dtype} values / 255 (normalised in the graph)"
    shapes = {"nhwc255": (f"float32 (N, H, W, {len(base.input.bands)}) {bands} {values}",
                          "float32 (N, H, W, classes) softmax probabilities"),
              "nchw01": (f"float32 (N, {len(base.input.bands)}, window, window) {bands} {scaled}",
                         "float32 (N, classes, window, window) softmax probabilities")}[layout]
    return dataclasses.replace(
        base, classes=base.classes or classes, ground_sample_distance_m=gsd_m, window=window,
        subdivisions=subdivisions, tta=tta, input_multiple=input_multiple(model)[0], upgraded_from=None,
        export=ExportInfo(model_name=model.name, layout=layout, precision="float32", input_layout=shapes[0],
                          output_layout=shapes[1], checkpoint_sha256=checkpoint_sha256))


def onnx_metadata_props(card: Card) -> dict[str, str]:
    """ONNX metadata props: the card as JSON, and for Deepness's layout the keys it reads, as it reads them."""
    props = {METADATA_KEY: json.dumps(card_json(card), sort_keys=True)}
    if card.export is not None and card.export.layout == "nchw01":
        if card.classes is None or card.window is None or card.subdivisions is None:
            raise ValueError("a Deepness export's card names its classes, window and subdivisions")
        props.update({
            "model_type": json.dumps("Segmentor"),
            "class_names": json.dumps({str(i): name for i, name in enumerate(card.classes.names)}),
            "tile_size": json.dumps(card.window),
            "tiles_overlap": json.dumps(round(100 * (1 - 1 / card.subdivisions))),
        })
        if card.ground_sample_distance_m is not None:
            props["resolution"] = json.dumps(round(card.ground_sample_distance_m * 100, 6))  # cm per pixel
    return props


def with_layout(model: keras.Model, layout: str, window: int) -> keras.Model:
    """The model taking and giving ``layout`` (nchw01: channels first, RGB scaled to [0, 1], and a fixed
    ``window`` x ``window`` input, as Deepness needs)."""
    if layout == "nhwc255":
        return model
    layers = keras.layers
    inputs = keras.Input((int(model.input_shape[-1]), window, window), name="image")
    x = layers.Permute((2, 3, 1), name="to_channels_last")(inputs)
    x = layers.Rescaling(255.0, name="to_0_255")(x)
    outputs = layers.Permute((3, 1, 2), name="to_channels_first")(model(x))
    return keras.Model(inputs, outputs, name=model.name)


def _call_once(model: keras.Model, side: int, layout: str) -> None:
    """Run the model on one blank input: Keras exports only models that have been called."""
    sample = np.zeros((1, side, side, int(model.input_shape[-1 if layout == "nhwc255" else 1])), np.float32)
    model(sample.transpose(0, 3, 1, 2) if layout == "nchw01" else sample)


def onnx_runtime_model(model: keras.Model):
    """The Keras model converted to ONNX and loaded by ONNX Runtime (nothing is left on disk).

    On CPU, ONNX Runtime runs aerialseg's models faster than TensorFlow
    (``bench/predict_backends.py``), which is why ``aerialseg predict`` does this by default.
    """
    import tempfile

    from aerialseg.predict.onnx_model import OnnxSegmenter

    _call_once(model, input_multiple(model)[0], "nhwc255")
    with tempfile.TemporaryDirectory(prefix="aerialseg-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        write_onnx(model, path)
        return OnnxSegmenter(path)


def _write_onnx_with_card(model: keras.Model, path: Path, card: Card) -> None:
    import onnx

    write_onnx(model, path)
    proto = onnx.load(str(path))
    set_metadata_props(proto, onnx_metadata_props(card))
    onnx.save(proto, str(path))


def export_model(checkpoint: str | Path, out: str | Path, fmt: str, *, gsd_m: float | None, window: int,
                 subdivisions: int, tta: str, layout: str = "nhwc255",
                 card: Card | None = None, int8: Calibration | None = None,
                 on_int8_speed: Callable[[float], None] | None = None) -> Card:
    """Write ``checkpoint`` as ``fmt`` (onnx | savedmodel) to ``out``, atomically; return the card it carries.

    With ``int8`` (ONNX only) the model is quantised, calibrated as it says (and its speed over the
    fp32 model's measured for ``on_int8_speed``, when given). DataError when the
    checkpoint cannot be read; ParamsError when the window does not suit it.
    """
    if fmt not in FORMATS or layout not in LAYOUTS or (int8 is not None and fmt != "onnx"):
        raise ValueError(f"format {fmt!r} / layout {layout!r} / int8 {int8 is not None}")
    model = load_model(checkpoint)
    multiple, multiple_is = input_multiple(model)
    check_window(window, multiple, subdivisions, window_key="--window", subdivisions_key="--subdivisions",
                 multiple_is=multiple_is)
    metadata = export_card(model, card, gsd_m=gsd_m, window=window, subdivisions=subdivisions, tta=tta,
                           layout=layout, checkpoint_sha256=sha256_of(checkpoint))
    exported = with_layout(model, layout, window)
    _call_once(exported, window if layout == "nchw01" else multiple, layout)
    if fmt == "onnx" and int8 is not None:
        import tempfile

        from aerialseg.predict.quantize import quantize_int8

        with tempfile.TemporaryDirectory(prefix="aerialseg-export-") as folder:
            fp32 = Path(folder) / "fp32.onnx"
            _write_onnx_with_card(exported, fp32, metadata)
            quantised = quantize_int8(fp32, Path(out), int8, on_speed=on_int8_speed)
            if quantised is None:
                raise AssertionError("an export always carries its card")
            return quantised
    if fmt == "onnx":
        with atomic_path(out) as tmp:
            _write_onnx_with_card(exported, tmp, metadata)
    else:
        with atomic_dir(out) as tmp:
            exported.export(str(tmp), format="tf_saved_model", verbose=False)
            write_json(tmp / SAVEDMODEL_METADATA, card_json(metadata))
    return metadata
