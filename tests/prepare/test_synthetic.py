import numpy as np
import pytest

from aerialseg.core.classes import IGNORE_INDEX
from aerialseg.core.geo.worldfile import read_world_file
from aerialseg.core.io import read_rgb
from aerialseg.core.names import SceneFiles
from aerialseg.prepare.sources.synthetic import erode_boundaries, generate_scene, write_scene_files

from conftest import CLASSES, strict_index


@pytest.fixture(scope="module")
def scene():
    return generate_scene(7, "2_10", 768)


def test_same_seed_and_id_give_the_same_scene(scene):
    again = generate_scene(7, "2_10", 768)
    assert np.array_equal(scene.image, again.image) and np.array_equal(scene.label, again.label)


def test_other_id_or_seed_give_other_scenes(scene):
    assert not np.array_equal(scene.image, generate_scene(7, "2_11", 768).image)
    assert not np.array_equal(scene.image, generate_scene(8, "2_10", 768).image)


def test_scene_shapes_and_classes(scene):
    assert scene.image.shape == (768, 768, 3) and scene.image.dtype == np.uint8
    assert scene.label.shape == (768, 768) and scene.label.max() <= 5
    shares = np.bincount(scene.label.ravel(), minlength=6) / scene.label.size
    assert shares[0] > 0.05 and shares[2] > 0.05  # roads and lawns in every scene


def test_classes_all_appear_over_a_few_scenes():
    present = set()
    for scene_id in ("2_10", "2_11", "2_12"):
        present |= set(np.unique(generate_scene(1, scene_id, 1024).label).tolist())
    assert present == set(range(6))


def test_boundaries_are_eroded_only_where_classes_meet():
    label = np.zeros((20, 20), np.uint8)
    label[:, 10:] = 1
    eroded = erode_boundaries(label, radius=2)
    assert (eroded[:, 8:12] == IGNORE_INDEX).all()
    assert (eroded[:, :8] == 0).all() and (eroded[:, 12:] == 1).all()


def test_written_in_the_official_layout_and_colours(tmp_path, scene):
    files = SceneFiles(tmp_path, "2_10")
    write_scene_files(files, scene, 0, CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2_10_image.tfw", "2_10_image.tif", "2_10_label.tif", "2_10_label_noboundary.tif"]
    assert np.array_equal(read_rgb(files.image), scene.image)
    assert np.array_equal(strict_index(read_rgb(files.label)), scene.label)
    noboundary = strict_index(read_rgb(files.label_noboundary), allow_boundary=True)
    assert np.array_equal(noboundary, erode_boundaries(scene.label))
    assert read_world_file(files.world).pixel_x == pytest.approx(0.05)


def test_parallel_writing_gives_the_same_files(tmp_path):
    from aerialseg.prepare.sources.synthetic import write_scenes

    done = []
    for jobs in (1, 2):
        done += write_scenes(tmp_path / str(jobs), ["2_10", "2_11"], seed=3, size=256, classes=CLASSES, jobs=jobs)
    assert done == ["2_10", "2_11", "2_10", "2_11"]
    names = sorted(p.name for p in (tmp_path / "1").iterdir())
    assert len(names) == 8
    for name in names:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_a_table_other_than_six_classes_with_an_ignore_colour_is_refused_in_one_line(tmp_path):
    import dataclasses

    from aerialseg.core.classes import ClassTable
    from aerialseg.core.errors import ParamsError
    from aerialseg.prepare.sources.synthetic import write_scenes

    seven = ClassTable(CLASSES.names + ("water",), CLASSES.colours + ((0, 0, 128),), ignore_colours=((0, 0, 0),))
    for table in (seven, dataclasses.replace(CLASSES, ignore_colours=())):
        with pytest.raises(ParamsError, match=r"^classes: the synthetic source draws 6 classes \(impervious, "):
            write_scenes(tmp_path / "raw", ["2_10"], seed=3, size=256, classes=table)
    assert not (tmp_path / "raw").exists()


def test_scenes_are_drawn_in_the_table_colours(tmp_path):
    from aerialseg.prepare.sources.synthetic import write_scenes

    recoloured = CLASSES.__class__(CLASSES.names, tuple((c[1], c[2], c[0]) for c in CLASSES.colours),
                                   ignore_colours=((9, 9, 9),))
    write_scenes(tmp_path / "a", ["2_10"], seed=3, size=256, classes=CLASSES)
    write_scenes(tmp_path / "b", ["2_10"], seed=3, size=256, classes=recoloured)
    a, b = (read_rgb(SceneFiles(tmp_path / x, "2_10").label_noboundary) for x in "ab")
    index = strict_index(a, allow_boundary=True)
    lookup = np.array([*recoloured.colours, *[(0, 0, 0)] * 249, (9, 9, 9)], np.uint8)
    np.testing.assert_array_equal(b, lookup[index])
