"""Property: a truncated or bit-flipped file gives DataError naming it (or reads fine); nothing else.

Partly copied tiles, flipped bits on a bad disk, a half-written checkpoint: every reader the
pipeline and the CLI use turns whatever its decoder raises into one ``DataError``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerialseg.core.errors import DataError
from aerialseg.core.geo.worldfile import read_world_file
from aerialseg.core.io import open_image, read_index_mask, read_json, read_npy, read_rgb
from aerialseg.predict.mapping import open_orthophoto

IMAGE = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)


def load_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """What ``aerialseg predict`` reads (any GDAL raster or an .npy), all rows at once, with its notes."""
    image, notes = open_orthophoto(path)
    try:
        return image.read_rows(np.arange(image.shape[0])), notes
    finally:
        image.close()


def _originals(folder: Path) -> dict[str, bytes]:
    """Small valid files of every kind the readers take, as bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    compression = cv2.IMWRITE_TIFF_COMPRESSION
    for name, params in (("lzw.tif", [compression, 5]), ("plain.tif", [compression, 1]), ("image.png", [])):
        cv2.imwrite(str(folder / name), IMAGE[..., ::-1], params)
        files[name] = (folder / name).read_bytes()
    cv2.imwrite(str(folder / "mask.png"), IMAGE[..., 0])
    files["mask.png"] = (folder / "mask.png").read_bytes()
    np.save(folder / "image.npy", IMAGE)
    files["image.npy"] = (folder / "image.npy").read_bytes()
    files["meta.json"] = b'{"tiles": {"train": 3}}'
    files["image.tfw"] = b"0.05\n0\n0\n-0.05\n366000.025\n5808000.975\n"
    return files


READERS = {
    "lzw.tif": [read_rgb, open_image, load_image],
    "plain.tif": [read_rgb, open_image, load_image],
    "image.png": [read_rgb, load_image],
    "mask.png": [read_index_mask],
    "image.npy": [read_npy, load_image],
    "meta.json": [read_json],
    "image.tfw": [read_world_file],
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    return _originals(tmp_path_factory.mktemp("originals"))


@st.composite
def damaged(draw, originals):
    name = draw(st.sampled_from(sorted(READERS)))
    data = bytearray(originals[name])
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data) - 1))]
    else:
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
    return name, bytes(data)


def _reads_or_names_the_file(reader, path: Path) -> None:
    try:
        result = reader(path)
    except DataError as err:
        assert str(err).startswith(str(path)), str(err)
        assert "\n" not in str(err)
        return
    if reader is load_image:
        image, _ = result
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.size


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_read_or_raise_data_error(originals, tmp_path, data):
    name, content = data.draw(damaged(originals))
    path = tmp_path / name
    path.write_bytes(content)
    for reader in READERS[name]:
        _reads_or_names_the_file(reader, path)


def test_the_undamaged_files_read(originals, tmp_path):
    for name, content in originals.items():
        (tmp_path / name).write_bytes(content)
    assert np.array_equal(read_rgb(tmp_path / "lzw.tif"), IMAGE)
    assert np.array_equal(load_image(tmp_path / "image.npy")[0], IMAGE)
    assert read_json(tmp_path / "meta.json") == {"tiles": {"train": 3}}


@pytest.mark.parametrize("array", [np.zeros((0, 0, 3), np.uint8), np.zeros((4, 0, 3), np.uint8),
                                   np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8),
                                   np.zeros((4, 4, 2), np.uint8)])
def test_npy_images_of_the_wrong_shape_or_type_are_refused(tmp_path, array):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=str(path)):
        load_image(path)


def test_a_keras_checkpoint_without_its_config_is_a_data_error(tmp_path, tiny_checkpoint):
    import zipfile

    from aerialseg.predict.loading import load_model

    path = tmp_path / "m.keras"
    tiny_checkpoint(path, depth=1, base_filters=2)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist() if n != "config.json"}
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    with pytest.raises(DataError, match="not a readable Keras checkpoint"):
        load_model(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoints_load_or_raise_data_error(checkpoint_bytes, tmp_path, data):
    from aerialseg.predict.loading import load_model

    content = bytearray(checkpoint_bytes)
    if data.draw(st.booleans()):
        content = content[:data.draw(st.integers(0, len(content) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            content[data.draw(st.integers(0, len(content) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / "damaged.keras"
    path.write_bytes(bytes(content))
    try:
        load_model(path)
    except DataError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory, tiny_checkpoint):
    path = tmp_path_factory.mktemp("ckpt") / "m.keras"
    tiny_checkpoint(path, depth=1, base_filters=2)
    return path.read_bytes()
