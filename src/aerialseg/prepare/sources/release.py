"""An ISPRS release (Potsdam, Vaihingen) found in a folder of its archives and brought into the pipeline.

A release is described as data (``Release``: its ``Part``s), not as code per dataset: each scene's
image is one or more parts (an orthophoto, and optionally an elevation model: their bands stacked
in order), with a world file, a label and an eroded label, each a member of an official archive
under an official name. The data folder may hold the archives, their extracted folders, or both;
files are matched by name wherever they sit (a part inside an archive folder, such as Vaihingen's
``top/``, only there: its labels carry the image's very name), and only the requested scenes'
files are extracted (safely: ``archives``). One image part is hard-linked or extracted as it is;
several are read through GDAL, checked for one size and written as one image of all their bands
(8-bit when every part is, float32 otherwise). A label in the folder whose scene has no image is
skipped with a note (Vaihingen's eroded archive holds one for area 9, which was never published).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import numpy as np

from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import crs_xml, data_bands, opened_raster, read_bands
from aerialseg.core.geo.worldfile import WorldFile, write_world_file
from aerialseg.core.input_spec import InputSpec
from aerialseg.core.io import link_or_copy, write_image, write_json, write_text
from aerialseg.core.names import SOURCES_FILE, SceneFiles
from aerialseg.prepare.band_statistics import BandSummary, band_input, summarise_raster
from aerialseg.prepare.sources.archives import Member, extract_members, is_archive, list_members
from aerialseg.prepare.sources.fetch import download

ROLES = ("image", "world", "label", "label_noboundary")


@dataclass(frozen=True)
class Part:
    """One file of every scene: its ``role``, the official ``archive`` it is in, its base name
    (``template``: ``{id}`` the scene id; ``{row2}``/``{col2}`` a ``row_col`` id's numbers on two
    digits), the folder holding it inside the archive (None: any), and an image part's bands."""

    role: str
    archive: str
    template: str
    folder: str | None = None
    bands: tuple[str, ...] = ()

    def name(self, scene: str) -> str:
        """The part's base name for ``scene``."""
        row, _, col = scene.partition("_")
        return self.template.format(id=scene, row2=row.zfill(2), col2=col.zfill(2))

    def scene_of(self, name: str) -> str | None:
        """The scene id a base name of this part holds (None: not this part's name)."""
        pattern = re.escape(self.template).replace(r"\{id\}", r"(?P<id>[A-Za-z0-9_.-]+?)")
        found = re.fullmatch(pattern, name)
        return found.group("id") if found else None


@dataclass(frozen=True)
class Release:
    """An official release: its title, the params section that configures it, and its parts."""

    title: str
    key: str
    parts: tuple[Part, ...]

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands of a scene's image, in order (its image parts' bands, stacked)."""
        return tuple(band for part in self.parts if part.role == "image" for band in part.bands)

    @property
    def archives(self) -> tuple[str, ...]:
        """The archives the release is read from."""
        return tuple(dict.fromkeys(part.archive for part in self.parts))


def archive_name(url: str) -> str:
    """The file name an archive URL is saved under."""
    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise DataError(f"{url}: the URL does not end in a file name")
    return name


def fetch_archives(folder: Path, downloads: tuple[tuple[str, str], ...],
                   progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
                   key: str = "data.potsdam") -> list[Path]:
    """Download each (url, sha256) into ``folder`` unless a verified copy is there (``key``: the params
    section, for messages)."""
    return [download(url, Path(folder) / archive_name(url), digest, progress=progress(url) if progress else None,
                     key=f"{key}.sha256") for url, digest in downloads]


@dataclass(frozen=True)
class Found:
    """A file of the data folder: a plain file (``path``) or an archive member (``member``), with the name
    of the folder holding it."""

    name: str
    folder: str
    path: Path | None = None
    member: Member | None = None

    def describe(self) -> str:
        """Where the file is, as a user finds it: its path, or the archive and the member's name."""
        return str(self.path) if self.member is None else f"{self.member.archive}: member {self.member.name}"


def index_folder(root: Path) -> list[Found]:
    """Every plain file and archive member below ``root`` (partial downloads aside), in a stable order."""
    found: list[Found] = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            if name.endswith(".part"):
                continue
            if is_archive(path):
                found += [Found(m.base_name, PurePosixPath(m.name).parent.name, member=m) for m in list_members(path)]
            else:
                found.append(Found(name, path.parent.name, path=path))
    return found


def _matches(found: Found, part: Part, release: Release) -> bool:
    """Whether ``found`` can be ``part``: a member of its archive, or a plain file, in its folder if it
    names one; a part without a folder is never in the folder of another part whose files share its names."""
    if found.member is not None and found.member.archive.name != part.archive:
        return False
    if part.folder is not None:
        return found.folder == part.folder
    others = {p.folder for p in release.parts if p.folder is not None and p.template == part.template}
    return found.folder not in others


def locate(index: list[Found], release: Release, scene: str) -> dict[Part, Found]:
    """Each part of ``scene`` found in the index (plain files before archive members)."""
    located: dict[Part, Found] = {}
    for part in release.parts:
        name = part.name(scene)
        candidates = [f for f in index if f.name == name and _matches(f, part, release)]
        candidates.sort(key=lambda f: f.member is not None)
        if candidates:
            located[part] = candidates[0]
    return located


def missing_message(source: Path, release: Release, scene: str, part: Part, has_image: bool) -> str:
    """One line for a scene part the folder lacks: what was expected, in which archive, where."""
    what = {"image": "image", "label": "label", "label_noboundary": "eroded label"}[part.role]
    inside = f"{part.folder}/" if part.folder else ""
    lead = "has an image but no" if has_image and part.role != "image" else "has no"
    return (f"{source}: {release.title} scene {scene} {lead} {what} {part.name(scene)} (expected as "
            f"{part.archive}: {inside}{part.name(scene)}, or extracted; is {part.archive} there?)")


def orphan_labels(index: list[Found], release: Release, scenes_with_images: set[str]) -> list[str]:
    """Notes for labels in the folder whose scene has no image part anywhere in it: skipped."""
    notes = []
    for part in release.parts:
        if part.role not in ("label", "label_noboundary"):
            continue
        for found in index:
            scene = part.scene_of(found.name) if _matches(found, part, release) else None
            if scene is not None and scene not in scenes_with_images:
                notes.append(f"{found.describe()}: a label of {scene}, which has no image in the release: skipped")
    return notes


def stack_parts(paths: list[Path], parts: list[Part], origins: list[str]) -> np.ndarray:
    """The bands of several image parts as one (H, W, bands) image: 8-bit when all are, float32 otherwise;
    one line when they differ in size or lack a band."""
    images = []
    for path, part, origin in zip(paths, parts, origins, strict=True):
        bands = read_bands(path, every_band(path))  # a band tagged alpha is data here (an RGBIR file's NIR)
        if bands.shape[2] < len(part.bands):
            raise DataError(f"{origin}: {bands.shape[2]} band(s), the release's {', '.join(part.bands)} expected")
        images.append(bands[:, :, :len(part.bands)])
    sizes = {image.shape[:2] for image in images}
    if len(sizes) > 1:
        shown = "; ".join(f"{o}: {i.shape[1]}x{i.shape[0]} px" for o, i in zip(origins, images, strict=True))
        raise DataError(f"the parts of one scene differ in size ({shown}); their bands cannot be stacked")
    dtype = np.uint8 if all(image.dtype == np.uint8 for image in images) else np.float32
    return np.concatenate([image.astype(dtype, copy=False) for image in images], axis=2)


def collect_release(source: Path, destination: Path, scenes: list[str], release: Release) -> list[str]:
    """Bring the parts of ``scenes`` into ``destination`` named by scene id (``SceneFiles``), recording
    where each came from in ``SOURCES_FILE``; return notes for the user. DataError naming the first
    scene part that is missing, what was expected and where; or that no archive is there at all."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: {release.key}.path is not a folder; put the {release.title} archives "
                        f"({', '.join(release.archives)}) there (docs/isprs.md)")
    index = index_folder(source)
    if not index:
        raise DataError(f"{source}: no {release.title} archives ({', '.join(release.archives)}) or extracted files "
                        "found (docs/isprs.md)")
    first_image = next(part for part in release.parts if part.role == "image")
    plans = {}
    for scene in scenes:
        located = locate(index, release, scene)
        has_image = first_image in located
        for part in release.parts:
            if part.role != "world" and part not in located:
                raise DataError(missing_message(source, release, scene, part, has_image))
        plans[scene] = located
    destination.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    for scene, located in plans.items():
        sources.update(_bring_scene(scene, located, destination))
    write_json(destination / SOURCES_FILE, sources)  # so that later errors name the file the user can fix
    with_images = {first_image.scene_of(f.name) for f in index if _matches(f, first_image, release)}
    notes = orphan_labels(index, release, {scene for scene in with_images if scene})
    return notes[:5] + ([f"and {len(notes) - 5} more labels without images"] if len(notes) > 5 else [])


def _bring_scene(scene: str, located: dict[Part, Found], destination: Path) -> dict[str, str]:
    """Link, extract or stack one scene's parts into ``destination``; where each file came from."""
    files = SceneFiles(destination, scene)
    targets = {"image": files.image, "world": files.world, "label": files.label,
               "label_noboundary": files.label_noboundary}
    images = [part for part in located if part.role == "image"]
    stacked = len(images) > 1
    placed = {part: destination / f".{scene}_part{i}.tmp{Path(part.template).suffix}"
              if stacked and part.role == "image" else targets[part.role] for i, part in enumerate(located)}
    for part, found in located.items():
        if found.path is not None:
            link_or_copy(found.path, placed[part])
    members = [(found.member, placed[part]) for part, found in located.items() if found.member is not None]
    extract_members([member for member, _ in members if member is not None], destination,
                    [target.name for _, target in members])
    origins = {placed[part].name: found.describe() for part, found in located.items()
               if not (stacked and part.role == "image")}
    if not files.world.exists():  # no world file in the release: the first image part's own georeference, if any
        origins.update(_own_georeference(files, placed[images[0]], located[images[0]].describe()))
    if stacked:
        described = [located[part].describe() for part in images]
        write_image(files.image, stack_parts([placed[part] for part in images], images, described))
        for part in images:
            placed[part].unlink()
        origins[files.image.name] = " + ".join(described) + " (their bands stacked)"
    elif _hides_a_band(files.image, images[0]):  # a band tagged alpha that the release says is data
        described = [located[images[0]].describe()]
        write_image(files.image, stack_parts([files.image], images, described))
    return origins


def _own_georeference(files: SceneFiles, image: Path, origin: str) -> dict[str, str]:
    """A world file (and the CRS) from an image part's own GeoTIFF tags; nothing for a file without them."""
    with opened_raster(image, "raster") as src:
        transform, crs = src.transform, src.crs
    if transform.is_identity:
        return {}
    write_world_file(files.world, WorldFile.of_transform(transform))
    written = {files.world.name: f"{origin} (its transform)"}
    if crs is not None:
        write_text(files.srs, crs_xml(crs))
        written[files.srs.name] = f"{origin} (its CRS)"
    return written


def every_band(path: Path) -> tuple[int, ...]:
    """All bands of a raster (1-based), alpha-tagged ones included."""
    with opened_raster(path, "raster") as src:
        return tuple(range(1, src.count + 1))


def _hides_a_band(path: Path, part: Part) -> bool:
    """Whether GDAL would read fewer data bands from ``path`` than ``part`` has (one is tagged alpha)."""
    with opened_raster(path, "raster") as src:
        return len(data_bands(src)) < len(part.bands) <= src.count


def release_input(destination: Path, release: Release, train: tuple[str, ...]) -> InputSpec:
    """The models' input: the release's bands in the type of the collected images (8-bit as they are;
    a float32 stack with an elevation model normalised by the training scenes' percentiles)."""
    with opened_raster(SceneFiles(destination, train[0]).image, "raster") as src:
        dtype = src.dtypes[0]
    summary = BandSummary()
    if dtype != "uint8":
        for scene in train:
            image = SceneFiles(destination, scene).image
            with opened_raster(image, "raster") as src:
                every_band = tuple(range(1, src.count + 1))
            summary = summary.merged(summarise_raster(image, every_band, seed=zlib.crc32(scene.encode())))
    return band_input(release.bands, dtype, summary, f"set {release.key}'s elevation option false")
