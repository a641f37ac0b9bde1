"""The ``data`` section of ``params.yaml``: the source, its scenes and their split.

Kept apart from ``aerialseg.core.config.params`` (which nests it) because it is the part that grows
with every data source; the file's shape, the loading and the rules between sections stay
there. Every problem is a ``ParamsError`` that starts with the dotted key at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aerialseg.core.config.declarations import (
    Boolean,
    Choice,
    Custom,
    Integer,
    Nested,
    Number,
    OrNull,
    SceneIds,
    Section,
    String,
    StringList,
    param,
    shown,
)
from aerialseg.core.errors import ParamsError
from aerialseg.core.scene_split import Split

DATA_SOURCES = ("synthetic", "potsdam", "vaihingen", "folder")
POTSDAM_BANDS = ("RGB", "IRRG", "RGBIR")  # the release's orthophoto archives: 2_Ortho_RGB, 3_Ortho_IRRG, 4_Ortho_RGBIR
# the ground sample distance (m/px) a release declares for scenes whose files carry no georeference:
# ISPRS Potsdam's true orthophotos are 5 cm (its .tfw world files say the same), Vaihingen's 9 cm (its
# file names say so); synthetic scenes always come with world files
DECLARED_GSD_M = {"potsdam": 0.05, "vaihingen": 0.09}


@dataclass(frozen=True, kw_only=True)
class _SourceScenes:
    """A source section's scene ids per split (``train``, ``val``, ``test`` keys)."""

    train: tuple[str, ...] = param(SceneIds())
    val: tuple[str, ...] = param(SceneIds())
    test: tuple[str, ...] = param(SceneIds())

    @property
    def split(self) -> Split:
        """The scenes of each split."""
        return Split(self.train, self.val, self.test)

    def check(self, section: Section) -> None:
        self.split.check(section.key, ParamsError)


@dataclass(frozen=True, kw_only=True)
class SyntheticParams(_SourceScenes):
    """``data.synthetic``: the built-in generator's scene size and split."""

    scene_size: int = param(Integer(256, 20_000))


@dataclass(frozen=True, kw_only=True)
class _ReleaseParams(_SourceScenes):
    """An ISPRS release's section: where the official archives lie, optional mirrors, and the split."""

    path: str = param(String())
    url: tuple[str, ...] = param(StringList())
    sha256: tuple[str, ...] = param(StringList())

    @property
    def downloads(self) -> tuple[tuple[str, str], ...]:
        """(url, sha256) of every archive to fetch into ``path`` before extracting."""
        return tuple(zip(self.url, (digest.lower() for digest in self.sha256), strict=True))

    def check(self, section: Section) -> None:
        for url in self.url:
            if not url.lower().startswith(("http://", "https://")):
                raise ParamsError(f"{section.key('url')}: {url!r} is not an http(s) URL")
        if len(self.sha256) != len(self.url):
            raise ParamsError(f"{section.key('sha256')}: give one checksum per url ({len(self.url)} url(s), "
                              f"{len(self.sha256)} checksum(s)); downloads are always verified")
        for digest in self.sha256:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ParamsError(f"{section.key('sha256')}: {shown(digest)} is not a 64-digit hex SHA-256")
        super().check(section)


@dataclass(frozen=True, kw_only=True)
class PotsdamParams(_ReleaseParams):
    """``data.potsdam``: the release, which of its orthophotos (``bands``) and whether its normalised DSM
    joins them as a band."""

    bands: str = param(Choice(POTSDAM_BANDS), default="RGB")
    ndsm: bool = param(Boolean(), default=False)


@dataclass(frozen=True, kw_only=True)
class VaihingenParams(_ReleaseParams):
    """``data.vaihingen``: the release, and whether its DSM joins the false-colour orthophotos as a band."""

    dsm: bool = param(Boolean(), default=False)


@dataclass(frozen=True, kw_only=True)
class SplitFractions:
    """``data.folder.fractions``: the shares of the scenes drawn at random (seeded) for val and test."""

    val: float = param(Number(0.0, 0.9))
    test: float = param(Number(0.0, 0.9))

    def check(self, section: Section) -> None:
        if self.val + self.test >= 1:
            raise ParamsError(f"{section.key('test')}: val {self.val:g} + test {self.test:g} leave no scene to "
                              "train on")


# the vector formats a label file may be in, by suffix (OGR reads each); anything else is a label raster
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")


def is_vector_file(pattern: str) -> bool:
    """Whether a label path or pattern names vector labels (by its suffix)."""
    return pattern.lower().endswith(VECTOR_SUFFIXES)


def _buffers(section: Section, name: str) -> tuple[tuple[str, float], ...]:
    """(class name, metres) pairs; the names are checked against the class table with the rules
    between sections."""
    value = section.get(name)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ParamsError(f"{section.key(name)}: expected a mapping from class name to metres, got {shown(value)}")
    buffers = section.section(name)
    return tuple((str(c), Number(0.0, 10_000.0, exclusive=True).read(buffers, c)) for c in value)


def _file_bands(section: Section, name: str) -> tuple[str | None, ...]:
    """Names of an image file's bands in file order (band 1 first), null for a band left out."""
    value = section.get(name)
    names = [v for v in value if v is not None] if isinstance(value, list) else []
    if (not isinstance(value, list) or not names
            or not all(v is None or (isinstance(v, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", v))
                       for v in value)
            or len(set(names)) != len(names)):
        raise ParamsError(f"{section.key(name)}: expected the image files' bands by name in file order (e.g. [red, "
                          f"green, blue, nir]; null for a band left out), each name once, got {shown(value)}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class VectorParams:
    """``data.folder.vector``: how vector labels (polygons, lines, points) become a label raster on each
    scene's grid (``prepare.sources.vector_labels``)."""

    layer: str | None = param(OrNull(String()))  # a GeoPackage's layer (null: its only one)
    class_field: str = param(String())  # the attribute naming each feature's class: a table name or value
    burn_order: tuple[str, ...] = param(StringList())  # classes burnt first to last (null: the table's order)
    buffer_m: tuple[tuple[str, float], ...] = param(Custom(_buffers))  # lines and points: metres each side
    all_touched: bool = param(Boolean())  # burn every pixel a shape touches, not only those it covers the centre of
    background: str | None = param(OrNull(String()))  # the class outside every feature (null: ignore)
    aoi: str | None = param(OrNull(String()))  # polygons under data.folder.path: background only inside them

    def check(self, section: Section) -> None:
        if self.aoi is not None and self.background is None:
            raise ParamsError(f"{section.key('aoi')}: limits where background counts, but "
                              f"{section.key('background')} is null (outside every feature is ignore anyway)")
        if self.aoi is not None and (self.aoi.startswith("/") or ".." in self.aoi.split("/")):
            raise ParamsError(f"{section.key('aoi')}: {self.aoi!r} must stay under data.folder.path")

    def check_classes(self, names: tuple[str, ...], prefix: str) -> None:
        """Refuse a class name the table does not have; a burn order that is not the table's classes."""
        named = [("buffer_m", c) for c, _ in self.buffer_m] + [("background", self.background)] * bool(
            self.background) + [("burn_order", c) for c in self.burn_order]
        for key, name in named:
            if name not in names:
                raise ParamsError(f"{prefix}{key}: {name!r} is not a class of classes.table ({', '.join(names)})")
        if self.burn_order and sorted(self.burn_order) != sorted(names):
            raise ParamsError(f"{prefix}burn_order: lists {', '.join(self.burn_order)}; list every class of "
                              f"classes.table once ({', '.join(names)}), or null for the table's order")


@dataclass(frozen=True, kw_only=True)
class FolderParams(_SourceScenes):
    """``data.folder``: a user's own GeoTIFFs and their label rasters, paired by name (a glob and a
    pattern, or a CSV manifest). The split lists scenes by their ids, the images' file stems; scenes
    listed nowhere (here or in the manifest's split column) are drawn at random for val and test by
    ``fractions`` (only for a split nothing lists), the rest train."""

    train: tuple[str, ...] = param(SceneIds(allow_empty=True))  # empty: filled by fractions
    val: tuple[str, ...] = param(SceneIds(allow_empty=True))
    test: tuple[str, ...] = param(SceneIds(allow_empty=True))
    fractions: SplitFractions = param(Nested(SplitFractions))
    path: str = param(String())
    images: str = param(String())  # a glob under path
    labels: str = param(String())  # each image's label under path ({stem}: the image's), or one vector file
    vector: VectorParams = param(Nested(VectorParams))
    manifest: str | None = param(OrNull(String()))  # a CSV under path (image,label[,split]): replaces the two above
    min_label_coverage: float = param(Number(0.0, 1.0))  # share of an image's footprint its labels must cover
    bands: tuple[str | None, ...] = param(Custom(_file_bands))  # the images' bands by name in file order; null: out

    @property
    def band_names(self) -> tuple[str, ...]:
        """The bands a model reads, in order."""
        return tuple(b for b in self.bands if b is not None)

    @property
    def file_bands(self) -> tuple[int, ...]:
        """The image files' bands (1-based) a model reads, in the order of ``band_names``."""
        return tuple(i + 1 for i, b in enumerate(self.bands) if b is not None)

    def check(self, section: Section) -> None:
        if "{stem}" not in self.labels and not is_vector_file(self.labels):
            raise ParamsError(f"{section.key('labels')}: {self.labels!r} names no {{stem}}: labels are paired with "
                              "images by name (e.g. labels/{stem}.tif), never by order; one file for every scene "
                              f"is a vector file ({', '.join(VECTOR_SUFFIXES)})")
        patterns = [("images", self.images), ("labels", self.labels)]
        for key, pattern in patterns + ([("manifest", self.manifest)] if self.manifest else []):
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise ParamsError(f"{section.key(key)}: {pattern!r} must stay under data.folder.path")
        super().check(section)


@dataclass(frozen=True, kw_only=True)
class DataParams:
    """``data``: the source, the tiles left out, and each source's settings."""

    @property
    def declared_gsd(self) -> float | None:
        """The ground sample distance the active source declares for scenes without a georeference."""
        return DECLARED_GSD_M.get(self.source)

    source: str = param(Choice(DATA_SOURCES))
    exclude: tuple[str, ...] = param(SceneIds(allow_empty=True))
    synthetic: SyntheticParams = param(Nested(SyntheticParams))
    potsdam: PotsdamParams = param(Nested(PotsdamParams))
    vaihingen: VaihingenParams = param(Nested(VaihingenParams))
    folder: FolderParams = param(Nested(FolderParams))
    crs: str = param(String())  # of scenes whose world files place them without saying in which CRS

    @property
    def split(self) -> Split:
        """The split the active source's params list, with excluded tiles removed: every scene of the
        built-in sources; for a folder, the scenes listed (download draws the rest, ``scene_split``)."""
        active = {"synthetic": self.synthetic, "potsdam": self.potsdam, "vaihingen": self.vaihingen,
                  "folder": self.folder}[self.source]
        return active.split.without(self.exclude)

    def check(self, section: Section) -> None:
        if self.source == "folder":
            return  # its split is resolved by download, from the folder's scenes (empty lists: by fractions)
        for name, ids in self.split.items():
            if not ids:
                raise ParamsError(f"data.{self.source}.{name}: no scenes" + (" left after data.exclude"
                                                                           if self.exclude else ""))
