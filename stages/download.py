"""Stage download: bring every scene of the split into data/raw under its scene id.

data.source synthetic draws Potsdam-like scenes; potsdam and vaihingen take the official ISPRS
files from the archives or extracted folders in data.<source>.path, after fetching
data.<source>.url there if given (resumable, checked against data.<source>.sha256); folder takes
a user's GeoTIFFs and their labels, paired by name (data.folder).
"""

from pathlib import Path

from tqdm import tqdm

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.config.params import load_params
from aerialseg.core.input_spec import RGB_UINT8, write_input
from aerialseg.core.names import RAW
from aerialseg.core.scene_split import write_split
from aerialseg.core.stage import run_stage, warn
from aerialseg.prepare.sources import folder, synthetic
from aerialseg.prepare.sources.potsdam import check_tile_ids, potsdam_release
from aerialseg.prepare.sources.release import archive_name, collect_release, fetch_archives, release_input
from aerialseg.prepare.sources.vaihingen import check_area_ids, vaihingen_release


def _progress_bar(url: str):
    bar = tqdm(desc=archive_name(url), unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def main() -> str:
    params = load_params()
    data = params.data
    with atomic_dir(RAW) as tmp:
        if data.source == "folder":
            collected = folder.collect_folder(data, params.classes, params.seed, params.jobs, tmp)
            split, inputs = collected.split, collected.input
            for note in collected.notes:
                warn("download", note)
        elif data.source == "synthetic":
            split, inputs = data.split, RGB_UINT8  # Potsdam-like 8-bit red, green, blue
            synthetic.write_scenes(tmp, list(split.all_scenes), params.seed, data.synthetic.scene_size,
                                   params.classes, jobs=params.jobs)
        else:
            split = data.split
            section, check = ((data.potsdam, check_tile_ids) if data.source == "potsdam"
                              else (data.vaihingen, check_area_ids))
            check(list(split.all_scenes))
            release = potsdam_release(data.potsdam) if data.source == "potsdam" else vaihingen_release(data.vaihingen)
            fetch_archives(Path(section.path), section.downloads, progress=_progress_bar, key=release.key)
            for note in collect_release(Path(section.path), tmp, list(split.all_scenes), release):
                warn("download", note)
            inputs = release_input(tmp, release, split.train)
        write_split(tmp, split)  # every later stage takes its scenes from here
        write_input(tmp, inputs)  # ... and the bands they hold
    counts = ", ".join(f"{name} {len(ids)}" for name, ids in split.items())
    return f"{len(split.all_scenes)} {data.source} scenes of {inputs.describe()} in {RAW} ({counts})"


if __name__ == "__main__":
    run_stage("download", main, outputs=[RAW])
