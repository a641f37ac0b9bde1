"""Predict many orthophotos: inputs from files, folders and globs; outputs named, skipped when
finished; a share of the work for one job of a job array; or the whole batch on Dask.

Every output is written atomically and checked before it is published, so an output that
exists and is whole is finished: a killed batch resumes where it stopped, and one that is not
whole (damaged later) is redone. What killed runs left in the output folders is swept first,
without touching a concurrent run's live temporaries. A bad image is one failure of the
batch, not its end. Dask runs one image per task and loads the model once per worker.
"""

from __future__ import annotations

import glob
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aerialseg.core.atomic import sweep_stale_temporaries
from aerialseg.core.errors import DataError, ParamsError, one_line_reason
from aerialseg.core.geo.orthophoto import is_remote
from aerialseg.core.input_spec import InputSpec
from aerialseg.core.io import write_text
from aerialseg.core.protocols import BatchModel
from aerialseg.core.verify import problem_with
from aerialseg.predict.backends import choose_backend, load_any_model, recorded_card, recorded_gsd
from aerialseg.predict.mapping import MapOutputs, Mapped, MapSettings, check_input, map_orthophoto
from aerialseg.predict.stac import item_asset

if TYPE_CHECKING:
    from distributed import Client

Image = Path | str  # a local file, or an http(s) URL
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".vrt", ".img", ".npy")
CLASS_MAP_SUFFIXES = (".png", ".tif", ".tiff")  # lossless: a JPEG would blur class colours into others


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (also through links), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def image_name(image: Image) -> str:
    """The file name of an input, local or remote (``tile.tif`` of ``https://host/a/tile.tif?x=1``)."""
    return Path(urlsplit(image).path).name if isinstance(image, str) else image.name


def expand_inputs(patterns: list[str]) -> list[Image]:
    """Files as given, a folder's images (not recursive), globs' matches, http(s) URLs, and the raster
    asset of STAC Items (``.json``, local or remote); sorted, each once.

    ParamsError names a pattern that matches nothing.
    """
    found: dict[Image, None] = {}
    for pattern in patterns:
        if pattern.lower().endswith(".json"):
            found[_local_or_remote(item_asset(pattern))] = None
            continue
        if is_remote(pattern):
            found[pattern] = None
            continue
        path = Path(pattern)
        if path.is_dir():
            matches = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.name.startswith(".")]
        elif path.exists():
            matches = [path]
        else:
            matches = [Path(m) for m in sorted(glob.glob(pattern)) if Path(m).is_file()]
        if not matches:
            what = "no image in this folder" if path.is_dir() else "no such file, and no file matches it"
            raise ParamsError(f"{pattern}: {what}")
        found.update(dict.fromkeys(matches))
    return list(found)


def _local_or_remote(href: str) -> Image:
    if is_remote(href):
        return href
    return Path(href.removeprefix("file://"))


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` (0 <= i < n): this job's share of a batch split n ways, as a job array numbers its jobs."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"needs 0 <= i < n, got {text}")
    return index, count


def shard(items: list, index: int, count: int) -> list:
    """Job ``index`` of ``count``'s share: every count-th item from the index-th (disjoint, covering)."""
    return items[index::count]


@dataclass(frozen=True)
class Job:
    """One image and where its outputs go."""

    image: Image
    outputs: MapOutputs


def is_output_folder(output: str, inputs: list[str]) -> bool:
    """Whether ``-o`` names a folder: it is one, ends with a slash, or several images go into it
    (several inputs, a folder, a glob; a URL or a STAC Item is one image)."""
    def single(p: str) -> bool:
        return is_remote(p) or p.lower().endswith(".json") or (Path(p).exists() and not Path(p).is_dir())

    return (Path(output).is_dir() or output.endswith(("/", os.sep)) or len(inputs) > 1
            or not all(single(p) for p in inputs))


def plan_jobs(images: list[Image], output: str, *, folder: bool, probabilities: str | None,
              vector: str | None, uncertainty: str | None = None) -> list[Job]:
    """Name every output. ``probabilities``/``vector``/``uncertainty``: a path (one image), "" for
    beside the class map (``NAME_probabilities.tif``, ``NAME.gpkg``, ``NAME_uncertainty.tif``), or
    None for none."""
    jobs = []
    for image in images:
        class_map = Path(output) / f"{Path(image_name(image)).stem}.tif" if folder else Path(output)
        beside = class_map.with_name(f"{class_map.stem}_probabilities.tif")
        probs = None if probabilities is None else (Path(probabilities) if probabilities else beside)
        polygons = None if vector is None else (Path(vector) if vector else class_map.with_suffix(".gpkg"))
        doubt = None if uncertainty is None else (
            Path(uncertainty) if uncertainty else class_map.with_name(f"{class_map.stem}_uncertainty.tif"))
        jobs.append(Job(image, MapOutputs(class_map, probs, polygons, doubt)))
    return jobs


def check_jobs(jobs: list[Job], model: Path, *, folder: bool, cog: bool) -> None:
    """Refuse, before any work, outputs that are lossy, nameless, an input or a folder, or named twice."""
    inputs = [("the model", model), *(("the input image", job.image) for job in jobs if isinstance(job.image, Path))]
    seen: dict[Path, str] = {}
    for job in jobs:
        out = job.outputs
        if out.class_map.suffix.lower() not in CLASS_MAP_SUFFIXES:
            found = out.class_map.suffix or "a name without extension"
            raise ParamsError(f"-o: {out.class_map}: write class maps losslessly as "
                              f"{' or '.join(CLASS_MAP_SUFFIXES)}, not {found}")
        if cog and out.class_map.suffix.lower() == ".png":
            raise ParamsError(f"--cog: {out.class_map}: a Cloud-Optimized GeoTIFF needs a .tif name")
        checks = [("-o", out.class_map)]
        if out.probabilities is not None:
            if out.probabilities.suffix.lower() not in (".npy", ".tif", ".tiff"):
                raise ParamsError(f"--probabilities: {out.probabilities}: must be a .tif (GeoTIFF) or .npy file")
            checks.append(("--probabilities", out.probabilities))
        if out.uncertainty is not None:
            if out.uncertainty.suffix.lower() not in (".tif", ".tiff"):
                raise ParamsError(f"--uncertainty: {out.uncertainty}: must be a .tif (GeoTIFF) file")
            checks.append(("--uncertainty", out.uncertainty))
        if out.vector is not None:
            if out.vector.suffix.lower() != ".gpkg":
                raise ParamsError(f"--vector: {out.vector}: must be a .gpkg (GeoPackage) file")
            checks.append(("--vector", out.vector))
        for option, path in checks:
            for name, source in inputs:
                if same_file(path, source):
                    raise ParamsError(f"{option}: {path} is {name}; choose another output")
            if path.is_dir():
                raise ParamsError(f"{option}: {path} is a folder")
            key = path.resolve()
            if key in seen:
                raise ParamsError(f"{option}: {path} is also {seen[key]}; "
                                  + ("two inputs share a name" if folder else "choose another output"))
            seen[key] = f"the output of {job.image}" if folder else {"-o": "the class map (-o)"}.get(option, option)


def broken_outputs(job: Job) -> list[tuple[Path, str]]:
    """The outputs of ``job`` that exist but are not whole files of their kind, with the reason.

    Outputs are written atomically and checked before they are published, so a broken one
    was damaged afterwards (or written by something else): it is redone, never trusted.
    """
    found = []
    for path in job.outputs.all():
        problem = problem_with(path) if path.is_file() else None
        if problem is not None:
            found.append((path, problem))
    return found


def plan_resume(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """The jobs still to do (an output missing or broken) and notes on the broken outputs."""
    todo, notes = [], []
    for job in jobs:
        broken = broken_outputs(job)
        notes += [f"{path}: not a whole file ({problem}); predicting {image_name(job.image)} again"
                  for path, problem in broken]
        if broken or not all(path.is_file() for path in job.outputs.all()):
            todo.append(job)
    return todo, notes


def check_inputs(jobs: list[Job], crs: str | None, *, bands: tuple[int, ...] | None, alpha_band: int | str,
                 inputs: InputSpec, stop_at_first: bool) -> tuple[list[DataError], list[Job]]:
    """(failures, jobs the model can take): every input checked as the model takes it (readable, its
    bands' count and type: ``inputs``, ``check_input``) on its header alone, before any model loads or
    converts, so that a 16-bit image for an 8-bit model is one line at once; ``stop_at_first`` raises
    the first failure instead."""
    failures, good = [], []
    for job in jobs:
        try:
            check_input(job.image, crs, bands=bands, alpha_band=alpha_band, inputs=inputs)
        except DataError as err:
            if stop_at_first:
                raise
            failures.append(err)
        else:
            good.append(job)
    return failures, good


def write_ranking(path: Path, ranked: list[tuple[Job, float | None]]) -> None:
    """A CSV of the images by mean uncertainty, most uncertain first: where to label next."""
    import csv
    import io

    rows = sorted(ranked, key=lambda item: -1.0 if item[1] is None else item[1], reverse=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["rank", "image", "class_map", "mean_uncertainty"])
    for rank, (job, mean) in enumerate(rows, start=1):
        writer.writerow([rank, job.image, job.outputs.class_map, "" if mean is None else f"{mean:.6f}"])
    write_text(path, text.getvalue())


def sweep_output_folders(jobs: list[Job]) -> list[Path]:
    """Remove what interrupted runs left in the output folders (their writers gone); return it.

    A concurrent run's live temporaries stay (see ``aerialseg.core.atomic``).
    """
    folders = sorted({path.parent for job in jobs for path in job.outputs.all()})
    return [removed for folder in folders for removed in sweep_stale_temporaries(folder)]


_WORKER_MODELS: dict[tuple[str, str], tuple[BatchModel, float | None]] = {}


def predict_job(model_path: str, backend: str, job: Job, settings: MapSettings) -> Mapped:
    """One image as a Dask task: the model is loaded once per worker process and kept."""
    key = (str(Path(model_path).resolve()), backend)
    if key not in _WORKER_MODELS:
        model, _ = load_any_model(Path(model_path))
        card = recorded_card(model, Path(model_path))
        _WORKER_MODELS[key] = (choose_backend(model, Path(model_path), backend), recorded_gsd(card))
    model, gsd = _WORKER_MODELS[key]
    return map_orthophoto(model, job.image, job.outputs, settings, model_gsd=gsd)


Outcome = Mapped | DataError  # what mapping a written image did, or why it failed


def predict_locally(model: BatchModel, jobs: list[Job], settings: MapSettings, model_gsd: float | None,
                    progress: Callable[[Image], tuple[Any, Callable[[int], None]]]) -> Iterator[tuple[Job, Outcome]]:
    """Predict ``jobs`` one after another; yield each with its outcome. A bad image (unreadable,
    truncated, deleted meanwhile) or a failed write is its outcome, and the next image is tried."""
    for job in jobs:
        bar, start = progress(job.image)
        with bar:
            try:
                outcome: Outcome = map_orthophoto(model, job.image, job.outputs, settings, model_gsd=model_gsd,
                                                  on_batch=bar.update, on_start=start)
            except DataError as err:
                outcome = err
        yield job, outcome


def connect_dask(address: str) -> Client:
    """A client of the Dask scheduler at ``address``; DataError at once if nothing listens there.

    A TCP address is tried with a plain connection first: a refused port is reported in
    milliseconds instead of after the client's 20 s of retries.
    """
    from distributed import Client

    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    if parsed.scheme in ("tcp", "tls") and parsed.hostname and parsed.port:
        try:
            socket.create_connection((parsed.hostname, parsed.port), timeout=5).close()
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else one_line_reason(err)
            raise DataError(f"--dask: cannot reach a Dask scheduler at {address} ({reason})") from None
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise DataError(f"--dask: cannot reach a Dask scheduler at {address} ({one_line_reason(err)})") from None


def predict_on_dask(client: Client, model_path: Path, backend: str, jobs: list[Job],
                    settings: MapSettings) -> Iterator[tuple[Job, Outcome]]:
    """Run ``jobs`` on a Dask cluster, one image per task; yield each job with its outcome as it
    finishes (a task's DataError is its outcome)."""
    from distributed import as_completed

    futures = {client.submit(predict_job, str(model_path), backend, job, settings, pure=False,
                             key=f"aerialseg-predict-{i}-{image_name(job.image)}"): job for i, job in enumerate(jobs)}
    for future in as_completed(futures):
        try:
            outcome: Outcome = future.result()
        except DataError as err:
            outcome = err
        yield futures[future], outcome
