"""The input record: written beside the scenes, read back checked; a wrong one is one line naming the file."""

from __future__ import annotations

import json

import pytest

from aerialseg.core.errors import DataError
from aerialseg.core.input_spec import (
    RGB_UINT8,
    InputSpec,
    Normalisation,
    fixed_input,
    input_json,
    read_input,
    write_input,
)

NIR_UINT16 = InputSpec(bands=("red", "green", "blue", "nir"), dtype="uint16",
                       normalisation=Normalisation(method="percentiles", low=(10.0, 12.0, 9.0, 30.0),
                                                   high=(900.0, 870.0, 700.0, 2100.0)))


@pytest.mark.parametrize("spec", [RGB_UINT8, fixed_input(("nir", "red", "green")), NIR_UINT16])
def test_a_written_record_reads_back_equal(tmp_path, spec):
    write_input(tmp_path, spec)
    assert read_input(tmp_path) == spec


def test_only_eight_bits_at_0_255_is_the_identity():
    assert RGB_UINT8.identity and fixed_input(("nir", "red", "green")).identity
    assert not NIR_UINT16.identity
    low, span = NIR_UINT16.unit_scale()
    assert list(low) == [10.0, 12.0, 9.0, 30.0] and list(span) == [890.0, 858.0, 691.0, 2070.0]
    assert NIR_UINT16.describe() == "4 band(s) (red, green, blue, nir) of uint16"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r.update(dtype="int16"), r"dtype: .*expected one of uint8, uint16, float32"),
    (lambda r: r["normalisation"].update(low=[0, 0]), r"normalisation: low and high need one number per band \(4\)"),
    (lambda r: r["normalisation"].update(high=[10.0, 900.0, 900.0, 900.0]), r"each band's high must exceed its low"),
    (lambda r: r.update(bands=["red", "red", "blue", "nir"]), r"bands: expected a list of distinct band names"),
    (lambda r: r["normalisation"].update(method="zscore"), r"normalisation.method"),
])
def test_a_wrong_record_is_one_line_naming_the_file_and_key(tmp_path, edit, message):
    raw = input_json(NIR_UINT16)
    edit(raw)
    (tmp_path / "input.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'input.json'}: .*{message}") as err:
        read_input(tmp_path)
    assert "\n" not in str(err.value)


def test_a_folder_without_a_record_asks_to_rerun_download(tmp_path):
    with pytest.raises(DataError, match=r"input.json: not found: the scenes' bands are recorded by download"):
        read_input(tmp_path)
