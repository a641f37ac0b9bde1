"""Stage train: fit the U-Net on the train tiles, checkpoint every checkpoint_every epochs.

Killed at any point, the stage continues from the last completed epoch when run again
(data/train_state, data/models and metrics/train persist between runs). A saved state of
the same run that already covers ``epochs`` is reused without training. The model card
beside the checkpoints records the classes, input and ground sample distance of the tiles (from
their manifest) and the prediction settings; tiles labelled with another class table than the
params' are refused before any training.
"""

import pandas as pd

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.io import read_json, write_json
from aerialseg.core.model_card import card_json, model_card
from aerialseg.core.names import (
    HISTORY_FILE,
    MODEL_CARD,
    MODELS,
    RUN_FILE,
    TILE_MANIFEST_FILE,
    TILES,
    TRAIN_LIVE,
    TRAIN_STATE,
)
from aerialseg.core.stage import run_stage
from aerialseg.train.compiling import TrainConfig
from aerialseg.train.loop import train
from aerialseg.train.tile_reader import TileStore


def main() -> str:
    params = load_params()
    store = TileStore(TILES)
    facts = store.facts  # what the tiles are: the card says so, not what params say now
    config = TrainConfig.from_params(params, facts.input)
    if facts.classes.names != config.class_names:
        raise DataError(f"{TILES / TILE_MANIFEST_FILE}: the tiles are labelled with classes "
                        f"{', '.join(facts.classes.names)}, but params.yaml's table has "
                        f"{', '.join(config.class_names)}; run the tile stage again")
    outcome = train(config, store, MODELS, TRAIN_LIVE, TRAIN_STATE)
    run = read_json(TRAIN_STATE / RUN_FILE) if (TRAIN_STATE / RUN_FILE).is_file() else None
    write_json(MODELS / MODEL_CARD, card_json(model_card(params, facts, run)))  # what predicting needs
    last = pd.read_csv(MODELS / HISTORY_FILE).iloc[-1]
    values = ", ".join(f"{name} {last[name]:.4f}" for name in ("loss", "val_mean_iou") if name in last)
    return (f"reused {outcome.reused} epochs, trained {outcome.trained}; {params.epochs} epochs, "
            f"{len(config.checkpoint_epochs)} checkpoints in {MODELS}; last {values}")


if __name__ == "__main__":
    run_stage("train", main, outputs=[MODELS, TRAIN_STATE, TRAIN_LIVE])
