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
from aerialseg.core.input_spec import RGB_UINT8, write_input
from aerialseg.core.names import RAW
from aerialseg.core.scene_split import write_split
from aerialseg.core.stage import run_stage, warn
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
    with atomic_dir(RAW) as tmp:
        if data.source == "folder":
            collected = folder.collect_folder(data, params.classes, params.seed, params.jobs, tmp)
            split, inputs = collected.split, collected.input
            for note in collected.notes:
                warn("download", note)
        else:
            split, inputs = data.split, RGB_UINT8  # both releases are 8-bit red, green, blue
            if data.source == "synthetic":
                synthetic.write_scenes(tmp, list(split.all_scenes), params.seed, data.synthetic.scene_size,
                                       params.classes, jobs=params.jobs)
            else:
                source = Path(data.potsdam.path)
                potsdam.fetch_archives(source, data.potsdam.downloads, progress=_progress_bar)
                potsdam.collect_tiles(source, tmp, list(split.all_scenes))
        write_split(tmp, split)  # every later stage takes its scenes from here
        write_input(tmp, inputs)  # ... and the bands they hold
    counts = ", ".join(f"{name} {len(ids)}" for name, ids in split.items())
    return f"{len(split.all_scenes)} {data.source} scenes of {inputs.describe()} in {RAW} ({counts})"


if __name__ == "__main__":
    run_stage("download", main, outputs=[RAW])
