"""Scenes drawn into splits by seeded fractions, and the check that a split scores only trained classes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aerialseg.core.errors import DataError
from aerialseg.core.scene_split import Split, read_split, write_split
from aerialseg.prepare.splitting import check_split_classes, draw_split

NAMES = ("impervious", "building", "car")


@st.composite
def folders(draw):
    """Scene ids, some assigned to a split, fractions for val and test, a seed."""
    scenes = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=3, max_size=30,
                           unique=True))
    assigned = draw(st.dictionaries(st.sampled_from(scenes), st.sampled_from(("train", "val", "test")),
                                    max_size=len(scenes) // 2))
    fractions = {"val": draw(st.sampled_from((0.0, 0.1, 0.15, 0.3))),
                 "test": draw(st.sampled_from((0.0, 0.1, 0.2, 0.3)))}
    return scenes, assigned, fractions, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=200, deadline=None)
@given(folders())
def test_a_drawn_split_partitions_the_scenes_keeps_the_assigned_and_draws_the_fractions(case):
    scenes, assigned, fractions, seed = case
    split = draw_split(scenes, assigned, fractions, seed)
    assert sorted(split.all_scenes) == sorted(scenes)  # every scene once, none invented
    for scene, name in assigned.items():
        assert scene in dict(split.items())[name]
    remaining = len(scenes) - len(assigned)  # drawn test first, then val, from what is left
    for name in ("test", "val"):
        ids = dict(split.items())[name]
        if name in assigned.values():  # a split something assigns gets no drawn scene
            assert sorted(ids) == sorted(s for s, n in assigned.items() if n == name)
        elif fractions[name] > 0:
            expected = min(max(1, round(fractions[name] * len(scenes))), remaining)
            assert len(ids) == expected
            remaining -= expected
        else:
            assert ids == ()
    # the same folder and seed give the same split, whatever order the scenes were found in
    assert draw_split(list(reversed(scenes)), assigned, fractions, seed) == split


def test_a_listed_test_split_gets_a_drawn_val_and_the_rest_trains():
    scenes = [f"s{i:02d}" for i in range(10)]
    split = draw_split(scenes, {"s00": "test", "s01": "test"}, {"val": 0.2, "test": 0.2}, seed=7)
    assert split.test == ("s00", "s01")  # listed: nothing drawn into it
    assert len(split.val) == 2 and not {"s00", "s01"} & set(split.val)  # 20 % of 10 scenes
    assert sorted(split.train) == sorted(set(scenes) - set(split.val) - set(split.test))
    other = {draw_split(scenes, {"s00": "test", "s01": "test"}, {"val": 0.2, "test": 0.2}, seed=s).val
             for s in range(20)}
    assert len(other) > 1  # the seed decides which scenes are drawn


def test_a_fraction_draws_at_least_one_scene_and_zero_draws_none():
    split = draw_split(["a", "b", "c"], {}, {"val": 0.1, "test": 0.1}, seed=0)  # 0.3 scenes each: one
    assert (len(split.train), len(split.val), len(split.test)) == (1, 1, 1)
    split = draw_split(["a", "b", "c"], {}, {"val": 0.0, "test": 0.0}, seed=0)
    assert split == Split(("a", "b", "c"), (), ())
    with pytest.raises(DataError, match=r"^data.folder.val: no scenes"):
        split.check_not_empty(lambda name: f"data.folder.{name}")


def test_the_split_file_round_trips_and_a_damaged_one_is_one_line(tmp_path):
    split = Split(("a", "b"), ("c",), ("d",))
    write_split(tmp_path, split)
    assert read_split(tmp_path) == split
    (tmp_path / "split.json").write_text('{"train": ["a"], "val": []}')
    with pytest.raises(DataError, match=r"split.json: not a split \(expected lists of scene ids under train"):
        read_split(tmp_path)
    with pytest.raises(DataError, match=r"split.json: missing; it is written by the download stage"):
        read_split(tmp_path / "elsewhere")


def test_a_class_scored_but_never_trained_is_refused_and_a_rare_one_is_a_warning():
    split = Split(("t1", "t2"), ("v",), ("x",))
    counts = {"t1": [500, 500, 0], "t2": [400, 600, 0], "v": [50, 50, 0], "x": [40, 40, 20]}
    with pytest.raises(DataError) as err:
        check_split_classes(split, counts, NAMES)
    assert str(err.value).startswith("the split scores classes no training scene shows (car: 20 px in test scene x)")
    counts["t2"] = [400, 598, 2]  # 2 of 2000 training pixels (0.1 %), 20 of 200 scored ones (10 %): rare
    assert check_split_classes(split, counts, NAMES) == [
        "class car is rare in training: 0.100% of training pixels, 10.000% of val/test pixels; "
        "its scores rest on few examples"]
    counts["t2"] = [300, 500, 200]  # 10 % of training pixels: as common as in test
    assert check_split_classes(split, counts, NAMES) == []
    counts["x"] = [40, 60, 0]  # a class absent from val and test is not scored: nothing to say
    counts["t1"] = [500, 500, 0]
    assert check_split_classes(Split(("t1",), ("v",), ("x",)), counts, NAMES) == []
