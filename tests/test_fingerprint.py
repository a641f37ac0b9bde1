"""Code digests ignore docstrings and comments but not behaviour; closures follow imports."""

import textwrap

from aerialseg.fingerprint import code_digest, module_closure, normalized_source
from aerialseg.inference import NOT_PREDICTION_CODE
from aerialseg.training import NOT_TRAINING_CODE

SOURCE = textwrap.dedent('''
    """Module docstring."""
    import numpy as np

    LIMIT = 3
    """What the limit is for."""


    def clip(values):
        """Clip to the limit."""
        return np.minimum(values, LIMIT)  # the limit is inclusive
''')


def test_docstrings_comments_and_layout_do_not_count():
    edited = (SOURCE.replace('"""Clip to the limit."""', '"""Clip, now documented at length.\n\n    More."""')
              .replace("# the limit is inclusive", "# reworded comment")
              .replace('"""Module docstring."""', "# a comment instead of a docstring")
              .replace("np.minimum(values, LIMIT)", "np.minimum(values,\n                      LIMIT)"))
    assert edited != SOURCE
    assert normalized_source(edited) == normalized_source(SOURCE)


def test_behaviour_counts():
    for edit in (("LIMIT = 3", "LIMIT = 4"), ("np.minimum", "np.maximum"), ("(values, LIMIT)", "(LIMIT, values)")):
        assert normalized_source(SOURCE.replace(*edit)) != normalized_source(SOURCE), edit


def test_training_code_is_what_training_runs_without_the_plumbing():
    closure = set(module_closure(["aerialseg.training"], exclude=NOT_TRAINING_CODE))
    assert {"aerialseg.training", "aerialseg.model", "aerialseg.losses", "aerialseg.input_pipeline",
            "aerialseg.tile_reader", "aerialseg.resume", "aerialseg.palette"} <= closure
    assert not closure & set(NOT_TRAINING_CODE)
    assert "aerialseg.blending" not in closure and "aerialseg.tile_writer" not in closure


def test_prediction_code_is_blending_and_inference():
    closure = set(module_closure(["aerialseg.inference"], exclude=NOT_PREDICTION_CODE))
    assert closure == {"aerialseg.inference", "aerialseg.blending"}
    assert len(code_digest(["aerialseg.inference"], exclude=NOT_PREDICTION_CODE)) == 16
