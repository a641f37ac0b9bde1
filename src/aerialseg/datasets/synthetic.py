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

from aerialseg.palette import IGNORE_INDEX

IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE, CAR, CLUTTER = range(6)
GSD_M = 0.05
"""Ground sampling distance of the generated scenes, metres per pixel (Potsdam's)."""

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


def _m(metres: float) -> float:
    return metres / GSD_M


class _Canvas:
    """Label, height and colour layers drawn in a rotated street frame."""

    def __init__(self, size: int, angle_deg: float, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.label = np.full((size, size), LOW_VEGETATION, np.uint8)
        self.height = np.zeros((size, size), np.float32)
        self.rgb = np.zeros((size, size, 3), np.float32)
        theta = np.deg2rad(angle_deg)
        self.rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        self.centre = np.array([size / 2.0, size / 2.0])

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """Street-frame points (u along the street, v across; centre origin) -> pixel xy."""
        return (np.asarray(uv, np.float64) @ self.rot.T + self.centre).astype(np.float32)

    def rect(self, u: float, v: float, length: float, width: float, angle: float = 0.0):
        """Corners (4, 2) in pixels of a rectangle centred at (u, v) in the street frame."""
        a = np.deg2rad(angle)
        du = np.array([np.cos(a), np.sin(a)]) * length / 2
        dv = np.array([-np.sin(a), np.cos(a)]) * width / 2
        c = np.array([u, v])
        return self.to_image(np.stack([c - du - dv, c + du - dv, c + du + dv, c - du + dv]))

    def mask(self, *polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel indices (ys, xs) inside the union of polygons (pixel xy corners)."""
        corners = np.concatenate(polygons)
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, self.size)
        if x1 <= x0 or y1 <= y0:
            return np.zeros(0, np.intp), np.zeros(0, np.intp)
        local = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = [np.round((p - [x0, y0]) * 16).astype(np.int32) for p in polygons]
        cv2.fillPoly(local, pts, 1, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.nonzero(local)
        return ys + y0, xs + x0

    def paint(self, region: tuple[np.ndarray, np.ndarray], cls: int | None, colour: np.ndarray,
              height: float | None = None):
        """Colour (and label, height) the pixels of a region; colour is (3,) or (H, W, 3)."""
        if colour.ndim == 1:
            self.rgb[region] = colour
        else:
            self.rgb[region] = colour[region]
        if cls is not None:
            self.label[region] = cls
        if height is not None:
            self.height[region] = height


def _noise(rng: np.random.Generator, size: int | tuple[int, int], cell: float, amplitude: float,
           channels: int = 1) -> np.ndarray:
    """Smooth random field (h, w, channels) with features about ``cell`` px across, zero mean."""
    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    nh, nw = (max(2, int(np.ceil(n / max(cell, 1.0))) + 2) for n in (h, w))
    coarse = rng.standard_normal((nh, nw, channels), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return field.reshape(h, w, channels) * np.float32(amplitude)


def _grey(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    g = rng.uniform(low, high)
    tint = rng.uniform(-4, 4, 3)
    return np.array([g, g, g]) + tint


def _texture(rng, size, base, fine=6.0, coarse=10.0, cell=120.0) -> np.ndarray:
    """A surface colour with blotches ``cell`` px across and per-pixel grain, (h, w, 3)."""
    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    field = _noise(rng, (h, w), cell, coarse, 1)
    field += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(fine)
    return base.astype(np.float32)[None, None, :] + field


def _blob(rng, centre_xy, radius, points=18):
    """Irregular closed polygon around a centre: a tree crown or a bush outline."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False) + rng.uniform(0, 2 * np.pi)
    radii = radius * rng.uniform(0.75, 1.15, points)
    radii = (radii + np.roll(radii, 1) + np.roll(radii, -1)) / 3
    xs, ys = centre_xy[0] + radii * np.cos(angles), centre_xy[1] + radii * np.sin(angles)
    return np.stack([xs, ys], 1).astype(np.float32)


def generate_scene(seed: int, scene_id: str, size: int = 2048) -> Scene:
    """Draw one Potsdam-like scene; deterministic in ``(seed, scene_id, size)``."""
    rng = np.random.default_rng(scene_seed(seed, scene_id))
    canvas = _Canvas(size, rng.uniform(0, 180), rng)
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
    image = _light(canvas, rng, casters)
    return Scene(image=image, label=canvas.label.copy())


def _draw_lawn(canvas: _Canvas, rng) -> None:
    """Lawn and gardens everywhere first: greens to dry olive, patchy."""
    lawn_base = np.array([rng.uniform(70, 110), rng.uniform(105, 135), rng.uniform(55, 85)])
    canvas.rgb[:] = _texture(rng, canvas.size, lawn_base, fine=7, coarse=14, cell=220)


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


def _draw_streets(canvas: _Canvas, rng, half: float) -> _Streets:
    """Roads along u and one cross street along v, sidewalks either side, dashed centre lines."""
    size = canvas.size
    road_v = sorted(rng.uniform(-half * 0.6, half * 0.6, rng.integers(1, 3)))
    if len(road_v) == 2 and abs(road_v[1] - road_v[0]) < _m(30):
        road_v = road_v[:1]
    cross_u = rng.uniform(-half * 0.5, half * 0.5)
    asphalt = _grey(rng, 85, 125)
    paving = _grey(rng, 120, 165) + np.array([6, 3, 0])
    road_tex = _texture(rng, size, asphalt, fine=9, coarse=7, cell=60)
    pave_tex = _texture(rng, size, paving, fine=8, coarse=8, cell=90)
    road_width = _m(rng.uniform(6.5, 9.0))
    walk_width = _m(rng.uniform(1.8, 2.8))
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
        step = _m(6)
        dashes = []
        for k in range(-int(long / step / 2), int(long / step / 2)):
            du = k * step
            pu, pv = (cu + du, cv) if orientation == 0.0 else (cu, cv + du)
            dashes.append(canvas.rect(pu, pv, _m(3), _m(0.15), orientation))
        canvas.paint(canvas.mask(*dashes), IMPERVIOUS, np.array([210.0, 210, 205]))
    return _Streets(centres, road_width, walk_width, long, road_tex, pave_tex)


def _draw_parking_lots(canvas: _Canvas, rng, half: float, streets: _Streets, occupied: np.ndarray,
                       casters: list) -> None:
    """Parking lots and driveways (impervious) off the streets, with rows of parked cars."""
    for _ in range(rng.integers(1, 4)):
        u, v = rng.uniform(-half * 0.6, half * 0.6, 2)
        if streets.near(u, v, _m(4)):
            continue
        lot = canvas.rect(u, v, _m(rng.uniform(15, 30)), _m(rng.uniform(12, 20)), 0.0)
        region = canvas.mask(lot)
        canvas.paint(region, IMPERVIOUS, streets.road_texture if rng.random() < 0.6 else streets.paving_texture, 0.0)
        occupied[region] = True
        lot_len = np.linalg.norm(lot[1] - lot[0])
        n_cars = int(lot_len / _m(2.6))
        for i in range(n_cars):
            if rng.random() < 0.35:
                continue
            cu = u - lot_len / 2 + _m(1.5) + i * _m(2.6)
            _car(canvas, rng, cu, v + rng.choice([-1, 1]) * _m(2.5), 90.0 + rng.normal(0, 3), casters)


def _draw_buildings(canvas: _Canvas, rng, half: float, streets: _Streets, occupied: np.ndarray,
                    casters: list) -> None:
    """Ten to sixteen buildings beside the streets, apart from each other and from the lots."""
    roof_kinds = rng.permutation(["tile", "flat", "dark", "tile", "flat"])
    n_buildings = rng.integers(10, 17)
    placed = 0
    for _attempt in range(200):
        if placed >= n_buildings:
            break
        length, depth = _m(rng.uniform(11, 26)), _m(rng.uniform(9, 16))
        u, v = rng.uniform(-half * 0.7, half * 0.7, 2)
        if streets.near(u, v, max(length, depth) / 2 + _m(1)):
            continue
        angle = rng.normal(0, 2)
        footprint = canvas.rect(u, v, length, depth, angle)
        region = canvas.mask(footprint)
        grown = canvas.mask(canvas.rect(u, v, length + _m(3), depth + _m(3), angle))
        if not region[0].size or occupied[grown].any():
            continue
        occupied[grown] = True
        height = _m(rng.uniform(6, 14))
        _roof(canvas, rng, footprint, region, str(roof_kinds[placed % len(roof_kinds)]), height)
        casters.append((footprint, height))
        placed += 1


def _draw_kerb_cars(canvas: _Canvas, rng, half: float, streets: _Streets, casters: list) -> None:
    """Cars parked along both kerbs of every street, at random gaps."""
    for cu, cv, orientation in streets.centres:
        for side in (-1, 1):
            along = -streets.length / 2
            while along < streets.length / 2:
                along += _m(rng.uniform(5.5, 14))
                if rng.random() < 0.45:
                    continue
                off = side * (streets.road_width / 2 - _m(1.3))
                pu, pv = (cu + along, cv + off) if orientation == 0.0 else (cu + off, cv + along)
                if abs(pu) > half or abs(pv) > half:
                    continue
                _car(canvas, rng, pu, pv, orientation + rng.normal(0, 2), casters)


def _draw_clutter(canvas: _Canvas, rng, half: float, streets: _Streets, casters: list) -> None:
    """Clutter: containers, pallets, tarps, bins in gardens and on lots, off the roads."""
    for _ in range(rng.integers(24, 36)):
        u, v = rng.uniform(-half * 0.7, half * 0.7, 2)
        if streets.near(u, v, -streets.walk_width):
            continue
        _clutter(canvas, rng, u, v, casters)


def _draw_trees(canvas: _Canvas, rng, half: float, casters: list) -> None:
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
        radius = _m(rng.uniform(2.5, 6.0))
        crown = _blob(rng, centre, radius)
        _tree(canvas, rng, crown, radius, leafy)
        casters.append((crown, _m(rng.uniform(8, 16))))


def _roof(canvas: _Canvas, rng, footprint, region, kind: str, height: float) -> None:
    if kind == "tile":
        base = np.array([rng.uniform(170, 210), rng.uniform(85, 115), rng.uniform(55, 80)])
    elif kind == "dark":
        base = _grey(rng, 60, 85)
    else:  # flat roofs in the same greys as asphalt
        base = _grey(rng, 85, 130)
    ys, xs = region
    y0, x0 = ys.min(), xs.min()
    tex = _texture(rng, (ys.max() + 1 - y0, xs.max() + 1 - x0), base, fine=6, coarse=6, cell=80)
    # ridge: the half of the roof facing away from the sun is darker
    edge = footprint[1] - footprint[0]
    normal = np.array([-edge[1], edge[0]]) / (np.linalg.norm(edge) + 1e-6)
    mid = footprint.mean(0)
    side = ((xs - mid[0]) * normal[0] + (ys - mid[1]) * normal[1]) > 0
    shade = np.ones(len(ys), np.float32)
    across = xs * normal[0] + ys * normal[1]
    along = xs * normal[1] - ys * normal[0]
    if kind != "flat":
        shade[side] = 0.78
        # tile rows about 0.6 m apart, parallel to the ridge
        shade *= 1.0 + 0.08 * np.sin(2 * np.pi * across / 12.0)
    else:
        # membrane seams every ~1.2 m and gravel blotches: texture that asphalt lacks
        seams = (np.mod(along, 24.0) < 3.0)
        shade *= np.where(seams, 0.85, 1.0)
        shade *= 1.0 + 0.08 * _noise(rng, tex.shape[:2], 5, 1.0, 1)[ys - y0, xs - x0, 0]
    canvas.label[ys, xs] = BUILDING
    canvas.height[ys, xs] = height
    canvas.rgb[ys, xs] = tex[ys - y0, xs - x0] * shade[:, None]
    # parapet: a lighter rim on flat roofs, a dark gutter on pitched ones
    local = np.zeros(tex.shape[:2], np.uint8)
    local[ys - y0, xs - x0] = 1
    inner = cv2.erode(local, np.ones((9, 9), np.uint8), borderValue=0)
    rim = local.astype(bool) & ~inner.astype(bool)
    ry, rx = np.nonzero(rim)
    canvas.rgb[ry + y0, rx + x0] *= 1.25 if kind == "flat" else 0.7
    # skylights, chimneys, HVAC boxes
    for _ in range(rng.integers(2, 7)):
        k = rng.integers(len(ys))
        w, h = rng.uniform(12, 36, 2)
        x0, y0 = xs[k], ys[k]
        box = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float32)
        by, bx = canvas.mask(box)
        on_roof = canvas.label[by, bx] == BUILDING
        m = by[on_roof], bx[on_roof]
        colour = np.array([200.0, 200, 200]) if rng.random() < 0.5 else np.array([40.0, 45, 55])
        canvas.rgb[m] = colour + rng.normal(0, 4, 3)


def _car(canvas: _Canvas, rng, u: float, v: float, angle: float, casters) -> None:
    length, width = _m(rng.uniform(4.1, 4.9)), _m(rng.uniform(1.7, 1.95))
    body = canvas.rect(u, v, length, width, angle)
    region = canvas.mask(body)
    if not region[0].size:
        return
    colours = [(160, 30, 30), (200, 200, 200), (235, 235, 230), (110, 110, 115), (25, 25, 30),
               (40, 60, 120), (60, 80, 60), (150, 150, 155), (120, 20, 25), (90, 90, 95)]
    colour = np.array(colours[rng.integers(len(colours))], np.float32) + rng.normal(0, 6, 3)
    canvas.paint(region, CAR, colour, _m(1.5))
    # windscreen and rear window: dark glass across the body
    for frac, span in ((0.22, 0.16), (-0.28, 0.12)):
        a = np.deg2rad(angle)
        du = np.array([np.cos(a), np.sin(a)]) * frac * length
        glass = canvas.rect(u + du[0], v + du[1], span * length, width * 0.82, angle)
        gy, gx = canvas.mask(glass)
        on_car = canvas.label[gy, gx] == CAR
        canvas.rgb[gy[on_car], gx[on_car]] = np.array([35, 40, 48]) + rng.normal(0, 3, 3)
    casters.append((body, _m(1.5)))


def _clutter(canvas: _Canvas, rng, u: float, v: float, casters) -> None:
    length, width = _m(rng.uniform(3.0, 9.0)), _m(rng.uniform(2.0, 4.5))
    poly = canvas.rect(u, v, length, width, rng.uniform(0, 180))
    region = canvas.mask(poly)
    if not region[0].size or (canvas.label[region] == BUILDING).any():
        return
    # half the time colours shared with roofs, roads, cars and lawns, else paint or tarp colours;
    # what always tells clutter apart is its coarse pattern, dark frame, size and setting
    shared = np.array([[150, 150, 150], [215, 215, 210], [140, 110, 80], [150, 85, 55], [60, 80, 60],
                       [110, 105, 95]], np.float32)
    vivid = np.array([[200, 60, 40], [40, 90, 170], [60, 140, 70], [210, 170, 40], [150, 60, 140]], np.float32)
    pool = shared if rng.random() < 0.5 else vivid
    colour = pool[rng.integers(len(pool))] + rng.normal(0, 8, 3)
    kind = rng.integers(3)
    if kind < 2:  # containers with ribs, stacks of material in blocks: patterns ~1.6 m across
        ys, xs = region
        edge = poly[1] - poly[0]
        d = edge / (np.linalg.norm(edge) + 1e-6)
        along = (xs - poly[0][0]) * d[0] + (ys - poly[0][1]) * d[1]
        across = (xs - poly[0][0]) * -d[1] + (ys - poly[0][1]) * d[0]
        if kind == 0:
            shade = np.where(np.mod(along, 32.0) < 16.0, 1.0, 0.68)
        else:
            shade = np.where((np.mod(along, 64.0) < 32.0) ^ (np.mod(across, 64.0) < 32.0), 1.0, 0.62)
        canvas.label[ys, xs] = CLUTTER
        canvas.rgb[ys, xs] = colour * shade[:, None].astype(np.float32)
        local = np.zeros((ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()), np.uint8)
        local[ys - ys.min(), xs - xs.min()] = 1
        rim = local.astype(bool) & ~cv2.erode(local, np.ones((13, 13), np.uint8), borderValue=0).astype(bool)
        ry, rx = np.nonzero(rim)
        canvas.rgb[ry + ys.min(), rx + xs.min()] *= 0.5
    else:  # tarp or heap: an irregular blob with broad folds
        centre = poly.mean(0)
        blob = canvas.mask(_blob(rng, centre, max(length, width) / 2))
        ys, xs = blob
        if not len(ys):
            return
        folds = _noise(rng, (ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()), 24, 30, 1)
        canvas.label[ys, xs] = CLUTTER
        canvas.rgb[ys, xs] = colour[None, :] + folds[ys - ys.min(), xs - xs.min()]
        region = blob
    canvas.height[region] = _m(1.0)
    casters.append((poly, _m(1.0)))


def _tree(canvas: _Canvas, rng, crown, radius: float, leafy: bool) -> None:
    region = canvas.mask(crown)
    if not region[0].size:
        return
    if leafy:
        base = np.array([rng.uniform(55, 95), rng.uniform(85, 125), rng.uniform(40, 70)])
    else:  # bare winter crowns: grey-brown twigs over the ground below
        base = np.array([rng.uniform(95, 125), rng.uniform(90, 115), rng.uniform(75, 95)])
    ys, xs = region
    # leaf clusters: strong mid-frequency texture that lawns do not have
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = y1 - y0, x1 - x0
    clusters = _noise(rng, (h, w), 9, 28, 1)[..., 0] + _noise(rng, (h, w), 3, 10, 1)[..., 0]
    centre = crown.mean(0)
    r = np.hypot(xs - centre[0], ys - centre[1]) / radius
    dome = 1.08 - 0.3 * np.clip(r, 0, 1.2) ** 2
    values = (base[None, :] + clusters[ys - y0, xs - x0][:, None]) * dome[:, None]
    if not leafy:
        values = 0.5 * values + 0.5 * canvas.rgb[ys, xs] * 0.9
    canvas.label[ys, xs] = TREE
    canvas.rgb[ys, xs] = values
    canvas.height[ys, xs] = np.maximum(canvas.height[ys, xs], _m(8))


def _light(canvas: _Canvas, rng, casters) -> np.ndarray:
    """Cast shadows away from one sun, then add sensor noise; returns uint8 RGB."""
    size = canvas.size
    sun = rng.uniform(0, 2 * np.pi)
    elevation_factor = rng.uniform(0.45, 0.8)  # shadow length per unit height
    direction = np.array([np.cos(sun), np.sin(sun)])
    shadow_height = np.zeros((size, size), np.float32)
    order = sorted(casters, key=lambda c: c[1])
    for footprint, height in order:
        offset = direction * height * elevation_factor
        hull = cv2.convexHull(np.concatenate([footprint, footprint + offset]).astype(np.float32))
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, [np.round(hull.reshape(-1, 2) * 16).astype(np.int32)], 1, shift=4)
        np.maximum(shadow_height, m * np.float32(height), out=shadow_height)
    shadow = shadow_height > canvas.height + 1.0
    shadow = cv2.GaussianBlur(shadow.astype(np.float32), (5, 5), 0)
    darkness = rng.uniform(0.42, 0.55)
    factor = 1.0 - (1.0 - darkness) * shadow
    tint = np.array([0.92, 0.97, 1.1], np.float32)  # skylight makes shadows bluish
    rgb = canvas.rgb * (factor[..., None] * (1 - shadow[..., None] * (1 - tint)))
    # a little blur (optics) and sensor noise
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.7)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(3.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


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


def write_scene_files(files, scene: Scene, tile_index: int) -> None:
    """Write a scene under its official ISPRS names: RGB + world file, full and no-boundary labels.

    The world file places scenes side by side on a made-up UTM grid (5 cm pixels), so
    the georeferencing path is exercised exactly as with the real data.
    """
    from aerialseg.io import WorldFile, write_rgb, write_world_file
    from aerialseg.palette import index_to_rgb

    size = scene.label.shape[0]
    origin_x = 368000.0 + tile_index * size * GSD_M
    origin_y = 5806000.0
    write_rgb(files.image, scene.image)
    write_world_file(files.world, WorldFile(GSD_M, 0.0, 0.0, -GSD_M, origin_x + GSD_M / 2, origin_y - GSD_M / 2))
    write_rgb(files.label, index_to_rgb(scene.label))
    write_rgb(files.label_noboundary, index_to_rgb(erode_boundaries(scene.label)))


def _write_one(job: tuple[str, int, str, int, int]) -> str:
    folder, seed, scene_id, size, index = job
    from aerialseg.names import SceneFiles

    write_scene_files(SceneFiles(Path(folder), scene_id), generate_scene(seed, scene_id, size), index)
    return scene_id


def write_scenes(folder: Path, scene_ids: list[str], seed: int, size: int, jobs: int | None = None) -> list[str]:
    """Generate and write scenes in worker processes (``jobs`` None: one per core); return their ids.

    Each scene depends only on (seed, id, size), so the result is the same for any
    number of processes.
    """
    from aerialseg.parallel import map_scenes

    work = [(str(folder), seed, scene_id, size, i) for i, scene_id in enumerate(scene_ids)]
    written, _ = map_scenes(_write_one, work, jobs, "synthetic scenes")
    return written
