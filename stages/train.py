"""Stage train: fit the U-Net on the train tiles, checkpoint every checkpoint_every epochs.

Killed at any point, the stage continues from the last completed epoch when run again
(data/train_state, data/models and metrics/train persist between runs). A saved state of
the same run that already covers ``epochs`` is reused without training. The model card
beside the checkpoints records the ground sample distance and classes they predict with.
"""

import pandas as pd

from aerialseg.core.io import read_json, write_json
from aerialseg.core.model_card import card_json, model_card
from aerialseg.core.names import HISTORY_FILE, MODEL_CARD, MODELS, RUN_FILE, TILES, TRAIN_LIVE, TRAIN_STATE
from aerialseg.core.params import load_params
from aerialseg.core.stage import run_stage
from aerialseg.train.compiling import TrainConfig
from aerialseg.train.loop import train
from aerialseg.train.tile_reader import TileStore


def main() -> str:
    params = load_params()
    config = TrainConfig.from_params(params)
    outcome = train(config, TileStore(TILES), MODELS, TRAIN_LIVE, TRAIN_STATE)
    run = read_json(TRAIN_STATE / RUN_FILE) if (TRAIN_STATE / RUN_FILE).is_file() else None
    write_json(MODELS / MODEL_CARD, card_json(model_card(params, run)))  # what predicting needs beside the checkpoints
    last = pd.read_csv(MODELS / HISTORY_FILE).iloc[-1]
    values = ", ".join(f"{name} {last[name]:.4f}" for name in ("loss", "val_mean_iou") if name in last)
    return (f"reused {outcome.reused} epochs, trained {outcome.trained}; {params.epochs} epochs, "
            f"{len(config.checkpoint_epochs)} checkpoints in {MODELS}; last {values}")


if __name__ == "__main__":
    run_stage("train", main, outputs=[MODELS, TRAIN_STATE, TRAIN_LIVE])
