import dataclasses

import numpy as np
import pytest

from aerialseg.core.errors import DataError, OffPaletteError
from aerialseg.core.geo.worldfile import WorldFile, read_world_file, write_world_file
from aerialseg.core.io import read_index_mask, read_rgb, write_rgb
from aerialseg.core.names import MaskFiles, SceneFiles
from aerialseg.core.palette import index_to_rgb
from aerialseg.prepare.preprocess import encode_scene, resize_label, resize_scene, resize_scene_files

from conftest import CLASSES

FIVE_CM = WorldFile(0.05, 0, 0, -0.05, 1000.025, 2000.975)


def _write_scene(folder, tile_id, size=(64, 96), seed=0, label_size=None, world=FIVE_CM):
    rng = np.random.default_rng(seed)
    files = SceneFiles(folder, tile_id)
    write_rgb(files.image, rng.integers(0, 256, size + (3,), dtype=np.uint8))
    index = rng.integers(0, 6, label_size or size).astype(np.uint8)
    write_rgb(files.label, index_to_rgb(index, CLASSES.colours))
    index_nb = index.copy()
    index_nb[::5] = 255
    write_rgb(files.label_noboundary, index_to_rgb(index_nb, CLASSES.colours))
    if world is not None:
        write_world_file(files.world, world)
    return files


@pytest.mark.parametrize("scale", [0.5, 0.3, 0.77])
def test_nearest_exact_never_creates_a_colour(scale):
    rng = np.random.default_rng(1)
    colours = np.array(CLASSES.colours + ((0, 0, 0),), np.uint8)
    label = colours[rng.integers(0, 7, (101, 77))]
    resized = resize_label(label, scale)
    before = {tuple(c) for c in label.reshape(-1, 3)}
    after = {tuple(c) for c in resized.reshape(-1, 3)}
    assert after <= before


def test_real_label_keeps_its_palette_when_resized(real_crop_paths):
    label = read_rgb(real_crop_paths[1])
    before = {tuple(c) for c in label.reshape(-1, 3)}
    assert {tuple(c) for c in resize_label(label, 0.25).reshape(-1, 3)} <= before


def test_world_file_scaling_keeps_the_image_extent():
    world = WorldFile(0.05, 0.0, 0.0, -0.05, 1000.025, 2000.975)
    scaled = world.scaled(0.25)
    assert scaled.pixel_x == pytest.approx(0.2) and scaled.pixel_y == pytest.approx(-0.2)
    # the top-left corner of the top-left pixel stays where it was
    assert scaled.origin_x - scaled.pixel_x / 2 == pytest.approx(world.origin_x - world.pixel_x / 2)
    assert scaled.origin_y - scaled.pixel_y / 2 == pytest.approx(world.origin_y - world.pixel_y / 2)


def test_resize_and_encode_a_scene(tmp_path):
    src = _write_scene(tmp_path / "raw", "2_10")
    dst = SceneFiles(tmp_path / "resized", "2_10")
    assert resize_scene(src, dst, 0.5) == (32, 48)
    assert read_rgb(dst.image).shape == (32, 48, 3)
    assert read_world_file(dst.world).pixel_x == pytest.approx(0.1)
    masks = MaskFiles(tmp_path / "masks", "2_10")
    encode_scene(dst, masks, CLASSES)
    assert read_index_mask(masks.full).max() <= 5
    assert (read_index_mask(masks.noboundary) == 255).any()


def test_label_size_mismatch_names_the_file(tmp_path):
    src = _write_scene(tmp_path, "2_11", label_size=(64, 95))
    with pytest.raises(DataError, match=r"2_11_label.tif: label is 95x64 px but its image"):
        resize_scene(src, SceneFiles(tmp_path / "out", "2_11"), 0.5)


def test_off_palette_label_names_file_colour_and_count(tmp_path):
    files = _write_scene(tmp_path, "3_10")
    label = read_rgb(files.label)
    label[:2, :3] = (250, 5, 5)
    write_rgb(files.label, label)
    with pytest.raises(OffPaletteError, match=r"3_10_label.tif: scene 3_10: 0.10% of pixels have colours that are "
                                              r"no class's .*commonest rgb\(250, 5, 5\) x6"):
        encode_scene(files, MaskFiles(tmp_path / "masks", "3_10"), CLASSES)
    assert not (tmp_path / "masks" / "3_10_full.png").exists()


def test_near_palette_colours_are_snapped_and_far_ones_ignored_and_counted(tmp_path):
    files = _write_scene(tmp_path, "3_11")
    label = read_rgb(files.label)
    label[:2, :3] = (250, 5, 5)        # 5 from clutter (255, 0, 0): snapped with tolerance 16
    label[10, :4] = (128, 128, 128)    # far from every class: ignore
    write_rgb(files.label, label)
    masks = MaskFiles(tmp_path / "masks", "3_11")
    report = encode_scene(files, masks, CLASSES, tolerance=16, max_offpalette=0.01).report
    encoded = read_index_mask(masks.full)
    assert (encoded[:2, :3] == 5).all() and (encoded[10, :4] == 255).all()
    assert report["full"]["snapped"] == 6 and report["full"]["off_palette"] == 4
    assert report["noboundary"]["snapped"] == 0
    # the same label with a stricter limit stops, naming the scene and the share
    with pytest.raises(OffPaletteError, match=r"scene 3_11: 0.07% of pixels"):
        encode_scene(files, MaskFiles(tmp_path / "strict", "3_11"), CLASSES, tolerance=16,
                     max_offpalette=0.0001)


def test_encode_label_by_hand():
    from aerialseg.core.palette import encode_label

    rgb = np.array([[[255, 255, 255], [0, 0, 250], [10, 10, 10], [90, 90, 90]]], np.uint8)
    strict = encode_label(rgb, dataclasses.replace(CLASSES, ignore_colours=()), tolerance=0)
    assert strict.mask.tolist() == [[0, 255, 255, 255]] and strict.off_palette == 3 and strict.snapped == 0
    loose = encode_label(rgb, CLASSES, tolerance=10)
    # (0, 0, 250) -> building; (10, 10, 10) -> boundary black -> ignore; (90, 90, 90) stays off-palette
    assert loose.mask.tolist() == [[0, 1, 255, 255]] and loose.snapped == 2 and loose.off_palette == 1
    assert loose.off_colours[0].rgb == (90, 90, 90) and loose.off_palette_share == pytest.approx(0.25)


def test_corrupt_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "top_potsdam_2_10_RGB.tif"
    bad.write_bytes(b"II*\x00 definitely not a tiff")
    with pytest.raises(DataError, match="not a readable image"):
        read_rgb(bad)


def test_open_image_maps_uncompressed_tiffs_of_any_bands_and_decodes_the_rest(tmp_path):
    import tifffile

    from aerialseg.core.io import open_image, write_image

    image = np.random.default_rng(4).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    for name, compress in (("plain.tif", False), ("packed.tif", True), ("image.png", True)):
        write_rgb(tmp_path / name, image, compress=compress)
        opened = open_image(tmp_path / name)
        assert np.array_equal(opened, image) and opened.dtype == np.uint8
        assert isinstance(opened.base, np.memmap) == (name == "plain.tif")
    for bands, dtype in ((1, np.uint8), (4, np.uint16), (5, np.float32)):  # what the stages write
        many = np.random.default_rng(bands).integers(0, 4000, (40, 70, bands)).astype(dtype)
        write_image(tmp_path / "many.tif", many)
        opened = open_image(tmp_path / "many.tif")
        assert np.array_equal(opened, many) and opened.dtype == dtype and not opened.flags.owndata  # mapped
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=[2])  # alpha: not a band
    assert open_image(tmp_path / "rgba.tif").shape == (40, 70, 3)
    grey = tmp_path / "grey.png"
    import cv2
    cv2.imwrite(str(grey), image[..., 0])  # a one-channel photo: decoded, then refused
    with pytest.raises(DataError, match="grey.png"):
        open_image(grey)


def test_scenes_of_other_resolutions_all_come_to_the_target_gsd(tmp_path):
    """5 cm and 20 cm scenes (by their world files) to 0.2 m/px: the first shrinks 4x, the second keeps
    its size; a scene without a world file takes its source's declared GSD."""
    raw, out = tmp_path / "raw", tmp_path / "resized"
    _write_scene(raw, "fine", size=(64, 96))
    _write_scene(raw, "coarse", size=(16, 24), world=WorldFile(0.2, 0, 0, -0.2, 1000.1, 2000.9))
    _write_scene(raw, "bare", size=(32, 48), world=None)
    assert resize_scene_files("fine", raw, out, 0.2, None) == (16, 24)
    assert resize_scene_files("coarse", raw, out, 0.2, None) == (16, 24)
    assert resize_scene_files("bare", raw, out, 0.2, 0.1) == (16, 24)
    for scene in ("fine", "coarse"):
        world = read_world_file(SceneFiles(out, scene).world)
        assert world.pixel_x == pytest.approx(0.2) and world.pixel_y == pytest.approx(-0.2)
        assert read_rgb(SceneFiles(out, scene).label).shape == (16, 24, 3)
    np.testing.assert_array_equal(read_rgb(SceneFiles(out, "coarse").image), read_rgb(SceneFiles(raw, "coarse").image))


def test_a_scene_without_any_gsd_or_with_unequal_pixels_is_one_line(tmp_path):
    raw = tmp_path / "raw"
    _write_scene(raw, "bare", world=None)
    with pytest.raises(DataError, match=r"bare_image.tif: no world file gives its ground sample distance, and its "
                                        r"data source declares none$"):
        resize_scene_files("bare", raw, tmp_path / "out", 0.2, None)
    _write_scene(raw, "stretched", world=WorldFile(0.05, 0, 0, -0.08, 1000.0, 2000.0))
    _write_scene(raw, "rotated", world=WorldFile(0.05, 0.01, 0.01, -0.05, 1000.0, 2000.0))
    for scene in ("stretched", "rotated"):
        with pytest.raises(DataError, match=rf"{scene}_image.tfw: pixels of 0.05 x 0.0\d m with rotation .*gdalwarp"):
            resize_scene_files(scene, raw, tmp_path / "out", 0.2, 0.05)
    assert not (tmp_path / "out").exists()
