"""Synthetic Potsdam-like scenes: a deterministic stand-in for the registration-only dataset.

A scene is drawn at Potsdam's ground sampling distance (5 cm/px) in a street-aligned frame
rotated by a random angle: roads with sidewalks and lane marks, parking lots, buildings
with tiled or flat roofs, gardens, tree crowns, parked cars and clutter, lit by one sun
that casts shadows over everything. Colour alone does not decide the class on purpose:
flat roofs share the asphalt's greys, tree crowns share the lawn's greens, cars come in
roof and road colours, and shadows darken all classes alike, so a per-pixel colour
classifier stays poor while a network that sees shape and texture can do well.

Everything here is pure: ``(seed, scene id, size)`` in, arrays out.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aerialseg.core.classes import IGNORE_INDEX, ClassTable
from aerialseg.core.errors import ParamsError
from aerialseg.prepare.sources.synthetic_drawing import (
    BUILDING,
    GSD_M,
    IMPERVIOUS,
    Canvas,
    draw_car,
    draw_clutter_item,
    draw_roof,
    draw_tree,
    grey_colour,
    light_scene,
    metres_px,
    random_blob,
    textured,
)

BOUNDARY_RADIUS_PX = 3
"""Erosion radius of the no-boundary labels, in pixels at 5 cm (ISPRS's convention)."""


@dataclass(frozen=True)
class Scene:
    """One generated scene: RGB image and class-index label, both (size, size)."""

    image: np.ndarray
    label: np.ndarray


def scene_seed(seed: int, scene_id: str) -> int:
    """A stable per-scene seed: the same (seed, id) always gives the same scene."""
    return (seed * 1_000_003 + zlib.crc32(scene_id.encode())) % 2**32


def generate_scene(seed: int, scene_id: str, size: int = 2048) -> Scene:
    """Draw one Potsdam-like scene; deterministic in ``(seed, scene_id, size)``."""
    rng = np.random.default_rng(scene_seed(seed, scene_id))
    canvas = Canvas(size, rng.uniform(0, 180), rng)
    half = size * 0.75  # the street frame must cover the rotated image's corners
    _draw_lawn(canvas, rng)
    streets = _draw_streets(canvas, rng, half)
    occupied = np.zeros((size, size), bool)
    casters: list[tuple[np.ndarray, float]] = []  # (footprint polygon, height in px)
    _draw_parking_lots(canvas, rng, half, streets, occupied, casters)
    _draw_buildings(canvas, rng, half, streets, occupied, casters)
    _draw_kerb_cars(canvas, rng, half, streets, casters)
    _draw_clutter(canvas, rng, half, streets, casters)
    _draw_trees(canvas, rng, half, casters)  # last: crowns overhang lawns, sidewalks, cars and roof edges
    image = light_scene(canvas, rng, casters)
    return Scene(image=image, label=canvas.label.copy())


def _draw_lawn(canvas: Canvas, rng) -> None:
    """Lawn and gardens everywhere first: greens to dry olive, patchy."""
    lawn_base = np.array([rng.uniform(70, 110), rng.uniform(105, 135), rng.uniform(55, 85)])
    canvas.rgb[:] = textured(rng, canvas.size, lawn_base, fine=7, coarse=14, cell=220)


@dataclass(frozen=True)
class _Streets:
    """The drawn streets: centre lines (u, v, orientation) and the widths and textures used."""

    centres: list[tuple[float, float, float]]
    road_width: float
    walk_width: float
    length: float
    road_texture: np.ndarray
    paving_texture: np.ndarray

    def near(self, u: float, v: float, margin: float) -> bool:
        """Whether a street-frame point lies within ``margin`` of a road or its sidewalks."""
        for cu, cv, orientation in self.centres:
            dist = abs(v - cv) if orientation == 0.0 else abs(u - cu)
            if dist < self.road_width / 2 + self.walk_width + margin:
                return True
        return False


def _draw_streets(canvas: Canvas, rng, half: float) -> _Streets:
    """Roads along u and one cross street along v, sidewalks either side, dashed centre lines."""
    size = canvas.size
    road_v = sorted(rng.uniform(-half * 0.6, half * 0.6, rng.integers(1, 3)))
    if len(road_v) == 2 and abs(road_v[1] - road_v[0]) < metres_px(30):
        road_v = road_v[:1]
    cross_u = rng.uniform(-half * 0.5, half * 0.5)
    asphalt = grey_colour(rng, 85, 125)
    paving = grey_colour(rng, 120, 165) + np.array([6, 3, 0])
    road_tex = textured(rng, size, asphalt, fine=9, coarse=7, cell=60)
    pave_tex = textured(rng, size, paving, fine=8, coarse=8, cell=90)
    road_width = metres_px(rng.uniform(6.5, 9.0))
    walk_width = metres_px(rng.uniform(1.8, 2.8))
    long = 4 * half
    centres = []
    for orientation, v in [(0.0, v) for v in road_v] + [(90.0, cross_u)]:
        cu, cv = (0.0, v) if orientation == 0.0 else (v, 0.0)
        walk = canvas.rect(cu, cv, long, road_width + 2 * walk_width, orientation)
        canvas.paint(canvas.mask(walk), IMPERVIOUS, pave_tex, 0.0)
        centres.append((cu, cv, orientation))
    for cu, cv, orientation in centres:
        canvas.paint(canvas.mask(canvas.rect(cu, cv, long, road_width, orientation)), IMPERVIOUS, road_tex, 0.0)
        # dashed centre line: white paint on asphalt (white like cars and flat-roof gear)
        step = metres_px(6)
        dashes = []
        for k in range(-int(long / step / 2), int(long / step / 2)):
            du = k * step
            pu, pv = (cu + du, cv) if orientation == 0.0 else (cu, cv + du)
            dashes.append(canvas.rect(pu, pv, metres_px(3), metres_px(0.15), orientation))
        canvas.paint(canvas.mask(*dashes), IMPERVIOUS, np.array([210.0, 210, 205]))
    return _Streets(centres, road_width, walk_width, long, road_tex, pave_tex)


def _draw_parking_lots(canvas: Canvas, rng, half: float, streets: _Streets, occupied: np.ndarray,
                       casters: list) -> None:
    """Parking lots and driveways (impervious) off the streets, with rows of parked cars."""
    for _ in range(rng.integers(1, 4)):
        u, v = rng.uniform(-half * 0.6, half * 0.6, 2)
        if streets.near(u, v, metres_px(4)):
            continue
        lot = canvas.rect(u, v, metres_px(rng.uniform(15, 30)), metres_px(rng.uniform(12, 20)), 0.0)
        region = canvas.mask(lot)
        canvas.paint(region, IMPERVIOUS, streets.road_texture if rng.random() < 0.6 else streets.paving_texture, 0.0)
        occupied[region] = True
        lot_len = np.linalg.norm(lot[1] - lot[0])
        n_cars = int(lot_len / metres_px(2.6))
        for i in range(n_cars):
            if rng.random() < 0.35:
                continue
            cu = u - lot_len / 2 + metres_px(1.5) + i * metres_px(2.6)
            draw_car(canvas, rng, cu, v + rng.choice([-1, 1]) * metres_px(2.5), 90.0 + rng.normal(0, 3), casters)


def _draw_buildings(canvas: Canvas, rng, half: float, streets: _Streets, occupied: np.ndarray,
                    casters: list) -> None:
    """Ten to sixteen buildings beside the streets, apart from each other and from the lots."""
    roof_kinds = rng.permutation(["tile", "flat", "dark", "tile", "flat"])
    n_buildings = rng.integers(10, 17)
    placed = 0
    for _attempt in range(200):
        if placed >= n_buildings:
            break
        length, depth = metres_px(rng.uniform(11, 26)), metres_px(rng.uniform(9, 16))
        u, v = rng.uniform(-half * 0.7, half * 0.7, 2)
        if streets.near(u, v, max(length, depth) / 2 + metres_px(1)):
            continue
        angle = rng.normal(0, 2)
        footprint = canvas.rect(u, v, length, depth, angle)
        region = canvas.mask(footprint)
        grown = canvas.mask(canvas.rect(u, v, length + metres_px(3), depth + metres_px(3), angle))
        if not region[0].size or occupied[grown].any():
            continue
        occupied[grown] = True
        height = metres_px(rng.uniform(6, 14))
        draw_roof(canvas, rng, footprint, region, str(roof_kinds[placed % len(roof_kinds)]), height)
        casters.append((footprint, height))
        placed += 1


def _draw_kerb_cars(canvas: Canvas, rng, half: float, streets: _Streets, casters: list) -> None:
    """Cars parked along both kerbs of every street, at random gaps."""
    for cu, cv, orientation in streets.centres:
        for side in (-1, 1):
            along = -streets.length / 2
            while along < streets.length / 2:
                along += metres_px(rng.uniform(5.5, 14))
                if rng.random() < 0.45:
                    continue
                off = side * (streets.road_width / 2 - metres_px(1.3))
                pu, pv = (cu + along, cv + off) if orientation == 0.0 else (cu + off, cv + along)
                if abs(pu) > half or abs(pv) > half:
                    continue
                draw_car(canvas, rng, pu, pv, orientation + rng.normal(0, 2), casters)


def _draw_clutter(canvas: Canvas, rng, half: float, streets: _Streets, casters: list) -> None:
    """Clutter: containers, pallets, tarps, bins in gardens and on lots, off the roads."""
    for _ in range(rng.integers(24, 36)):
        u, v = rng.uniform(-half * 0.7, half * 0.7, 2)
        if streets.near(u, v, -streets.walk_width):
            continue
        draw_clutter_item(canvas, rng, u, v, casters)


def _draw_trees(canvas: Canvas, rng, half: float, casters: list) -> None:
    """Tree crowns anywhere but on roofs; most scenes leafy, some bare."""
    size = canvas.size
    leafy = rng.random() < 0.8
    for _ in range(rng.integers(20, 36)):
        u, v = rng.uniform(-half * 0.7, half * 0.7, 2)
        centre = canvas.to_image(np.array([[u, v]]))[0]
        if not (0 <= centre[0] < size and 0 <= centre[1] < size):
            continue
        if canvas.label[int(centre[1]), int(centre[0])] in (BUILDING,):
            continue
        radius = metres_px(rng.uniform(2.5, 6.0))
        crown = random_blob(rng, centre, radius)
        draw_tree(canvas, rng, crown, radius, leafy)
        casters.append((crown, metres_px(rng.uniform(8, 16))))


def erode_boundaries(label: np.ndarray, radius: int = BOUNDARY_RADIUS_PX) -> np.ndarray:
    """The no-boundary label: pixels within ``radius`` of another class become ignore.

    This is how ISPRS made ``*_label_noBoundary.tif`` (boundaries eroded with a disc).
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    high = cv2.dilate(label, kernel)
    low = cv2.erode(label, kernel)
    out = label.copy()
    out[high != low] = IGNORE_INDEX
    return out


ROLES = ("impervious", "building", "low vegetation", "tree", "car", "clutter")  # what the drawing's indices draw


def check_table(classes: ClassTable) -> None:
    """The synthetic scenes draw six roles (impervious, building, low vegetation, tree, car, clutter,
    in that order) in the table's colours, and their eroded boundaries in its first ignore colour."""
    if len(classes) != len(ROLES) or not classes.ignore_colours:
        raise ParamsError(f"classes: the synthetic source draws {len(ROLES)} classes ({', '.join(ROLES)}) and "
                          f"boundaries in an ignore colour; the table has {len(classes)} classes and "
                          f"{len(classes.ignore_colours)} ignore colours (use data.source potsdam for others)")


def write_scene_files(files, scene: Scene, tile_index: int, classes: ClassTable) -> None:
    """Write a scene under its scene id (``SceneFiles``): RGB + world file, full and no-boundary labels
    in the class table's colours (``check_table``).

    The world file places scenes side by side on a made-up UTM grid (5 cm pixels), so
    the georeferencing path is exercised exactly as with the real data.
    """
    from aerialseg.core.geo.worldfile import WorldFile, write_world_file
    from aerialseg.core.io import write_rgb
    from aerialseg.core.palette import index_to_rgb

    size = scene.label.shape[0]
    origin_x = 368000.0 + tile_index * size * GSD_M
    origin_y = 5806000.0
    write_rgb(files.image, scene.image)
    write_world_file(files.world, WorldFile(GSD_M, 0.0, 0.0, -GSD_M, origin_x + GSD_M / 2, origin_y - GSD_M / 2))
    labels = label_colours(classes)
    write_rgb(files.label, index_to_rgb(scene.label, labels))
    write_rgb(files.label_noboundary, index_to_rgb(erode_boundaries(scene.label), labels, classes.ignore_colours[0]))


def label_colours(classes: ClassTable) -> tuple[tuple[int, int, int], ...]:
    """The colour each class has in the labels: its first label colour."""
    return tuple(colours[0] for colours in classes.label_colours)


def _write_one(job: tuple[str, int, str, int, int, ClassTable]) -> str:
    folder, seed, scene_id, size, index, classes = job
    from aerialseg.core.names import SceneFiles

    write_scene_files(SceneFiles(Path(folder), scene_id), generate_scene(seed, scene_id, size), index, classes)
    return scene_id


def write_scenes(folder: Path, scene_ids: list[str], seed: int, size: int, classes: ClassTable,
                 jobs: int | None = None) -> list[str]:
    """Generate and write scenes in the table's colours in worker processes (``jobs`` None: one per
    core); return their ids.

    Each scene depends only on (seed, id, size), so the result is the same for any
    number of processes.
    """
    from aerialseg.prepare.parallel import map_scenes

    check_table(classes)
    work = [(str(folder), seed, scene_id, size, i, classes) for i, scene_id in enumerate(scene_ids)]
    written, _ = map_scenes(_write_one, work, jobs, "synthetic scenes")
    return written
