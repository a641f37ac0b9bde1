"""Stage tile: cut each split's scenes (never mixed) into sharded tile arrays -> data/tiles.

The manifest records what the tiles are (classes, input bands, ground sample distance): train
carries them into the model card.
"""

import pandas as pd

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.input_spec import read_input
from aerialseg.core.model_card import data_facts, facts_json
from aerialseg.core.names import MASKS, RESIZED, TILES
from aerialseg.core.scene_split import read_split
from aerialseg.core.stage import run_stage
from aerialseg.prepare.tile_writer import scene_tiles, write_manifest, write_split


def main() -> str:
    params = load_params()
    patch, stride = params.tile.patch_size, params.tile.stride
    frames = []
    with atomic_dir(TILES) as tmp:
        for split, scenes in read_split(RESIZED).items():
            tiles = scene_tiles(scenes, RESIZED, MASKS, patch, stride)
            frames.append(write_split(tmp, split, tiles, patch, params.tile.shard_size,
                                          class_names=params.classes.names))
        index = pd.concat(frames, ignore_index=True)
        write_manifest(tmp, index, patch, stride, class_names=params.classes.names,
                       data=facts_json(data_facts(params, read_input(RESIZED))))
    counts = index.groupby("split").size().to_dict()
    return "tiles " + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("train", "val", "test"))


if __name__ == "__main__":
    run_stage("tile", main, outputs=[TILES])
