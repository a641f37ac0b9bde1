"""The real ISPRS Potsdam release: find the official tiles and bring them into the pipeline.

The release arrives as ``2_Ortho_RGB.zip``, ``5_Labels_all.zip`` and
``5_Labels_all_noBoundary.zip`` (after an ISPRS registration) or from a mirror. The data
folder may hold those archives, their extracted folders, or both; files are matched by
their official names wherever they sit, and only the files of the requested tiles are
extracted (safely: see ``archives``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from aerialseg.core.errors import DataError
from aerialseg.core.io import write_json
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


def collect_tiles(source: Path, destination: Path, tile_ids: list[str]) -> list[str]:
    """Bring the official files of ``tile_ids`` into ``destination`` from a release folder.

    Extracted files are hard-linked (or copied); archive members are extracted; where each
    came from is recorded in ``SOURCES_FILE`` beside them. Raises
    DataError naming the first tile whose image or label is missing, and saying whether
    the archives are missing altogether.
    """
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: data.potsdam.path is not a folder; put the ISPRS Potsdam archives "
                        f"({', '.join(OFFICIAL_ARCHIVES)}) there (see README)")
    files, members = _index(source)
    if not files and not members:
        raise DataError(f"{source}: no Potsdam archives ({', '.join(OFFICIAL_ARCHIVES)}) or extracted tiles "
                        "found; see README, 'Train the seed's setting on Potsdam'")
    to_extract: list[Member] = []
    to_link: list[tuple[Path, Path]] = []
    for tile_id in tile_ids:
        wanted = SceneFiles(destination, tile_id)
        for target in wanted.required() + [wanted.world]:
            if target.name in files:
                to_link.append((files[target.name], target))
            elif target.name in members:
                to_extract.append(members[target.name])
            elif target == wanted.image:
                raise DataError(f"{source}: tile {tile_id} has no image {target.name} (is 2_Ortho_RGB.zip there?)")
            elif target != wanted.world:
                archive = "5_Labels_all_noBoundary.zip" if "noBoundary" in target.name else "5_Labels_all.zip"
                raise DataError(f"{source}: tile {tile_id} has an image but no label {target.name} "
                                f"(is {archive} there?)")
    destination.mkdir(parents=True, exist_ok=True)
    for origin, target in to_link:
        try:
            os.link(origin, target)
        except OSError:
            shutil.copyfile(origin, target)
    extract_members(to_extract, destination)
    sources = {target.name: str(origin) for origin, target in to_link}
    sources.update({member.base_name: f"{member.archive}: member {member.name}" for member in to_extract})
    write_json(destination / SOURCES_FILE, sources)  # so that later errors name the file the user can fix
    return list(tile_ids)
