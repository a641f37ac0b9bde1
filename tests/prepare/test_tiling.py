import numpy as np
import pytest

from aerialseg.core.errors import DataError
from aerialseg.core.io import write_index_mask, write_rgb
from aerialseg.core.names import MaskFiles, SceneFiles
from aerialseg.prepare.tile_writer import scene_tiles, write_manifest, write_split
from aerialseg.prepare.tiling import cut_tiles, window_origins
from aerialseg.train.tile_reader import TileStore

from conftest import CLASSES, TILE_FACTS


@pytest.mark.parametrize("length, window, stride", [(512, 128, 64), (500, 128, 128), (130, 128, 64), (128, 128, 32)])
def test_window_origins_cover_every_pixel_without_padding(length, window, stride):
    origins = window_origins(length, window, stride)
    covered = np.zeros(length, bool)
    for o in origins:
        assert 0 <= o <= length - window
        covered[o:o + window] = True
    assert covered.all()
    assert origins == sorted(set(origins))
    assert all(b - a <= stride for a, b in zip(origins, origins[1:], strict=False))


def test_short_axis_has_no_windows():
    assert window_origins(100, 128, 64) == []


def test_tiles_are_the_scene_slices():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    mask = rng.integers(0, 6, (200, 300), dtype=np.uint8)
    tiles = list(cut_tiles("2_10", image, mask, 64, 48))
    assert len(tiles) == len(window_origins(200, 64, 48)) * len(window_origins(300, 64, 48))
    for t in tiles:
        assert np.array_equal(t.image, image[t.y:t.y + 64, t.x:t.x + 64])
        assert np.array_equal(t.mask, mask[t.y:t.y + 64, t.x:t.x + 64])


def test_size_mismatch_names_the_scene():
    with pytest.raises(DataError, match="scene 3_11"):
        list(cut_tiles("3_11", np.zeros((64, 64, 3), np.uint8), np.zeros((64, 65), np.uint8), 32, 32))


def test_shards_round_trip_with_index(tmp_path):
    rng = np.random.default_rng(1)
    scenes = {s: (rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), rng.integers(0, 6, (96, 96), dtype=np.uint8))
              for s in ("2_10", "2_11", "5_12")}
    splits = {"train": ["2_10", "2_11"], "val": ["5_12"]}
    frames = []
    import pandas as pd
    for split, ids in splits.items():
        tiles = [t for s in ids for t in cut_tiles(s, *scenes[s], 32, 32)]
        frames.append(write_split(tmp_path, split, iter(tiles), 32, shard_size=7, class_names=CLASSES.names))
    write_manifest(tmp_path, pd.concat(frames, ignore_index=True), 32, 32, class_names=CLASSES.names,
                   data=TILE_FACTS)
    store = TileStore(tmp_path)
    index = store.index
    assert store.count("train") == 18 and store.count("val") == 9
    assert len(list((tmp_path / "train").glob("images_*.npy"))) == 3  # 18 tiles in shards of 7
    shards = store.shards("train")
    for row in index[index.split == "train"].itertuples():
        image, mask = scenes[row.scene]
        images, masks = shards[row.shard]
        assert np.array_equal(images[row.row], image[row.y:row.y + 32, row.x:row.x + 32])
        assert np.array_equal(masks[row.row], mask[row.y:row.y + 32, row.x:row.x + 32])
        counts = np.bincount(masks[row.row].ravel(), minlength=6)
        assert row.impervious == counts[0] and row.clutter == counts[5]
    # scenes never cross splits
    assert set(index[index.split == "val"].scene) == {"5_12"}
    assert not set(index[index.split == "train"].scene) & {"5_12"}


def test_scene_tiles_read_ahead_gives_the_tiles_of_each_scene_in_order(tmp_path):
    rng = np.random.default_rng(2)
    scenes = {}
    for scene_id in ("2_10", "2_11", "3_10"):
        image = rng.integers(0, 256, (80, 112, 3), dtype=np.uint8)
        mask = rng.choice([0, 1, 2, 3, 4, 5, 255], (80, 112)).astype(np.uint8)
        write_rgb(SceneFiles(tmp_path / "resized", scene_id).image, image, compress=False)  # memory-mapped read
        write_index_mask(MaskFiles(tmp_path / "masks", scene_id).full, mask)
        scenes[scene_id] = image, mask
    expected = [t for s in scenes for t in cut_tiles(s, *scenes[s], 32, 24)]
    got = list(scene_tiles(list(scenes), tmp_path / "resized", tmp_path / "masks", 32, 24))
    assert [(t.scene, t.y, t.x) for t in got] == [(t.scene, t.y, t.x) for t in expected]
    pairs = zip(got, expected, strict=True)
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) for a, b in pairs)
    # a missing mask stops at that scene, naming the file
    MaskFiles(tmp_path / "masks", "2_11").full.unlink()
    stream = scene_tiles(list(scenes), tmp_path / "resized", tmp_path / "masks", 32, 24)
    first = [t for _, t in zip(range(len(list(cut_tiles("2_10", *scenes["2_10"], 32, 24)))), stream, strict=False)]
    assert {t.scene for t in first} == {"2_10"}
    with pytest.raises(DataError, match="2_11_full.png: file not found"):
        next(stream)
