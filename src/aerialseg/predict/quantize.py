"""int8 models: ONNX Runtime's static quantisation of an exported fp32 ONNX model.

The recipe is the one ONNX Runtime recommends for convolutional networks on x86 CPUs, taken
whole rather than re-derived:

- **QDQ format**: QuantizeLinear/DequantizeLinear pairs around every quantisable op, which
  ONNX Runtime's graph optimiser fuses into its int8 kernels (QLinearConv and friends); the
  file stays a standard ONNX graph that other runtimes can read.
- **Weights int8, symmetric, per output channel**: U-Net filters differ in scale by orders of
  magnitude within one layer, and one scale per layer would flatten the small ones to zero.
- **Activations uint8, per tensor, asymmetric**: after ReLU every activation is >= 0, and
  u8 x s8 is the pair the VNNI instructions of this CPU multiply.
- **Static ranges**: each activation's range is fixed once from the calibration windows
  (``aerialseg.predict.calibration``; min/max by default, or ONNX Runtime's percentile or
  entropy calibrators), so no range is computed at prediction time.

Everything is quantised, softmax included: its uint8 probabilities (steps of 1/255) are
averaged over the blending's overlaps and test-time augmentations before the argmax, and
what it costs in accuracy is measured, not assumed (the pipeline scores the int8 model on
the test scenes: ``smooth_int8`` in ``metrics/eval.json``). The int8 file carries the fp32
model's metadata, its card's export record saying ``int8`` and how it was calibrated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from aerialseg.core.atomic import atomic_path
from aerialseg.core.config.params import CALIBRATION_METHODS
from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.io import sha256_of
from aerialseg.core.model_card import Card, Quantization, card_json
from aerialseg.predict.onnx_model import METADATA_KEY, card_in_props, set_metadata_props, to_layout

CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class Calibration:
    """How an int8 model is calibrated: its windows ((N, h, w, 3) RGB in [0, 255]), the range
    method, and where the windows came from (for the card)."""

    windows: np.ndarray
    method: str = "minmax"
    source: str = ""


def _calibration_reader(input_name: str, windows: np.ndarray, layout: str, bar: tqdm):
    from onnxruntime.quantization import CalibrationDataReader

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(windows), CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            if start is None:
                return None
            bar.update(len(windows[start:start + CALIBRATION_BATCH]))
            return {input_name: to_layout(windows[start:start + CALIBRATION_BATCH], layout)}

    return Windows()


def quantized_card(card: Card, method: str, windows: int, calibration: str, source_sha256: str) -> Card:
    """The fp32 export's card with what quantisation did and of which file (``source_sha256``), so that a user
    (and ``--backend auto``) can tell the files apart."""
    if card.export is None:
        raise ValueError("only an exported model's card is quantised")
    how = Quantization(tool="onnxruntime.quantization.quantize_static", format="QDQ",
                       weights="int8, symmetric, per output channel", activations="uint8, asymmetric, per tensor",
                       calibration_method=method, calibration_windows=windows, calibration_source=calibration,
                       source_sha256=source_sha256)
    return dataclasses.replace(card, export=dataclasses.replace(card.export, precision="int8", quantization=how))


# output channels from which an up-sampling runs faster in int8 as 1 x 1 convolution + DepthToSpace than in
# float32 as a transposed convolution (measured on the seed's architecture, 16..512: int8 1.73x fp32 without,
# 2.14x with the 64-and-wider rewritten, the same as all; the default model's, 8..32, lose: 1.24x -> 0.89x)
PIXEL_SHUFFLE_MIN_CHANNELS = 64
PAYS = 1.05  # int8 over fp32 speed below which int8 does not pay for its accuracy cost (within 5 %: a tie)
SPEED_WINDOWS = 32  # calibration windows the speed check predicts, per side and repeat


def int8_speedup(fp32: Path, int8: Path, windows: np.ndarray, repeats: int = 3, count: int = SPEED_WINDOWS) -> float:
    """How many times faster the int8 model predicts ``windows`` (the first ``count``) than the
    fp32 one on this CPU: the median of per-repeat ratios, the two taking turns (this machine's speed
    drifts within seconds)."""
    import statistics
    import time

    from aerialseg.predict.onnx_model import OnnxSegmenter

    sample = windows[:count]  # (a smaller sample is repeated up to it)
    if len(sample) < count:
        sample = np.concatenate([sample] * (count // len(sample) + 1))[:count]
    models = [OnnxSegmenter(fp32), OnnxSegmenter(int8)]
    for model in models:  # warm-up: first runs plan kernels and allocate
        model.predict_on_batch(sample[:CALIBRATION_BATCH])
    ratios = []
    for _ in range(repeats):
        seconds = []
        for model in models:
            start = time.perf_counter()
            for i in range(0, len(sample), CALIBRATION_BATCH):
                model.predict_on_batch(sample[i:i + CALIBRATION_BATCH])
            seconds.append(time.perf_counter() - start)
        ratios.append(seconds[0] / seconds[1])
    return statistics.median(ratios)


def speed_note(name: str, speedup: float, windows: int) -> str:
    """What an int8 model's measured speed means for its user: where int8 does not pay (narrow layers,
    whose int8 convolutions are no faster), the fp32 model is as fast and exact."""
    said = f"{name}: int8 runs {speedup:.2f}x the fp32 model's speed on this CPU ({windows} windows, measured now)"
    if speedup < PAYS:
        return (f"{said}: this model's layers are too narrow for int8 convolutions to pay (docs/export.md, "
                "\"int8 models\"); the fp32 model is as fast, and exact")
    return said


def speed_reporter(prefix: str, name: str | Path) -> Callable[[float], None]:
    """What says an int8 model's measured speed on standard error, as ``prefix: ...``."""
    def report(speedup: float) -> None:
        print(f"{prefix}: {speed_note(Path(name).name, speedup, SPEED_WINDOWS)}", file=sys.stderr)
    return report


def transposed_as_pixel_shuffle(graph: Any, min_channels: int = 0) -> int:
    """Rewrite each 2 x 2, stride-2 transposed convolution (a U-Net's up-sampling) of at least
    ``min_channels`` output channels as a 1 x 1 convolution to four times the channels followed by
    ``DepthToSpace``, in place; return how many.

    With a 2 x 2 kernel and stride 2 every input pixel fills its own 2 x 2 block of the output:
    ``y[o, 2i+a, 2j+b] = sum_c x[c, i, j] w[c, o, a, b] + bias[o]``, which is a 1 x 1 convolution
    whose output channel ``4o + 2a + b`` has the weights ``w[:, o, a, b]``, rearranged by
    ``DepthToSpace`` (mode CRD) into the blocks: the same products, the same sums. ONNX Runtime's
    CPU provider has no int8 transposed convolution, so a quantised U-Net ran its up-sampling in
    float32 between dequantising and requantising; a 1 x 1 convolution it runs in int8. Narrow
    ones are left: there the rearrangement costs more than int8 saves (``PIXEL_SHUFFLE_MIN_CHANNELS``)."""
    import numpy as np
    from onnx import helper, numpy_helper

    tensors = {t.name: t for t in graph.initializer}
    rewritten = 0
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = tensors.get(node.input[1]) if node.op_type == "ConvTranspose" and len(node.input) > 1 else None
        plain = (list(attrs.get("strides", [])) == [2, 2] and list(attrs.get("kernel_shape", [2, 2])) == [2, 2]
                 and attrs.get("group", 1) == 1 and not any(attrs.get("pads", [0])) and not any(
                     attrs.get("output_padding", [0])) and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
                 and list(attrs.get("dilations", [1, 1])) == [1, 1] and "output_shape" not in attrs)
        if (weight is None or not plain or numpy_helper.to_array(weight).shape[2:] != (2, 2)
                or numpy_helper.to_array(weight).shape[1] < min_channels):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)  # (in, out, 2, 2)
        channels_in, channels_out = w.shape[:2]
        kernel = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(channels_out * 4, channels_in, 1, 1))
        inputs = [node.input[0], f"{weight.name}_as_1x1"]
        graph.initializer.append(numpy_helper.from_array(kernel, inputs[1]))
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(tensors[node.input[2]])
            inputs.append(f"{node.input[2]}_per_block")
            graph.initializer.append(numpy_helper.from_array(np.repeat(bias, 4), inputs[2]))
        blocks = f"{node.output[0]}_blocks"
        nodes.append(helper.make_node("Conv", inputs, [blocks], name=f"{node.name}_1x1", kernel_shape=[1, 1]))
        nodes.append(helper.make_node("DepthToSpace", [blocks], [node.output[0]], name=node.name, blocksize=2,
                                      mode="CRD"))
        rewritten += 1
    graph.ClearField("node")
    graph.node.extend(nodes)
    used = {value for node in graph.node for value in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    return rewritten


def quantize_int8(fp32: Path, out: Path, calibration: Calibration,
                  on_speed: Callable[[float], None] | None = None) -> Card | None:
    """Write the int8 version of the fp32 ONNX model ``fp32`` to ``out`` (atomically), calibrated as
    ``calibration`` says; return the card it carries (None for an ONNX model without an aerialseg card).
    With ``on_speed``, the written model's speed over the fp32 one's is measured (``int8_speedup``)
    and passed to it."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method, windows = calibration.method, calibration.windows
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r}")
    source = onnx.load(str(fp32))
    props = {entry.key: entry.value for entry in source.metadata_props}
    exported = card_in_props(props, str(fp32))
    card = None  # an ONNX model from elsewhere has no card to carry: it keeps its props and layout
    if exported is not None and exported.export is not None:
        card = quantized_card(exported, method, len(windows), calibration.source, sha256_of(fp32))
        props[METADATA_KEY] = json.dumps(card_json(card), sort_keys=True)
    layout = exported.export.layout if exported is not None and exported.export is not None else "nhwc255"
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix="aerialseg-int8-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        quantiser_log = logging.getLogger("root")  # the quantiser logs every node at INFO there
        level = quantiser_log.level
        quantiser_log.setLevel(logging.WARNING)
        try:
            rewritten = Path(folder) / "rewritten.onnx"
            if transposed_as_pixel_shuffle(source.graph, PIXEL_SHUFFLE_MIN_CHANNELS):
                onnx.save(source, str(rewritten))
            # shape inference and ONNX Runtime's basic graph fusions first, as its docs advise
            quant_pre_process(str(rewritten if rewritten.exists() else fp32), str(prepared), skip_symbolic_shape=True)
            with atomic_path(out) as tmp, tqdm(total=len(windows), desc=f"{out.name}: calibrating int8",
                                               unit="window", file=sys.stderr, disable=None, leave=False) as bar:
                quantize_static(str(prepared), str(tmp), _calibration_reader(source.graph.input[0].name, windows,
                                                                              layout, bar),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, calibrate_method=calibrate,
                                calibration_providers=["CPUExecutionProvider"])
                quantized = onnx.load(str(tmp))
                set_metadata_props(quantized, props)
                onnx.save(quantized, str(tmp))
        except (DataError, OSError):
            raise
        except Exception as err:  # the quantiser raises many kinds on a graph it cannot handle
            raise DataError(f"{fp32}: cannot be quantised to int8 ({one_line_reason(err)})") from None
        finally:
            quantiser_log.setLevel(level)
    if on_speed is not None:
        on_speed(int8_speedup(fp32, out, windows))
    return card
