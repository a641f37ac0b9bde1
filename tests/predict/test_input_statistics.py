"""The predict-time check of an input's bands against the training scenes' percentiles."""

from __future__ import annotations

import numpy as np

from aerialseg.core.input_spec import RGB_UINT8, InputSpec, Normalisation
from aerialseg.predict.input_statistics import statistics_notes

SPEC = InputSpec(bands=("red", "nir"), dtype="uint16",
                 normalisation=Normalisation(method="percentiles", low=(100.0, 300.0), high=(2000.0, 4000.0)))


def test_a_band_whose_median_leaves_the_training_range_is_named_and_others_are_not():
    rng = np.random.default_rng(0)
    values = np.stack([rng.uniform(500, 1500, (32, 32)), rng.uniform(20000, 30000, (32, 32))], -1)
    notes = statistics_notes(values, np.ones((32, 32), bool), SPEC)
    assert len(notes) == 1 and notes[0].startswith("warning: band nir's median ")
    assert "(300 .. 4000)" in notes[0]


def test_only_the_footprint_counts_and_eight_bit_models_are_not_judged():
    values = np.full((8, 8, 2), 1000.0)
    values[:, :6] = 60000.0  # outside the footprint: not the image
    footprint = np.zeros((8, 8), bool)
    footprint[:, 6:] = True
    assert statistics_notes(values, footprint, SPEC) == []
    assert statistics_notes(values, np.ones((8, 8), bool), SPEC) != []
    assert statistics_notes(np.full((4, 4, 3), 255.0), np.ones((4, 4), bool), RGB_UINT8) == []
    assert statistics_notes(values, np.zeros((8, 8), bool), SPEC) == []  # nothing inside: nothing to judge
