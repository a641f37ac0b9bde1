import numpy as np

from aerialseg.core.io import write_index_mask
from aerialseg.predict import prediction_cache as cache


def _key(tmp_path, weights="w1", window=128, code="c1"):
    image = tmp_path / "img.tif"
    if not image.exists():
        image.write_bytes(b"pixels")
    return cache.prediction_key(weights, {"window": window}, {"2_13": image}, code)


def test_stored_predictions_are_reused_only_for_the_same_key(tmp_path):
    root = tmp_path / "pred"
    key = _key(tmp_path)
    assert not cache.is_current(root, 25, key)
    with cache.store(root, 25, key) as folder:
        write_index_mask(folder / "2_13_smooth.png", np.zeros((4, 4), np.uint8))
    assert cache.is_current(root, 25, key)
    assert not cache.is_current(root, 25, _key(tmp_path, weights="w2"))
    assert not cache.is_current(root, 25, _key(tmp_path, window=256))
    assert not cache.is_current(root, 25, _key(tmp_path, code="c2"))
    (tmp_path / "img.tif").write_bytes(b"other pixels")
    assert not cache.is_current(root, 25, _key(tmp_path))


def test_failed_prediction_leaves_nothing(tmp_path):
    root = tmp_path / "pred"
    try:
        with cache.store(root, 50, _key(tmp_path)) as folder:
            write_index_mask(folder / "2_13_smooth.png", np.zeros((4, 4), np.uint8))
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert not (root / "epoch_050").exists()
    assert not cache.is_current(root, 50, _key(tmp_path))


def test_prune_removes_checkpoints_that_are_gone(tmp_path):
    root = tmp_path / "pred"
    for epoch in (10, 20, 30):
        with cache.store(root, epoch, _key(tmp_path)):
            pass
    assert cache.prune(root, {10, 20}) == [30]
    assert sorted(p.name for p in root.iterdir()) == ["epoch_010", "epoch_020"]
