"""A Keras model converted to ONNX, for every supported encoder, with one graph input.

The conversion goes through a SavedModel and tf2onnx's SavedModel loader, which freezes every
captured tensor into the graph (Keras' own ``export(format="onnx")`` turned EfficientNetV2's
normalisation constants into extra graph inputs). Two layers of the backbones become ops that
ONNX lacks, so the converted copy (never the checkpoint) rewrites them into exact equivalents:

- a grouped ``Conv2D`` with one group per channel (ConvNeXt's depthwise convolutions), which
  Keras' TensorFlow backend compiles with XLA into a nested function that ONNX cannot hold,
  becomes a ``DepthwiseConv2D`` with the same (transposed) kernel;
- the exact GELU, which TensorFlow computes with ``erfc``, becomes ``x/2 (1 + erf(x/√2))``.

``tests/predict/test_export.py`` checks every encoder: one input, within 1e-4 of Keras.

One rewrite is for speed (``softmax_last``): the closing softmax runs over the last axis, after
the converter's transpose to channels-last instead of before it.

The converter numbers the names it makes (``const_fold_opt__971``) in an order that changes
from run to run (its optimisers walk sets of objects), and its symbolic sizes (``unk__1040``)
from a counter that runs on through a process's conversions, so the same checkpoint gave a
different file each time. The names and sizes are renumbered in graph order and the
initializers sorted by first use, which makes an export a function of the checkpoint: a DVC
stage that exports reruns nothing downstream when the model did not change.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from aerialseg.core.framework import keras

OPSET = 17


class ErfGelu(keras.layers.Layer):
    """The exact GELU through ``erf`` (an ONNX op), where TensorFlow's uses ``erfc`` (not one)."""

    def call(self, x: Any) -> Any:
        return 0.5 * x * (1.0 + keras.ops.erf(x / math.sqrt(2.0)))


def _is_depthwise_grouped(layer: Any) -> bool:
    if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.DepthwiseConv2D):
        return False
    groups = layer.groups
    return bool(groups > 1 and groups == layer.filters and layer.kernel.shape[-2] == 1)


def _is_exact_gelu(layer: Any) -> bool:
    return (isinstance(layer, keras.layers.Activation)
            and layer.get_config().get("activation") in ("gelu", {"class_name": "gelu"}))


def _rewritten(layer: Any) -> Any:
    """A fresh layer for the ONNX copy: the rewrites above, or a clone of ``layer``."""
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer, clone_function=_rewritten)
    config = layer.get_config()
    if _is_depthwise_grouped(layer):
        return keras.layers.DepthwiseConv2D(
            kernel_size=config["kernel_size"], strides=config["strides"], padding=config["padding"],
            dilation_rate=config["dilation_rate"], use_bias=config["use_bias"], activation=config["activation"],
            name=config["name"])
    if _is_exact_gelu(layer):
        return ErfGelu(name=config["name"])
    return layer.__class__.from_config(config)


def _copy_weights(source: Any, target: Any) -> None:
    for old, new in zip(source.layers, target.layers, strict=True):
        if isinstance(old, keras.Model):
            _copy_weights(old, new)
            continue
        weights = old.get_weights()
        if _is_depthwise_grouped(old):
            weights = [weights[0].transpose(0, 1, 3, 2), *weights[1:]]  # (h, w, 1, C) -> (h, w, C, 1)
        new.set_weights(weights)


def onnx_ready(model: Any) -> Any:
    """A copy of ``model`` with the rewrites above and the same weights (``model`` itself if none apply)."""
    def needs(layer: Any) -> bool:
        if isinstance(layer, keras.Model):
            return any(needs(inner) for inner in layer.layers)
        return _is_depthwise_grouped(layer) or _is_exact_gelu(layer)

    if not needs(model):
        return model
    copy = keras.models.clone_model(model, clone_function=_rewritten)
    _copy_weights(model, copy)
    return copy


_NUMBERED = re.compile(r"__\d+")
_TO_NHWC = [0, 2, 3, 1]


def softmax_last(graph: Any) -> int:
    """Move each channel softmax behind the transpose to channels-last that follows it, in place;
    return how many moved.

    The converter computes in channels-first and ends a Keras model with ``Softmax(axis=1)`` then
    ``Transpose(0, 2, 3, 1)``. ONNX Runtime runs a softmax over a non-last axis by transposing to
    it and back, around a loop over a 6-element axis: 23 % of the default model's fp32 time. The
    transpose first and a softmax over the last, contiguous axis computes the same values (the same
    kernel on the same six numbers per pixel: bit-identical outputs) 1.38x faster on that model."""
    from onnx import helper

    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    moved = 0
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
        after = consumers.get(softmax.output[0], [])
        if axis != 1 or len(after) != 1 or after[0].op_type != "Transpose":
            continue
        transpose = after[0]
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
        if perm != _TO_NHWC or softmax.output[0] in {o.name for o in graph.output}:
            continue
        channels_last = softmax.input[0] + "_channels_last"
        new_transpose = helper.make_node("Transpose", [softmax.input[0]], [channels_last], name=transpose.name,
                                         perm=_TO_NHWC)
        new_softmax = helper.make_node("Softmax", [channels_last], [transpose.output[0]], name=softmax.name, axis=-1)
        nodes = list(graph.node)
        nodes[nodes.index(softmax)] = new_transpose
        nodes[nodes.index(transpose)] = new_softmax
        graph.ClearField("node")
        graph.node.extend(nodes)
        moved += 1
    return moved


def renumber_names(graph: Any) -> None:
    """Give the converter's numbered names (``X__123``) numbers in graph order, in place; sort the
    initializers by first use; number the symbolic sizes (``unk__1040``) likewise. Graph inputs, outputs
    and every other name are kept. Constants
    that are numbered or shared become ``const__N``: the converter shares one constant among
    equal ones under any of their names (``const_axes__7``, ``dec4_up/mul/y:0``)."""
    renamed: dict[str, str] = {}
    uses: dict[str, int] = {}
    for value in (v for node in graph.node for v in node.input):
        uses[value] = uses.get(value, 0) + 1
    shared = {t.name for t in graph.initializer if uses.get(t.name, 0) > 1}
    constants = {t.name for t in graph.initializer}

    def name(old: str) -> str:
        if old not in renamed:
            if old in shared or (old in constants and _NUMBERED.search(old)):
                renamed[old] = f"const__{len(renamed)}"
            else:
                renamed[old] = f"{_NUMBERED.sub('', old)}__{len(renamed)}" if _NUMBERED.search(old) else old
        return renamed[old]

    for node in graph.node:
        node.name = name(node.name)
        node.input[:] = [name(value) for value in node.input]
        node.output[:] = [name(value) for value in node.output]
    first_use = {value: i for i, value in reversed(list(enumerate(v for n in graph.node for v in n.input)))}
    initializers = sorted(graph.initializer, key=lambda t: first_use.get(name(t.name), len(first_use)))
    for tensor in initializers:
        tensor.name = name(tensor.name)
    graph.ClearField("initializer")
    graph.initializer.extend(initializers)
    for info in [*graph.value_info, *graph.output]:
        info.name = name(info.name)
    sizes: dict[str, str] = {}  # the converter's symbolic sizes (unk__1040) count on across conversions too
    for info in [*graph.input, *graph.value_info, *graph.output]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and _NUMBERED.search(dim.dim_param):
                dim.dim_param = sizes.setdefault(dim.dim_param, f"{_NUMBERED.sub('', dim.dim_param)}__{len(sizes)}")


def write_onnx(model: Any, path: Path) -> None:
    """Convert ``model`` (called once, so that it is built) to an ONNX file at ``path``."""
    from tf2onnx import convert, tf_loader

    ready = onnx_ready(model)
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)  # the converter's TF1-API deprecation notices, on every conversion
    try:
        with tempfile.TemporaryDirectory(prefix="aerialseg-savedmodel-") as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converter's NumPy and TensorFlow deprecation notes
            ready.export(folder, format="tf_saved_model", verbose=False)
            graph_def, inputs, outputs = tf_loader.from_saved_model(folder, None, None, tag="serve",
                                                                    signatures=["serve"])
            proto, _ = convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=OPSET)
        softmax_last(proto.graph)
        renumber_names(proto.graph)
        import onnx

        onnx.save(proto, str(path))
    finally:
        tf_log.setLevel(level)
