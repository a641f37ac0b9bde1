"""Stage train: fit the U-Net on the train tiles, checkpoint every checkpoint_every epochs.

Killed at any point, the stage continues from the last completed epoch when run again
(data/train_state, data/models and metrics/train persist between runs).
"""

from pathlib import Path

from aerialseg.params import load_params
from aerialseg.stage import run_stage

TILES, MODELS, STATE, LIVE = Path("data/tiles"), Path("data/models"), Path("data/train_state"), Path("metrics/train")


def main() -> str:
    params = load_params()
    from aerialseg.tiling import TileStore
    from aerialseg.training import TrainConfig, train

    config = TrainConfig.from_params(params)
    history, resumed = train(config, TileStore(TILES), MODELS, LIVE, STATE)
    last = {k: round(v[-1], 4) for k, v in history.history.items() if k in ("loss", "val_mean_iou")}
    start = f"resumed after epoch {resumed}, " if resumed else ""
    return f"{start}{params.epochs} epochs, {len(config.checkpoint_epochs)} checkpoints in {MODELS}; last {last}"


if __name__ == "__main__":
    run_stage("train", main)
