"""ESRI world files (``.tfw``, ``.pgw``, ...): the six numbers that place an image without GDAL tags.

The ISPRS release ships its tiles with them; the pipeline keeps them beside every resized
scene so that any GIS (and ``aerialseg.core.geo.geoio``) places the scenes where they belong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from affine import Affine

from aerialseg.core.errors import DataError
from aerialseg.core.io import write_text


@dataclass(frozen=True)
class WorldFile:
    """An ESRI world file (.tfw): the affine map from pixel to map coordinates."""

    pixel_x: float
    rotation_y: float
    rotation_x: float
    pixel_y: float
    origin_x: float
    origin_y: float

    def scaled(self, scale: float) -> WorldFile:
        """The world file of the same image resized by ``scale`` (pixels grow by 1/scale).

        The origin refers to the centre of the top-left pixel, which moves by half the
        change in pixel size.
        """
        a, d, b, e = (v / scale for v in (self.pixel_x, self.rotation_y, self.rotation_x, self.pixel_y))
        shift_x = (a - self.pixel_x + b - self.rotation_x) / 2
        shift_y = (d - self.rotation_y + e - self.pixel_y) / 2
        return WorldFile(a, d, b, e, self.origin_x + shift_x, self.origin_y + shift_y)

    @classmethod
    def of_transform(cls, transform: Affine) -> WorldFile:
        """The world file of a GDAL transform (world files place the centre of the top-left pixel)."""
        centre = transform * (0.5, 0.5)
        return cls(transform.a, transform.d, transform.b, transform.e, centre[0], centre[1])

    def to_text(self) -> str:
        """The six-line text form."""
        values = (self.pixel_x, self.rotation_y, self.rotation_x, self.pixel_y, self.origin_x, self.origin_y)
        return "".join(f"{v!r}\n" for v in values)


def read_world_file(path: str | Path) -> WorldFile:
    """Parse a six-line world file; DataError naming the file if it is malformed."""
    try:
        values = [float(line) for line in Path(path).read_text().split()]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError):
        raise DataError(f"{path}: world file must hold six numbers") from None
    if len(values) != 6:
        raise DataError(f"{path}: world file must hold six numbers, found {len(values)}")
    return WorldFile(*values)


_WORLD_SUFFIXES = {".tif": ".tfw", ".tiff": ".tfw", ".png": ".pgw", ".jpg": ".jgw", ".jpeg": ".jgw"}


def world_file_for(image: str | Path) -> Path:
    """The world file GDAL/QGIS look for beside an image (.tfw, .pgw, .jgw, else .wld)."""
    image = Path(image)
    return image.with_suffix(_WORLD_SUFFIXES.get(image.suffix.lower(), ".wld"))


def write_world_file(path: str | Path, world: WorldFile) -> None:
    """Write a world file atomically."""
    write_text(path, world.to_text())
