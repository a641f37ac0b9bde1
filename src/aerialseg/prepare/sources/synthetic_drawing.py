"""The synthetic scenes' drawing kit: a canvas in a rotated street frame, textures, and the objects
(roofs, cars, clutter, tree crowns) and sunlight that ``synthetic`` lays out into a scene.

Pure: every function draws with the generator it is given, so a scene stays a function of
its seed.
"""

from __future__ import annotations

import cv2
import numpy as np

IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE, CAR, CLUTTER = range(6)
GSD_M = 0.05
"""Ground sampling distance of the generated scenes, metres per pixel (Potsdam's)."""


def metres_px(metres: float) -> float:
    return metres / GSD_M


class Canvas:
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


def _side_lengths(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a square side or a shape."""
    return (int(size[0]), int(size[1])) if isinstance(size, tuple) else (int(size), int(size))


def value_noise(rng: np.random.Generator, size: int | tuple[int, int], cell: float, amplitude: float,
           channels: int = 1) -> np.ndarray:
    """Smooth random field (h, w, channels) with features about ``cell`` px across, zero mean."""
    h, w = _side_lengths(size)
    nh, nw = (max(2, int(np.ceil(n / max(cell, 1.0))) + 2) for n in (h, w))
    coarse = rng.standard_normal((nh, nw, channels), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return field.reshape(h, w, channels) * np.float32(amplitude)


def grey_colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    g = rng.uniform(low, high)
    tint = rng.uniform(-4, 4, 3)
    return np.array([g, g, g]) + tint


def textured(rng: np.random.Generator, size: int | tuple[int, int], base: np.ndarray, fine: float = 6.0,
             coarse: float = 10.0, cell: float = 120.0) -> np.ndarray:
    """A surface colour with blotches ``cell`` px across and per-pixel grain, (h, w, 3)."""
    h, w = _side_lengths(size)
    field = value_noise(rng, (h, w), cell, coarse, 1)
    field += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(fine)
    return base.astype(np.float32)[None, None, :] + field


def random_blob(rng, centre_xy, radius, points=18):
    """Irregular closed polygon around a centre: a tree crown or a bush outline."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False) + rng.uniform(0, 2 * np.pi)
    radii = radius * rng.uniform(0.75, 1.15, points)
    radii = (radii + np.roll(radii, 1) + np.roll(radii, -1)) / 3
    xs, ys = centre_xy[0] + radii * np.cos(angles), centre_xy[1] + radii * np.sin(angles)
    return np.stack([xs, ys], 1).astype(np.float32)


def draw_roof(canvas: Canvas, rng, footprint, region, kind: str, height: float) -> None:
    if kind == "tile":
        base = np.array([rng.uniform(170, 210), rng.uniform(85, 115), rng.uniform(55, 80)])
    elif kind == "dark":
        base = grey_colour(rng, 60, 85)
    else:  # flat roofs in the same greys as asphalt
        base = grey_colour(rng, 85, 130)
    ys, xs = region
    y0, x0 = ys.min(), xs.min()
    tex = textured(rng, (ys.max() + 1 - y0, xs.max() + 1 - x0), base, fine=6, coarse=6, cell=80)
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
        shade *= 1.0 + 0.08 * value_noise(rng, tex.shape[:2], 5, 1.0, 1)[ys - y0, xs - x0, 0]
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


def draw_car(canvas: Canvas, rng, u: float, v: float, angle: float, casters) -> None:
    length, width = metres_px(rng.uniform(4.1, 4.9)), metres_px(rng.uniform(1.7, 1.95))
    body = canvas.rect(u, v, length, width, angle)
    region = canvas.mask(body)
    if not region[0].size:
        return
    colours = [(160, 30, 30), (200, 200, 200), (235, 235, 230), (110, 110, 115), (25, 25, 30),
               (40, 60, 120), (60, 80, 60), (150, 150, 155), (120, 20, 25), (90, 90, 95)]
    colour = np.array(colours[rng.integers(len(colours))], np.float32) + rng.normal(0, 6, 3)
    canvas.paint(region, CAR, colour, metres_px(1.5))
    # windscreen and rear window: dark glass across the body
    for frac, span in ((0.22, 0.16), (-0.28, 0.12)):
        a = np.deg2rad(angle)
        du = np.array([np.cos(a), np.sin(a)]) * frac * length
        glass = canvas.rect(u + du[0], v + du[1], span * length, width * 0.82, angle)
        gy, gx = canvas.mask(glass)
        on_car = canvas.label[gy, gx] == CAR
        canvas.rgb[gy[on_car], gx[on_car]] = np.array([35, 40, 48]) + rng.normal(0, 3, 3)
    casters.append((body, metres_px(1.5)))


def draw_clutter_item(canvas: Canvas, rng, u: float, v: float, casters) -> None:
    length, width = metres_px(rng.uniform(3.0, 9.0)), metres_px(rng.uniform(2.0, 4.5))
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
        blob = canvas.mask(random_blob(rng, centre, max(length, width) / 2))
        ys, xs = blob
        if not len(ys):
            return
        folds = value_noise(rng, (ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()), 24, 30, 1)
        canvas.label[ys, xs] = CLUTTER
        canvas.rgb[ys, xs] = colour[None, :] + folds[ys - ys.min(), xs - xs.min()]
        region = blob
    canvas.height[region] = metres_px(1.0)
    casters.append((poly, metres_px(1.0)))


def draw_tree(canvas: Canvas, rng, crown, radius: float, leafy: bool) -> None:
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
    clusters = value_noise(rng, (h, w), 9, 28, 1)[..., 0] + value_noise(rng, (h, w), 3, 10, 1)[..., 0]
    centre = crown.mean(0)
    r = np.hypot(xs - centre[0], ys - centre[1]) / radius
    dome = 1.08 - 0.3 * np.clip(r, 0, 1.2) ** 2
    values = (base[None, :] + clusters[ys - y0, xs - x0][:, None]) * dome[:, None]
    if not leafy:
        values = 0.5 * values + 0.5 * canvas.rgb[ys, xs] * 0.9
    canvas.label[ys, xs] = TREE
    canvas.rgb[ys, xs] = values
    canvas.height[ys, xs] = np.maximum(canvas.height[ys, xs], metres_px(8))


def light_scene(canvas: Canvas, rng, casters) -> np.ndarray:
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
    shadow = cv2.GaussianBlur((shadow_height > canvas.height + 1.0).astype(np.float32), (5, 5), 0)
    darkness = rng.uniform(0.42, 0.55)
    factor = 1.0 - (1.0 - darkness) * shadow
    tint = np.array([0.92, 0.97, 1.1], np.float32)  # skylight makes shadows bluish
    rgb = canvas.rgb * (factor[..., None] * (1 - shadow[..., None] * (1 - tint)))
    # a little blur (optics) and sensor noise
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.7)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(3.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)
