"""Code digests ignore docstrings and comments but not behaviour; closures follow imports."""

import textwrap

from aerialseg.core.fingerprint import VALUE_ONLY_MODULES, code_digest, module_closure, normalized_source

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
    closure = set(module_closure(["aerialseg.train.loop"]))
    assert {"aerialseg.train.loop", "aerialseg.train.model", "aerialseg.train.losses", "aerialseg.train.input_pipeline",
            "aerialseg.train.tile_reader", "aerialseg.train.resume", "aerialseg.train.checkpoints",
            "aerialseg.train.schedules", "aerialseg.train.compiling", "aerialseg.core.classes"} <= closure
    assert not closure & set(VALUE_ONLY_MODULES)
    assert "aerialseg.predict.blending" not in closure and "aerialseg.prepare.tile_writer" not in closure


def test_prediction_code_is_blending_and_inference():
    closure = set(module_closure(["aerialseg.predict.inference"]))
    assert closure == {"aerialseg.predict.inference", "aerialseg.predict.blending"}
    assert len(code_digest(["aerialseg.predict.inference"])) == 16
