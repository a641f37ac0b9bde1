"""The real ISPRS Potsdam release: find the official tiles and bring them into the pipeline.

The release arrives as ``2_Ortho_RGB.zip``, ``5_Labels_all.zip`` and
``5_Labels_all_noBoundary.zip`` (after an ISPRS registration) or from a mirror. The data
folder may hold those archives, their extracted folders, or both; files are matched by
their official names wherever they sit, and only the files of the requested tiles are
extracted (safely: see ``archives``). In ``data/raw`` each tile's files are named by its scene id,
the tile id (``2_10``), like every source's (``core/names.SceneFiles``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from aerialseg.core.errors import DataError
from aerialseg.core.io import link_or_copy, write_json
from aerialseg.core.names import SOURCES_FILE, SceneFiles
from aerialseg.prepare.sources.archives import Member, extract_members, is_archive, list_members
from aerialseg.prepare.sources.fetch import download

OFFICIAL_ARCHIVES = ("2_Ortho_RGB.zip", "5_Labels_all.zip", "5_Labels_all_noBoundary.zip")


def archive_name(url: str) -> str:
    """The file name an archive URL is saved under."""
    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise DataError(f"{url}: the URL does not end in a file name")
    return name


def fetch_archives(folder: Path, downloads: tuple[tuple[str, str], ...],
                   progress: Callable[[str], Callable[[int, int | None], None]] | None = None) -> list[Path]:
    """Download each (url, sha256) into ``folder`` unless a verified copy is there."""
    return [download(url, Path(folder) / archive_name(url), digest, progress=progress(url) if progress else None)
            for url, digest in downloads]


def _index(root: Path) -> tuple[dict[str, Path], dict[str, Member]]:
    """Plain files and archive members below ``root``, each by its base name."""
    files: dict[str, Path] = {}
    members: dict[str, Member] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = Path(dirpath) / name
            if name.endswith(".part"):
                continue
            if is_archive(path):
                for member in list_members(path):
                    members.setdefault(member.base_name, member)
            else:
                files.setdefault(name, path)
    return files, members


_TILE_ID = re.compile(r"^\d+_\d+$")


def release_names(folder: Path, tile_id: str) -> dict[Path, str]:
    """The stage-folder files of Potsdam tile ``tile_id`` (``SceneFiles``, by scene id) and the
    official release name each one comes from."""
    files = SceneFiles(folder, tile_id)
    official = f"top_potsdam_{tile_id}"
    return {files.image: f"{official}_RGB.tif", files.world: f"{official}_RGB.tfw",
            files.label: f"{official}_label.tif", files.label_noboundary: f"{official}_label_noBoundary.tif"}


def collect_tiles(source: Path, destination: Path, tile_ids: list[str]) -> list[str]:
    """Bring the official files of ``tile_ids`` into ``destination`` from a release folder, named
    by scene id (``SceneFiles``).

    Extracted files are hard-linked (or copied); archive members are extracted; where each
    came from is recorded in ``SOURCES_FILE`` beside them. Raises
    DataError naming the first tile whose image or label is missing, and saying whether
    the archives are missing altogether.
    """
    source = Path(source)
    for tile_id in tile_ids:
        if not _TILE_ID.match(tile_id):
            raise DataError(f"data.potsdam: {tile_id!r} is not a Potsdam tile id (row_column, like 2_10)")
    if not source.is_dir():
        raise DataError(f"{source}: data.potsdam.path is not a folder; put the ISPRS Potsdam archives "
                        f"({', '.join(OFFICIAL_ARCHIVES)}) there (see README)")
    files, members = _index(source)
    if not files and not members:
        raise DataError(f"{source}: no Potsdam archives ({', '.join(OFFICIAL_ARCHIVES)}) or extracted tiles "
                        "found; see README, 'Train the seed's setting on Potsdam'")
    to_extract: list[tuple[Member, Path]] = []
    to_link: list[tuple[Path, Path]] = []
    for tile_id in tile_ids:
        wanted = SceneFiles(destination, tile_id)
        for target, official in release_names(destination, tile_id).items():
            if official in files:
                to_link.append((files[official], target))
            elif official in members:
                to_extract.append((members[official], target))
            elif target == wanted.image:
                raise DataError(f"{source}: tile {tile_id} has no image {official} (is 2_Ortho_RGB.zip there?)")
            elif target != wanted.world:
                archive = "5_Labels_all_noBoundary.zip" if "noBoundary" in official else "5_Labels_all.zip"
                raise DataError(f"{source}: tile {tile_id} has an image but no label {official} "
                                f"(is {archive} there?)")
    destination.mkdir(parents=True, exist_ok=True)
    for origin, target in to_link:
        link_or_copy(origin, target)
    extract_members([member for member, _ in to_extract], destination, [target.name for _, target in to_extract])
    sources = {target.name: str(origin) for origin, target in to_link}
    sources.update({target.name: f"{member.archive}: member {member.name}" for member, target in to_extract})
    write_json(destination / SOURCES_FILE, sources)  # so that later errors name the file the user can fix
    return list(tile_ids)
