"""Run an exported ONNX model with ONNX Runtime, the way blending runs a Keras model.

An ONNX file written by ``aerialseg export`` carries its model card (classes, colours, ground
sample distance, window, layout...) as ONNX metadata props: one ``aerialseg`` JSON entry holding
the card, plus for Deepness's layout the keys QGIS's Deepness plugin reads. The card is read
and checked when the file is opened. Nothing here
imports TensorFlow, so predicting with an exported model starts in a fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.model_card import Card, read_card

METADATA_KEY = "aerialseg"


def to_layout(batch: np.ndarray, layout: str) -> np.ndarray:
    """(N, h, w, 3) RGB windows in [0, 255] as a model file of ``layout`` takes them (float32, contiguous)."""
    x = np.asarray(batch, np.float32)
    if layout == "nchw01":
        x = x.transpose(0, 3, 1, 2) / np.float32(255)
    return np.ascontiguousarray(x)


def card_in_props(props: dict[str, str], source: str) -> Card | None:
    """The checked model card an ONNX model's metadata props hold (None when they hold none)."""
    if METADATA_KEY not in props:
        return None
    try:
        raw = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError:
        raise DataError(f"{source}: its {METADATA_KEY!r} metadata is not JSON") from None
    return read_card(raw, source) if raw else None


def onnx_card(path: Path) -> Card | None:
    """The checked model card of an ONNX file, its graph parsed without a session (None when it has none)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf and onnx report a damaged file in several ways
        raise DataError(f"{path}: not a readable ONNX model ({one_line_reason(err)})") from None
    return card_in_props({p.key: p.value for p in proto.metadata_props}, str(path))


def set_metadata_props(proto, props: dict[str, str]) -> None:
    """Make ``props`` the metadata props of the ONNX model ``proto`` (in place), replacing any."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


class OnnxSegmenter:
    """An exported segmentation model: ``predict_on_batch`` maps (N, h, w, 3) RGB uint8-range
    windows to (N, h, w, classes) probabilities, whatever the file's own layout."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: model not found")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime reports a bad file as one of several exception types
            reason = one_line_reason(err)
            raise DataError(f"{path}: not a readable ONNX model ({reason})") from None
        self.props = dict(self.session.get_modelmeta().custom_metadata_map)  # ONNX metadata props, as stored
        self.card = card_in_props(self.props, str(path))
        self.layout = self.card.export.layout if self.card and self.card.export else "nhwc255"
        self.input_name = self.session.get_inputs()[0].name
        output_shape = self.session.get_outputs()[0].shape
        outputs = output_shape[1 if self.layout == "nchw01" else -1]
        if isinstance(outputs, int):  # what the graph says, so that a card naming other classes is caught
            self.num_classes = outputs
        elif self.card and self.card.classes:
            self.num_classes = len(self.card.classes)
        else:
            raise DataError(f"{path}: neither its output shape nor its metadata says how many classes it predicts")

    @property
    def output_shape(self) -> tuple:
        """(None, None, None, classes), as a Keras model reports it."""
        return (None, None, None, self.num_classes)

    @property
    def fixed_window(self) -> int | None:
        """The side of a model exported with a fixed square input (Deepness's layout), else None."""
        shape = self.session.get_inputs()[0].shape
        spatial = shape[2:4] if self.layout == "nchw01" else shape[1:3]
        if len(spatial) == 2 and all(isinstance(side, int) for side in spatial) and spatial[0] == spatial[1]:
            return int(spatial[0])
        return None

    @property
    def input_multiple(self) -> int:
        """What input sides must be divisible by (1 when the metadata does not say)."""
        return (self.card.input_multiple if self.card else None) or 1

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) RGB in [0, 255] -> (N, h, w, classes) float32 probabilities."""
        y = self.session.run(None, {self.input_name: to_layout(batch, self.layout)})[0]
        return y.transpose(0, 2, 3, 1) if self.layout == "nchw01" else y

