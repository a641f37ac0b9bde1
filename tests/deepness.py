"""How QGIS Deepness 0.6 loads a segmentation model, as a test client of aerialseg's exports."""

from __future__ import annotations

import json
from pathlib import Path


def deepness_reads(path: Path) -> dict:
    """Load an ONNX model the way QGIS Deepness 0.6 loads a segmentation model (its model_base.py and
    segmentor.py): one input (N, C, H, W) whose last two sides are the tile size as integers; one
    4-D output (N, C, H, W) with H == W; JSON-encoded metadata: model_type (capitalised), class_names
    as {"0": name, ...} with consecutive keys, resolution (float, cm/px), tile_size and tiles_overlap
    (int); images are fed as RGB / 255, NHWC -> NCHW. Raises where Deepness fails to load it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) > 1:
        raise ValueError("ONNX model: unsupported number of inputs")
    height, width = inputs[0].shape[-2:]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise TypeError(f"the tile size {inputs[0].shape[-2:]} is not a pair of integers")
    if len(outputs) != 1 or len(outputs[0].shape) != 4 or outputs[0].shape[2] != outputs[0].shape[3]:
        raise ValueError(f"a segmentation output must be (B, C, H, W) and square, got {outputs[0].shape}")
    meta = session.get_modelmeta().custom_metadata_map
    names = sorted(json.loads(meta["class_names"]).items(), key=lambda kv: int(kv[0]))
    if [int(key) for key, _ in names] != list(range(len(names))):
        raise ValueError("class names are not consecutive")
    return {"model_type": str(json.loads(meta["model_type"])).capitalize(), "class_names": [n for _, n in names],
            "resolution": float(json.loads(meta["resolution"])) if "resolution" in meta else None,
            "tile_size": int(json.loads(meta["tile_size"])), "tiles_overlap": int(json.loads(meta["tiles_overlap"])),
            "channels": inputs[0].shape[-3], "input": inputs[0].name, "session": session}
