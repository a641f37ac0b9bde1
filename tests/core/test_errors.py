"""One-line reasons: what a library said, on one line, the previous exception quoted where it points there."""

from aerialseg.core.errors import one_line_reason


def _chained() -> RuntimeError:
    try:
        try:
            raise ValueError("o.tif, band 1: IReadBlock failed at X offset 3,\nY offset 1")
        except ValueError as inner:
            raise RuntimeError("Read failed. See previous exception for details.") from inner
    except RuntimeError as err:
        return err


def test_a_reason_is_one_line_with_its_type():
    assert one_line_reason(ValueError("two\n  lines")) == "ValueError: two lines"
    assert one_line_reason(KeyError()) == "KeyError"
    assert len(one_line_reason(ValueError("x" * 500), limit=50)) == 50


def test_a_reason_that_points_to_the_previous_exception_quotes_it():
    assert one_line_reason(_chained()) == (
        "RuntimeError: Read failed. (ValueError: o.tif, band 1: IReadBlock failed at X offset 3, Y offset 1)")
    assert one_line_reason(RuntimeError("See previous exception for details.")) == (
        "RuntimeError: See previous exception for details.")  # nothing to quote: as it was
