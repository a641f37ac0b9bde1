"""Stage download: bring every scene of the split into data/raw under its official name.

data.source synthetic draws Potsdam-like scenes; potsdam takes the official tiles from the
archives or extracted folders in data.potsdam.path, after fetching data.potsdam.url there
if given (resumable, checked against data.potsdam.sha256); folder takes a user's GeoTIFFs and
their labels, paired by name (data.folder).
"""

from pathlib import Path

from tqdm import tqdm

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.io import write_json
from aerialseg.core.names import AUDIT_FILE, RAW, SOURCES_FILE
from aerialseg.core.stage import run_stage
from aerialseg.prepare.sources import folder, potsdam, synthetic


def _progress_bar(url: str):
    bar = tqdm(desc=potsdam.archive_name(url), unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def main() -> str:
    params = load_params()
    data = params.data
    scenes = list(data.split.all_scenes)
    with atomic_dir(RAW) as tmp:
        if data.source == "synthetic":
            synthetic.write_scenes(tmp, scenes, params.seed, data.synthetic.scene_size, params.classes,
                                   jobs=params.jobs)
        elif data.source == "folder":
            found = {scene.scene: scene for scene in folder.find_scenes(data.folder)}
            missing = [scene for scene in scenes if scene not in found]
            if missing:
                raise DataError(f"{data.folder.path}: no image for scene(s) {', '.join(missing)} of the split "
                                f"(data.folder.images {data.folder.images!r} found {', '.join(sorted(found))})")
            sources: dict[str, str] = {}
            audit: dict[str, dict] = {}
            for scene in tqdm(scenes, desc="download", unit="scene"):
                origins, audit[scene] = folder.collect_scene(found[scene], tmp, params.classes,
                                                             data.folder.min_label_coverage)
                sources.update(origins)
            write_json(tmp / SOURCES_FILE, sources)  # so that later errors name the file the user can fix
            write_json(tmp / AUDIT_FILE, audit)  # encode_masks puts it in the data report
        else:
            source = Path(data.potsdam.path)
            potsdam.fetch_archives(source, data.potsdam.downloads, progress=_progress_bar)
            potsdam.collect_tiles(source, tmp, scenes)
    return f"{len(scenes)} {data.source} scenes in {RAW}"


if __name__ == "__main__":
    run_stage("download", main, outputs=[RAW])
