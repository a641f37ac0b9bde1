"""``aerialseg`` command line: predict your own images with a trained checkpoint.

Every option is typed and bounded like the matching param and checked, with the paths,
before any work starts: a usage mistake exits 2 with one line, a bad input file exits 1
with one line, and an existing output is only ever replaced whole, never by an input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aerialseg.core.config.declarations import declared_default, option_choices, option_type
from aerialseg.core.config.params import ExportParams, Params, PredictParams, check_window
from aerialseg.core.errors import DataError, ParamsError

if TYPE_CHECKING:
    from distributed import Client

    from aerialseg.core.input_spec import InputSpec
    from aerialseg.core.model_card import Card
    from aerialseg.predict.batch import Job


def export_command(args: argparse.Namespace) -> int:
    """Write a checkpoint as a SavedModel or an ONNX file with its metadata."""
    from aerialseg.core.model_card import card_beside_with_note
    from aerialseg.predict.batch import same_file

    if args.quantize and args.format != "onnx":
        raise ParamsError("--quantize: int8 models are ONNX models; give --format onnx")
    if args.quantize and not args.calibration:
        raise ParamsError("--quantize: give --calibration, the tile store the model was trained on (data/tiles) "
                          "or a few images like those it will predict")
    card, note = card_beside_with_note(Path(args.model))
    if note:
        print(f"aerialseg export: {note}", file=sys.stderr)
    window, subdivisions, tta = blending_settings(args, card)[0].values()
    gsd = args.gsd or (card.ground_sample_distance_m if card else None)
    if same_file(Path(args.model), Path(args.output)):
        raise ParamsError(f"-o: {args.output} is the checkpoint itself")
    int8 = _calibration(args, window, card.input if card else None) if args.quantize else None
    from aerialseg.predict.export import export_model  # TensorFlow: only once the options are known to be good
    from aerialseg.predict.quantize import speed_reporter as said

    export_model(args.model, args.output, args.format, gsd_m=gsd, window=window, subdivisions=subdivisions, tta=tta,
                 layout=args.layout, card=card, int8=int8, on_int8_speed=said("aerialseg export", args.output))
    shown = "unknown ground sample distance (give --gsd)" if gsd is None else f"{gsd:g} m/px"
    print(f"aerialseg export: wrote {args.output} ({args.format}, {args.layout}, {shown}, window {window}, "
          f"subdivisions {subdivisions}, tta {tta}{f', int8 calibrated on {int8.source}' if int8 else ''})")
    return 0


def _calibration(args: argparse.Namespace, window: int, inputs: InputSpec | None):
    """The int8 calibration sample the options name (a tile store, or images), drawn with --seed."""
    from aerialseg.predict.calibration import calibration_windows
    from aerialseg.predict.quantize import Calibration

    sources = [Path(path) for path in args.calibration]
    windows = calibration_windows(sources, args.calibration_windows, args.seed, window,
                                  fixed_window=args.layout == "nchw01", inputs=inputs)
    where = str(sources[0]) if len(sources) == 1 else f"{len(sources)} images"
    return Calibration(windows, args.calibration_method, f"{len(windows)} windows of {where}, seed {args.seed}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be a positive number of metres, got {text}")
    return value


def _progress(image: Path | str) -> tuple[Any, Callable[[int], None]]:
    """A tqdm bar for one image, told its total when the prediction knows it."""
    from tqdm import tqdm

    from aerialseg.predict.batch import image_name

    bar = tqdm(total=0, unit="window", desc=image_name(image))

    def start(total: int) -> None:
        bar.total = total
        bar.refresh()

    return bar, start


def predict_command(args: argparse.Namespace) -> int:
    """Blend a model's predictions over one image or a batch, and write GIS outputs."""
    from aerialseg.predict.batch import (
        check_jobs,
        connect_dask,
        expand_inputs,
        is_output_folder,
        plan_jobs,
        plan_resume,
        shard,
        sweep_output_folders,
    )
    from aerialseg.predict.mapping import check_crs

    model_path = Path(args.model)
    folder = is_output_folder(args.output, args.inputs)
    if folder and (args.probabilities or args.vector or args.uncertainty):
        option = "--probabilities" if args.probabilities else "--vector" if args.vector else "--uncertainty"
        raise ParamsError(f"{option}: with an output folder, give the option without a path "
                          "(each image's file goes beside its class map)")
    check_crs(args.crs)
    if args.bounds and not (args.bounds[0] < args.bounds[2] and args.bounds[1] < args.bounds[3]):
        raise ParamsError(f"--bounds: {' '.join(f'{v:g}' for v in args.bounds)} is not MINX MINY MAXX MAXY "
                          "with MINX < MAXX and MINY < MAXY")
    if args.bounds and args.aoi:
        raise ParamsError("--aoi: give --bounds or --aoi, not both")
    if args.bounds_crs:
        check_crs(args.bounds_crs, "--bounds-crs")
    if args.ranking and Path(args.ranking).suffix.lower() != ".csv":
        raise ParamsError(f"--ranking: {args.ranking}: must be a .csv file")
    jobs = plan_jobs(expand_inputs(args.inputs), args.output, folder=folder, probabilities=args.probabilities,
                     vector=args.vector, uncertainty=args.uncertainty)
    check_jobs(jobs, model_path, folder=folder, cog=args.cog)
    if args.shard is not None:
        jobs = shard(jobs, *args.shard)
    if args.vector is not None:
        import fiona  # noqa: F401  (before TensorFlow: GDAL then keeps its own SQLite, which has R*Trees)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(connect_dask(args.dask)) if args.dask else None  # before the model loads
        swept = sweep_output_folders(jobs)
        if swept:
            _note(f"removed {len(swept)} temporary file(s) that interrupted runs left beside the outputs")
        todo, notes = plan_resume(jobs) if folder and not args.overwrite else (jobs, [])
        for note in notes:
            _note(note)
        if len(todo) < len(jobs):
            _note(f"{len(jobs) - len(todo)} of {len(jobs)} images already have their outputs "
                  "(skipped; --overwrite redoes them)")
        return _predict_jobs(args, model_path, todo, client, batch=folder)


def blending_settings(args: argparse.Namespace, card: Card | None) -> tuple[dict, dict[str, str]]:
    """Window, subdivisions and tta: each option given, else the model card's, else the declared
    default; and where each came from (``--window``, ``model card`` or ``default``)."""
    chosen, sources = {}, {}
    for name in ("window", "subdivisions", "tta"):
        given, recorded = getattr(args, name), None if card is None else getattr(card, name)
        value, source = ((given, f"--{name}") if given is not None else
                         (recorded, "model card") if recorded is not None else (_default(name), "default"))
        chosen[name], sources[name] = value, source
    return chosen, sources


def _named(name: str, source: str) -> str:
    """How a message names a setting: the option the user gave, or the setting and where it came from
    (a message must not name an option the user did not give)."""
    return source if source.startswith("--") else f"{name} ({source})"


def _note(text: str) -> None:
    """A note on standard error, on a line of its own even while a progress bar is drawn."""
    from tqdm import tqdm

    tqdm.write(f"aerialseg predict: {text}", file=sys.stderr)


def _predict_jobs(args: argparse.Namespace, model_path: Path, todo: list[Job], client: Client | None, *,
                  batch: bool) -> int:
    """Load the model, predict the jobs, report each; a batch goes on past a bad image (exit 1 at the end)."""
    from aerialseg.core.model_card import card_classes, upgrade_note
    from aerialseg.predict import backends
    from aerialseg.predict.backends import auto_file, choose_backend, load_any_model, model_inputs, recorded_card
    from aerialseg.predict.batch import check_inputs, predict_locally, predict_on_dask, write_ranking
    from aerialseg.predict.mapping import MapSettings

    inputs = model_inputs(model_path)
    failures, todo = check_inputs(todo, args.crs, bands=args.bands, alpha_band=args.alpha_band, inputs=inputs,
                                  stop_at_first=args.fail_fast or not batch)
    total = len(todo) + len(failures)
    if not todo:
        return _report_failures(failures, len(failures))
    model_path = backends.auto_source(model_path, args.backend)  # a pipeline checkpoint: its export, unloaded
    model, (multiple, multiple_is) = load_any_model(model_path)
    card = recorded_card(model, model_path)
    classes, unnamed = card_classes(card, int(model.output_shape[-1]), str(model_path))
    for note in (upgrade_note(card, str(model_path)), unnamed and f"{model_path}: {unnamed}"):
        if note:
            _note(note)
    blending, sources = blending_settings(args, card)
    said = ", ".join(f"{name} {value} ({sources[name]})" for name, value in blending.items())
    window_key, subdivisions_key = _named("window", sources["window"]), _named("subdivisions", sources["subdivisions"])
    fixed = getattr(model, "fixed_window", None)
    if fixed is not None and blending["window"] != fixed:
        raise ParamsError(f"{window_key}: {blending['window']} does not fit {model_path}, exported with a fixed "
                          f"{fixed}x{fixed} px input; give --window {fixed} or export it again")
    check_window(blending["window"], multiple, blending["subdivisions"], window_key=window_key,
                 subdivisions_key=subdivisions_key, multiple_is=multiple_is)
    model, model_path = auto_file(model, model_path, args.backend, blending["window"])
    card = recorded_card(model, model_path)  # the int8 file's, if auto picked it
    precision = card.export.precision if card and card.export else None
    _note(f"predicting with {said}" + (f"; precision {precision}" if precision and precision != "float32" else ""))
    settings = MapSettings(**blending, batch_size=args.batch_size, input_gsd=args.gsd, model_gsd=args.model_gsd,
                           output_grid=args.output_grid, cog=args.cog, crs=args.crs, uncertainty=bool(args.ranking),
                           bands=args.bands, alpha_band=args.alpha_band, inputs=inputs,
                           bounds=tuple(args.bounds) if args.bounds else None, bounds_crs=args.bounds_crs,
                           aoi=args.aoi, classes=classes)
    if client is not None:
        results = predict_on_dask(client, model_path, args.backend, todo, settings)
    else:
        results = predict_locally(choose_backend(model, model_path, args.backend), todo, settings,
                                  card.ground_sample_distance_m if card else None, _progress)
    ranked: list[tuple[Job, float | None]] = []
    for job, outcome in results:
        if isinstance(outcome, DataError):
            if args.fail_fast or not batch:
                raise outcome
            failures.append(outcome)
            continue
        for note in outcome.notes:
            _note(f"{job.image}: {note}")
        print(f"aerialseg predict: {outcome.summary}")
        ranked.append((job, outcome.mean_uncertainty))
    if args.ranking:
        write_ranking(Path(args.ranking), ranked)
        _note(f"ranked {len(ranked)} image(s) by mean uncertainty in {args.ranking}")
    return _report_failures(failures, total)


def _report_failures(failures: list[DataError], total: int) -> int:
    """List a batch's failed images; exit status 1 if any failed."""
    for failure in failures:
        print(f"aerialseg predict: error: {failure}", file=sys.stderr)
    if failures:
        _note(f"{total - len(failures)} of {total} written; {len(failures)} failed")
    return 1 if failures else 0


def _bands(text: str) -> tuple[int, ...]:
    bands = tuple(int(part) for part in text.split(",")) if re.fullmatch(r"\d+(,\d+)*", text.strip()) else ()
    if not bands or min(bands) < 1 or len(set(bands)) != len(bands):
        raise argparse.ArgumentTypeError(f"expected distinct band numbers >= 1 such as 4,1,2, got {text!r}")
    return bands


def _alpha_band(text: str) -> int | str:
    if text in ("auto", "none"):
        return text
    try:
        band = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or a band number, got {text!r}") from None
    if band < 1:
        raise argparse.ArgumentTypeError(f"band numbers start at 1, got {band}")
    return band


def _shard(text: str) -> tuple[int, int]:
    from aerialseg.predict.batch import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _default(name: str) -> object:
    """The CLI's default for a ``predict`` option: the one declared with its param."""
    return declared_default(PredictParams, name)


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line (``prog: error: ...``) and exit status 2, without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aerialseg`` command."""
    parser = _OneLineParser(prog="aerialseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('aerialseg')}")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="smooth-blended prediction of orthophotos of any size, as GeoTIFFs")
    predict.add_argument("model", help="a checkpoint (data/models/epoch_050.keras) or an exported .onnx model")
    predict.add_argument("inputs", nargs="+", metavar="input",
                         help="images (any GDAL raster: GeoTIFF, PNG/JPEG with a world file...; or an (H, W, 3) "
                              "uint8 .npy), folders of them, or quoted globs")
    predict.add_argument("-o", "--output", required=True,
                         help="the class map (.tif: GeoTIFF with the input's CRS, colour table, nodata 255; "
                              ".png: RGB with a world file), or a folder (several inputs: NAME.tif each)")
    predict.add_argument("--window", type=option_type(PredictParams, "window"),
                         help=f"model input size (default: the model card's, else {_default('window')})")
    predict.add_argument("--subdivisions", type=option_type(PredictParams, "subdivisions"),
                         help="overlap: step = window/subdivisions (default: the model card's, else "
                              f"{_default('subdivisions')})")
    predict.add_argument("--tta", choices=option_choices(PredictParams, "tta"),
                         help=f"test-time augmentation (default: the model card's, else {_default('tta')})")
    predict.add_argument("--batch-size", type=option_type(PredictParams, "batch_size"), default=_default("batch_size"),
                         help="windows per model call (default %(default)s)")
    predict.add_argument("--probabilities", nargs="?", const="", metavar="PATH",
                         help="also write class probabilities: a .tif (uint8 GeoTIFF, one band per class, "
                              "scale 1/254, nodata 255) or a float16 (H, W, 6) .npy; without PATH, "
                              "NAME_probabilities.tif beside the class map")
    predict.add_argument("--vector", nargs="?", const="", metavar="PATH",
                         help="also write the classes as polygons in a GeoPackage (.gpkg; without PATH beside "
                              "the class map)")
    predict.add_argument("--uncertainty", nargs="?", const="", metavar="PATH",
                         help="also write per-pixel uncertainty: the normalised entropy of the blended "
                              "probabilities as a uint8 GeoTIFF (scale 1/254, nodata 255; without PATH, "
                              "NAME_uncertainty.tif beside the class map)")
    predict.add_argument("--ranking", metavar="CSV",
                         help="write the images ranked by mean uncertainty, most uncertain first (where to "
                              "label next)")
    predict.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs with overviews")
    predict.add_argument("--gsd", type=_positive_float,
                         help="the input's ground sample distance in m/px, when its georeference does not say it")
    predict.add_argument("--model-gsd", type=_positive_float,
                         help="the ground sample distance the model was trained at, when it does not record it")
    predict.add_argument("--output-grid", choices=("input", "model"), default="input",
                         help="write outputs on the input's grid (default) or on the model's resolution")
    predict.add_argument("--bands", type=_bands, metavar="B1,B2,...",
                         help="the inputs' bands the model reads, in its card's order (default: the first ones)")
    predict.add_argument("--alpha-band", type=_alpha_band, default="auto", metavar="auto|none|N",
                         help="the band whose 0 pixels are outside the footprint: auto (the band tagged alpha, "
                              "default), none (a band tagged alpha is data, e.g. near infrared) or a band number")
    predict.add_argument("--bounds", type=float, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                         help="predict only this area (the outputs cover its extent); only its windows are read")
    predict.add_argument("--bounds-crs", metavar="CRS", help="the CRS of --bounds (default: each image's)")
    predict.add_argument("--aoi", metavar="FILE",
                         help="predict only within the polygons of this vector file (any CRS): outside them "
                              "every output is nodata")
    predict.add_argument("--crs", help="CRS of inputs that carry none (e.g. EPSG:25833 for the ISPRS Potsdam tiles)")
    predict.add_argument("--overwrite", action="store_true",
                         help="with an output folder, redo images whose outputs exist (default: skip them)")
    predict.add_argument("--shard", type=_shard, metavar="I/N",
                         help="predict only this job's share of the inputs (0 <= I < N), e.g. a job array's index")
    predict.add_argument("--fail-fast", action="store_true",
                         help="stop at the first image that fails (default: try every image, list failures at the end)")
    predict.add_argument("--dask", metavar="ADDRESS",
                         help="run the batch on a Dask distributed scheduler (tcp://host:8786), one image per task")
    predict.add_argument("--backend", choices=("auto", "onnx", "keras"), default="auto",
                         help="auto: a checkpoint on ONNX Runtime on CPU, TensorFlow on GPU; an fp32 .onnx export or "
                              "its _int8 model beside it, whichever this CPU runs faster (measured once); onnx; keras")
    predict.set_defaults(run=predict_command)

    export = sub.add_parser("export", help="write a checkpoint as a TensorFlow SavedModel or an ONNX model")
    export.add_argument("model", help="a checkpoint, e.g. data/models/epoch_050.keras")
    export.add_argument("--format", choices=("onnx", "savedmodel"), required=True)
    export.add_argument("-o", "--output", required=True, help="the .onnx file or the SavedModel folder")
    export.add_argument("--layout", choices=("nhwc255", "nchw01"), default="nhwc255",
                        help="input/output layout: nhwc255 (aerialseg's, default) or nchw01 (QGIS Deepness)")
    export.add_argument("--gsd", type=_positive_float,
                        help="the ground sample distance the model was trained at, m/px (default: the model card's "
                             "beside the checkpoint; without one, recorded as unknown)")
    export.add_argument("--window", type=option_type(PredictParams, "window"),
                        help="prediction window; with nchw01 the model's fixed input (default: the model card's, "
                             f"else {_default('window')})")
    export.add_argument("--subdivisions", type=option_type(PredictParams, "subdivisions"),
                        help=f"overlap: step = window/subdivisions (default: the model card's, else "
                             f"{_default('subdivisions')})")
    export.add_argument("--tta", choices=option_choices(PredictParams, "tta"),
                        help=f"test-time augmentation it records (default: the model card's, else {_default('tta')})")
    export.add_argument("--quantize", choices=("int8",),
                        help="quantise the ONNX model: int8 (ONNX Runtime static QDQ, per-channel weights)")
    export.add_argument("--calibration", nargs="+", metavar="PATH",
                        help="what calibrates --quantize: the tile store the model was trained on (data/tiles; "
                             "its train tiles) or images like those it will predict")
    export.add_argument("--calibration-windows", type=option_type(ExportParams, "calibration_tiles"),
                        default=declared_default(ExportParams, "calibration_tiles"),
                        help="windows in the seeded calibration sample (default %(default)s)")
    export.add_argument("--calibration-method", choices=option_choices(ExportParams, "calibration_method"),
                        default=declared_default(ExportParams, "calibration_method"),
                        help="how activation ranges are set from the sample (default %(default)s)")
    export.add_argument("--seed", type=option_type(Params, "seed"), default=0,
                        help="the calibration sample's seed (default %(default)s)")
    export.set_defaults(run=export_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aerialseg`` command: 0 done, 1 bad input file, 2 usage mistake."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ParamsError, DataError) as err:
        print(f"aerialseg {args.command}: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ParamsError) else 1
    except KeyboardInterrupt:
        print(f"aerialseg {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
