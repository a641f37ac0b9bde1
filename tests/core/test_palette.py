import dataclasses

import numpy as np
import pytest

from aerialseg.core.classes import IGNORE_INDEX
from aerialseg.core.errors import OffPaletteError
from aerialseg.core.io import read_rgb
from aerialseg.core.palette import class_counts, encode_label, index_to_rgb

from conftest import CLASSES, strict_index

CLASS_COLOURS, CLASS_NAMES, NUM_CLASSES = CLASSES.colours, CLASSES.names, len(CLASSES)


def test_every_class_colour_encodes_to_its_index():
    rgb = np.array(CLASS_COLOURS, dtype=np.uint8)[None]
    assert strict_index(rgb).tolist() == [list(range(len(CLASS_NAMES)))]


def test_round_trip_random_mask():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 6, (37, 53)).astype(np.uint8)
    index[::7, ::5] = IGNORE_INDEX
    assert np.array_equal(strict_index(index_to_rgb(index, CLASS_COLOURS), allow_boundary=True), index)


def test_black_is_an_error_in_full_labels_but_ignore_in_noboundary():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    assert strict_index(rgb, allow_boundary=True).tolist() == [[0, 255], [255, 255]]
    with pytest.raises(OffPaletteError, match=r"3 pixels.*rgb\(0, 0, 0\) x3"):
        strict_index(rgb, allow_boundary=False)


def test_off_palette_colours_are_listed_with_counts_most_frequent_first():
    rgb = np.full((4, 4, 3), 255, np.uint8)
    rgb[0, :3] = (250, 250, 250)
    rgb[1, 0] = (1, 2, 3)
    found = encode_label(rgb, CLASSES, tolerance=0).off_colours
    assert [(c.rgb, c.count) for c in found] == [((250, 250, 250), 3), ((1, 2, 3), 1)]
    with pytest.raises(OffPaletteError, match=r"4 pixels.*rgb\(250, 250, 250\) x3, rgb\(1, 2, 3\) x1"):
        strict_index(rgb)


def test_real_potsdam_label_counts_match_the_published_counts(real_crop_paths):
    # counts from shared/potsdam_real/README.md, computed independently of this code
    index = strict_index(read_rgb(real_crop_paths[1]), allow_boundary=True)
    counts = np.bincount(index.ravel(), minlength=256)
    assert counts[:6].tolist() == [100557, 64023, 34357, 30670, 7841, 0]
    assert counts[IGNORE_INDEX] == 24696


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8"):
        strict_index(np.zeros((2, 2, 3), np.float32))


def _encode_pixel_by_pixel(rgb, allow_boundary, tolerance):
    """Reference: each pixel on its own, nearest reference colour by largest channel difference."""
    references = list(CLASS_COLOURS) + ([(0, 0, 0)] if allow_boundary else [])
    codes = list(range(len(CLASS_COLOURS))) + ([255] if allow_boundary else [])
    mask = np.empty(rgb.shape[:2], np.uint8)
    snapped = off = 0
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            pixel = [int(v) for v in rgb[y, x]]
            distances = [max(abs(p - r) for p, r in zip(pixel, ref, strict=True)) for ref in references]
            best = min(range(len(references)), key=distances.__getitem__)
            if distances[best] == 0:
                mask[y, x] = codes[best]
            elif distances[best] <= tolerance:
                mask[y, x], snapped = codes[best], snapped + 1
            else:
                mask[y, x], off = 255, off + 1
    return mask, snapped, off


@pytest.mark.parametrize("allow_boundary", [False, True])
def test_encode_label_matches_a_pixel_by_pixel_reference(allow_boundary):
    rng = np.random.default_rng(3)
    palette = np.array(list(CLASS_COLOURS) + [(0, 0, 0)], np.int32)
    base = palette[rng.integers(0, len(palette), (40, 50))]
    noise = rng.integers(-30, 31, base.shape) * (rng.random(base.shape[:2]) < 0.3)[..., None]
    rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
    rgb[::7, ::3] = rng.integers(0, 256, rgb[::7, ::3].shape)  # arbitrary colours too
    table = CLASSES if allow_boundary else dataclasses.replace(CLASSES, ignore_colours=())
    encoding = encode_label(rgb, table, tolerance=12)
    mask, snapped, off = _encode_pixel_by_pixel(rgb, allow_boundary, 12)
    assert np.array_equal(encoding.mask, mask)
    assert (encoding.snapped, encoding.off_palette) == (snapped, off) and snapped > 100 and off > 100


def test_class_counts_match_a_full_histogram():
    rng = np.random.default_rng(5)
    mask = np.repeat(rng.choice([0, 1, 2, 3, 4, 5, IGNORE_INDEX], (300, 40)), 9, axis=1).astype(np.uint8)
    for view in (mask, mask[7:250:3, 11:]):
        histogram = np.bincount(view.ravel(), minlength=256)
        assert class_counts(view, NUM_CLASSES).tolist() == [*histogram[:NUM_CLASSES], histogram[IGNORE_INDEX]]
    assert class_counts(np.full((4097, 4097), 4, np.uint8), NUM_CLASSES)[4] == 4097 ** 2


def test_a_table_with_other_classes_and_several_colours_per_class_encodes_through_it():
    """Seven classes (impervious split into road and pavement), the road drawn in two colours: each
    label colour encodes to its class; black is ignore; an undeclared colour is counted off the table."""
    from aerialseg.core.classes import ClassTable

    table = ClassTable(("road", "pavement", "building", "low_vegetation", "tree", "car", "clutter"),
                       ((128, 128, 128), (255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0),
                        (255, 0, 0)),
                       label_colours=(((128, 128, 128), (100, 100, 100)), ((255, 255, 255),), ((0, 0, 255),),
                                      ((0, 255, 255),), ((0, 255, 0),), ((255, 255, 0),), ((255, 0, 0),)),
                       ignore_colours=((0, 0, 0),))
    rgb = np.array([[[128, 128, 128], [100, 100, 100], [255, 255, 255], [255, 0, 0], [0, 0, 0], [7, 200, 7]]],
                   np.uint8)
    encoding = encode_label(rgb, table, tolerance=0)
    assert encoding.mask.tolist() == [[0, 0, 1, 6, IGNORE_INDEX, IGNORE_INDEX]]
    assert [(c.rgb, c.count) for c in encoding.off_colours] == [((7, 200, 7), 1)]
    assert index_to_rgb(encoding.mask, table.colours)[0, :3].tolist() == [[128, 128, 128]] * 2 + [[255, 255, 255]]
