"""What runs a trained model: a Keras checkpoint on TensorFlow or ONNX Runtime, or an exported
``.onnx`` model on ONNX Runtime; and the ground sample distance the model records.

Loading is lazy on purpose: an ``.onnx`` model never imports TensorFlow, so predicting with
an exported model starts in a fraction of a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.core.model_card import Card, card_beside
from aerialseg.core.protocols import BatchModel


def load_any_model(path: Path) -> tuple[BatchModel, tuple[int, str]]:
    """A Keras checkpoint, or an exported ``.onnx`` model on ONNX Runtime (TensorFlow not loaded);
    also what its input sides must be divisible by, and that number's name."""
    if path.suffix.lower() == ".onnx":
        from aerialseg.predict.onnx_model import OnnxSegmenter

        model = OnnxSegmenter(path)
        return model, (model.input_multiple, "the input multiple")
    from aerialseg.predict.loading import input_multiple, load_model

    model = load_model(path)
    return model, input_multiple(model)


def recorded_card(model: BatchModel, path: Path) -> Card | None:
    """The checked model card of a model: an exported model's own (its metadata), or the card its
    training wrote beside a checkpoint (None when there is none)."""
    if path.suffix.lower() == ".onnx":
        card: Card | None = getattr(model, "card", None)
        return card
    return card_beside(path)


def model_inputs(path: Path) -> InputSpec:
    """What a model file reads (its card's input; 8-bit RGB for a model without a card, as before cards),
    without loading the model: the card beside a checkpoint, or an ONNX file's metadata (its graph
    parsed, no session built), so that inputs are checked before TensorFlow loads."""
    if path.suffix.lower() != ".onnx":
        card = card_beside(path)
    else:
        from aerialseg.predict.onnx_model import onnx_card

        card = onnx_card(path)
    return card.input if card is not None else RGB_UINT8


def recorded_gsd(card: Card | None) -> float | None:
    """The ground sample distance (m/px) the model was trained at, if its card records it."""
    return None if card is None else card.ground_sample_distance_m


def auto_source(path: Path, backend: str) -> Path:
    """With ``--backend auto`` on a CPU, a pipeline's checkpoint's own export (``auto_precision.pipeline_export``),
    said on standard error, so that the checkpoint never loads; otherwise ``path``."""
    if backend != "auto" or path.suffix.lower() == ".onnx" or not path.is_file():
        return path
    from aerialseg.core.framework import tf
    from aerialseg.predict.auto_precision import pipeline_export

    export = None if tf.config.list_physical_devices("GPU") else pipeline_export(path)
    if export is None:
        return path
    print(f"aerialseg predict: {path.name}: as {export}, its export (--backend keras for TensorFlow)", file=sys.stderr)
    return export


def auto_file(model: BatchModel, path: Path, backend: str, window: int) -> tuple[BatchModel, Path]:
    """With ``--backend auto``, an fp32 export's own int8 model where this machine runs it faster
    (``auto_precision``: measured once, cached), said on standard error; otherwise the model as it is."""
    if backend != "auto" or path.suffix.lower() != ".onnx":
        return model, path
    from aerialseg.predict.auto_precision import auto_precision

    pick = auto_precision(path, window)
    if pick.note:
        print(f"aerialseg predict: {pick.note}", file=sys.stderr)
    return (model, path) if pick.path == path else (load_any_model(pick.path)[0], pick.path)


def choose_backend(model: BatchModel, path: Path, backend: str) -> BatchModel:
    """What runs a Keras checkpoint: TensorFlow (keras) or ONNX Runtime (onnx).

    auto picks ONNX Runtime (fp32) on a CPU and says so: ``bench/predict_backends.py`` measures
    it the fastest exact backend there, on AVX2 (1.17x TensorFlow, default model) and, since its
    closing softmax runs over the last axis (``onnx_convert.softmax_last``), on AVX-512 for both
    the default model and the seed's architecture, or a tie with TensorFlow (docs/export.md). A
    pipeline's checkpoint whose export exists has been replaced by it before (``auto_source``), and
    there int8 is weighed. With a GPU auto keeps TensorFlow. An exported ONNX model is returned as it is.
    """
    from aerialseg.predict.onnx_model import OnnxSegmenter

    if isinstance(model, OnnxSegmenter) or backend == "keras":
        return model
    from aerialseg.core.framework import tf

    if backend == "auto" and tf.config.list_physical_devices("GPU"):
        return model
    from tqdm import tqdm

    from aerialseg.predict.export import onnx_runtime_model

    try:  # a bar that says what the wait is (half a minute for a pretrained encoder); quiet off a terminal
        with tqdm(total=1, desc=f"{path.name}: converting for ONNX Runtime (--backend keras skips this)",
                  unit="model", file=sys.stderr, disable=None, leave=False) as bar:
            converted = onnx_runtime_model(model)
            bar.update()
        if backend == "auto":
            print(f"aerialseg predict: {path.name}: on ONNX Runtime fp32 (--backend auto on a CPU: the fastest exact "
                  "backend measured, docs/export.md; --backend keras for TensorFlow)", file=sys.stderr)
        return converted
    except Exception as err:  # the converter and a full temp disk raise many kinds; TensorFlow still works
        reason = one_line_reason(err)
        if backend == "onnx":
            raise DataError(f"{path}: cannot be converted to ONNX ({reason})") from None
        print(f"aerialseg predict: {path}: predicting with TensorFlow, the ONNX conversion failed ({reason})",
              file=sys.stderr)
        return model
