"""The model card: what predicting with a run's checkpoints needs, written beside them by ``train``.

It records the ground sample distance the model learned (so ``aerialseg predict`` resamples
other resolutions to it), the classes and their colours, the prediction window and overlap,
the architecture and the input convention.
"""

from __future__ import annotations

from typing import Any

from aerialseg.core.palette import CLASS_COLOURS, CLASS_NAMES
from aerialseg.core.params import SOURCE_GSD_M, Params


def model_card(params: Params) -> dict[str, Any]:
    """The card of a run with these params (JSON-ready)."""
    return {
        "producer": "aerialseg", "ground_sample_distance_m": SOURCE_GSD_M / params.resize.scale,
        "class_names": list(CLASS_NAMES), "class_colours": [list(c) for c in CLASS_COLOURS],
        "window": params.predict.window, "subdivisions": params.predict.subdivisions, "tta": params.predict.tta,
        "model": {"encoder": params.model.encoder, "depth": params.model.depth,
                  "base_filters": params.model.base_filters, "input_multiple": params.model.input_multiple()[0]},
        "input": "RGB uint8 in [0, 255], (N, H, W, 3); normalisation is inside the model",
    }
