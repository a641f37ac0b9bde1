"""File names of the official ISPRS Potsdam release, shared by every data source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SceneFiles:
    """The files of one Potsdam tile in a folder, under their official names."""

    folder: Path
    tile_id: str

    @property
    def image(self) -> Path:
        return self.folder / f"top_potsdam_{self.tile_id}_RGB.tif"

    @property
    def world(self) -> Path:
        return self.folder / f"top_potsdam_{self.tile_id}_RGB.tfw"

    @property
    def label(self) -> Path:
        return self.folder / f"top_potsdam_{self.tile_id}_label.tif"

    @property
    def label_noboundary(self) -> Path:
        return self.folder / f"top_potsdam_{self.tile_id}_label_noBoundary.tif"

    def required(self) -> list[Path]:
        """The files every stage after download needs (the world file is optional)."""
        return [self.image, self.label, self.label_noboundary]


@dataclass(frozen=True)
class MaskFiles:
    """Encoded class-index masks of one scene (uint8 PNG, 255 = ignore)."""

    folder: Path
    tile_id: str

    @property
    def full(self) -> Path:
        return self.folder / f"{self.tile_id}_full.png"

    @property
    def noboundary(self) -> Path:
        return self.folder / f"{self.tile_id}_noboundary.png"
