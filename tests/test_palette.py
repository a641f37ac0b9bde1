import numpy as np
import pytest

from aerialseg.io import read_rgb
from aerialseg.palette import (CLASS_COLOURS, CLASS_NAMES, IGNORE_INDEX, OffPaletteError, encode_label,
                               index_to_rgb, rgb_to_index)


def test_every_class_colour_encodes_to_its_index():
    rgb = np.array(CLASS_COLOURS, dtype=np.uint8)[None]
    assert rgb_to_index(rgb).tolist() == [list(range(len(CLASS_NAMES)))]


def test_round_trip_random_mask():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 6, (37, 53)).astype(np.uint8)
    index[::7, ::5] = IGNORE_INDEX
    assert np.array_equal(rgb_to_index(index_to_rgb(index), allow_boundary=True), index)


def test_black_is_an_error_in_full_labels_but_ignore_in_noboundary():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    assert rgb_to_index(rgb, allow_boundary=True).tolist() == [[0, 255], [255, 255]]
    with pytest.raises(OffPaletteError, match=r"3 pixels.*rgb\(0, 0, 0\) x3"):
        rgb_to_index(rgb, allow_boundary=False)


def test_off_palette_colours_are_listed_with_counts_most_frequent_first():
    rgb = np.full((4, 4, 3), 255, np.uint8)
    rgb[0, :3] = (250, 250, 250)
    rgb[1, 0] = (1, 2, 3)
    found = encode_label(rgb, allow_boundary=True, tolerance=0).off_colours
    assert [(c.rgb, c.count) for c in found] == [((250, 250, 250), 3), ((1, 2, 3), 1)]
    with pytest.raises(OffPaletteError, match=r"4 pixels.*rgb\(250, 250, 250\) x3, rgb\(1, 2, 3\) x1"):
        rgb_to_index(rgb)


def test_real_potsdam_label_counts_match_the_published_counts(real_crop_paths):
    # counts from shared/potsdam_real/README.md, computed independently of this code
    index = rgb_to_index(read_rgb(real_crop_paths[1]), allow_boundary=True)
    counts = np.bincount(index.ravel(), minlength=256)
    assert counts[:6].tolist() == [100557, 64023, 34357, 30670, 7841, 0]
    assert counts[IGNORE_INDEX] == 24696


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_index(np.zeros((2, 2, 3), np.float32))
