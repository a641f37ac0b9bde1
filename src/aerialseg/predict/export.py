"""Export a checkpoint for other tools: a TensorFlow SavedModel or an ONNX file, with its metadata.

The metadata says what a tool needs to use the model the way aerialseg does: the classes
and their ISPRS colours, the ground sample distance it was trained at, the prediction
window and overlap, and the input convention. ONNX files carry it as metadata props
(QGIS's Deepness plugin reads ``model_type``, ``class_names``, ``resolution``,
``tiles_size`` and ``tiles_overlap``); a SavedModel as ``assets.extra/aerialseg.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from aerialseg.core.atomic import atomic_dir, atomic_path
from aerialseg.core.framework import keras
from aerialseg.core.io import write_json
from aerialseg.core.palette import CLASS_COLOURS, CLASS_NAMES
from aerialseg.core.params import check_window
from aerialseg.predict.inference import input_multiple, load_model
from aerialseg.predict.onnx_model import LAYOUTS, METADATA_KEY

FORMATS = ("onnx", "savedmodel")
SAVEDMODEL_METADATA = Path("assets.extra") / "aerialseg.json"
_INPUTS = {"nhwc255": "float32 (N, H, W, 3) RGB in [0, 255]", "nchw01": "float32 (N, 3, H, W) RGB in [0, 1]"}
_OUTPUTS = {"nhwc255": "float32 (N, H, W, classes) softmax probabilities",
            "nchw01": "float32 (N, classes, H, W) softmax probabilities"}


def model_metadata(model: keras.Model, *, gsd_m: float | None, window: int, subdivisions: int, tta: str,
                   layout: str) -> dict:
    """Everything a tool needs to predict with the model as aerialseg does."""
    return {
        "producer": "aerialseg", "model_name": model.name,
        "class_names": list(CLASS_NAMES), "class_colours": [list(c) for c in CLASS_COLOURS],
        "ground_sample_distance_m": gsd_m, "window": window, "subdivisions": subdivisions, "tta": tta,
        "input_multiple": input_multiple(model)[0], "layout": layout,
        "input": _INPUTS[layout], "output": _OUTPUTS[layout],
    }


def onnx_metadata_props(metadata: dict) -> dict[str, str]:
    """ONNX metadata props: the aerialseg JSON, plus the keys Deepness reads (JSON-encoded values)."""
    props = {
        METADATA_KEY: json.dumps(metadata, sort_keys=True),
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({str(i): name for i, name in enumerate(metadata["class_names"])}),
        "tiles_size": json.dumps(metadata["window"]),
        "tiles_overlap": json.dumps(round(100 * (1 - 1 / metadata["subdivisions"]))),
    }
    if metadata["ground_sample_distance_m"] is not None:
        props["resolution"] = json.dumps(round(metadata["ground_sample_distance_m"] * 100, 6))  # cm per pixel
    return props


def with_layout(model: keras.Model, layout: str) -> keras.Model:
    """The model taking and giving ``layout`` (nchw01: channels first, RGB scaled to [0, 1])."""
    if layout == "nhwc255":
        return model
    layers = keras.layers
    inputs = keras.Input((3, None, None), name="image")
    x = layers.Permute((2, 3, 1), name="to_channels_last")(inputs)
    x = layers.Rescaling(255.0, name="to_0_255")(x)
    outputs = layers.Permute((3, 1, 2), name="to_channels_first")(model(x))
    return keras.Model(inputs, outputs, name=model.name)


def _call_once(model: keras.Model, multiple: int, layout: str) -> None:
    """Run the model on one blank input: Keras exports only models that have been called."""
    sample = np.zeros((1, multiple, multiple, 3), np.float32)
    model(sample.transpose(0, 3, 1, 2) if layout == "nchw01" else sample)


def _write_onnx(model: keras.Model, path: Path) -> None:
    """Keras' own ONNX export (through tf2onnx), without the converter's NumPy deprecation notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.export(str(path), format="onnx", verbose=False)


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
        _write_onnx(model, path)
        return OnnxSegmenter(path)


def export_model(checkpoint: str | Path, out: str | Path, fmt: str, *, gsd_m: float | None, window: int,
                 subdivisions: int, tta: str, layout: str = "nhwc255") -> dict:
    """Write ``checkpoint`` as ``fmt`` (onnx | savedmodel) to ``out``, atomically; return its metadata.

    DataError when the checkpoint cannot be read; ParamsError when the window does not suit it.
    """
    if fmt not in FORMATS or layout not in LAYOUTS:
        raise ValueError(f"format {fmt!r} / layout {layout!r}")
    model = load_model(checkpoint)
    multiple, multiple_is = input_multiple(model)
    check_window(window, multiple, subdivisions, window_key="--window", subdivisions_key="--subdivisions",
                 multiple_is=multiple_is)
    metadata = model_metadata(model, gsd_m=gsd_m, window=window, subdivisions=subdivisions, tta=tta, layout=layout)
    exported = with_layout(model, layout)
    _call_once(exported, multiple, layout)
    if fmt == "onnx":
        import onnx

        with atomic_path(out) as tmp:
            _write_onnx(exported, tmp)
            proto = onnx.load(str(tmp))
            for key, value in onnx_metadata_props(metadata).items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(proto, str(tmp))
    else:
        with atomic_dir(out) as tmp:
            exported.export(str(tmp), format="tf_saved_model", verbose=False)
            write_json(tmp / SAVEDMODEL_METADATA, metadata)
    return metadata
