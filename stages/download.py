"""Stage download: bring every scene of the split into data/raw under its official name.

data.source synthetic draws Potsdam-like scenes; potsdam takes the official tiles from the
archives or extracted folders in data.potsdam.path, after fetching data.potsdam.url there
if given (resumable, checked against data.potsdam.sha256).
"""

from pathlib import Path

from tqdm import tqdm

from aerialseg.datasets import potsdam, synthetic
from aerialseg.io import atomic_dir
from aerialseg.params import load_params
from aerialseg.stage import run_stage

OUT = Path("data/raw")


def _progress_bar(url: str):
    bar = tqdm(desc=potsdam.archive_name(url), unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def main() -> str:
    params = load_params()
    scenes = list(params.data.split.all_scenes)
    with atomic_dir(OUT) as tmp:
        if params.data.source == "synthetic":
            synthetic.write_scenes(tmp, scenes, params.seed, params.data.synthetic_scene_size, jobs=params.jobs)
        else:
            source = Path(params.data.potsdam_path)
            potsdam.fetch_archives(source, params.data.potsdam_downloads, progress=_progress_bar)
            potsdam.collect_tiles(source, tmp, scenes)
    return f"{len(scenes)} {params.data.source} scenes in {OUT}"


if __name__ == "__main__":
    run_stage("download", main)
