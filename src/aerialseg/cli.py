"""``aerialseg`` command line: predict your own images with a trained checkpoint.

Every option is typed and bounded like the matching param and checked, with the paths,
before any work starts: a usage mistake exits 2 with one line, a bad input file exits 1
with one line, and an existing output is only ever replaced whole, never by an input.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from aerialseg.errors import DataError, ParamsError
from aerialseg.io import decode_image, map_rgb_tiff, read_npy
from aerialseg.params import TTA_MODES, check_window

CLASS_MAP_SUFFIXES = (".png", ".tif", ".tiff")  # lossless: a JPEG would blur class colours into others


def load_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read an image for prediction as (H, W, 3) uint8 RGB; notes say what was converted.

    ``.npy`` files and uncompressed TIFFs are memory-mapped (pages are read as windows
    reach them); anything else is decoded whole. DataError names the file for anything
    that is not a non-empty 8-bit RGB(A) image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".npy":
        image = read_npy(path, mmap=True)
    elif (mapped := map_rgb_tiff(path)) is not None:
        image = mapped
    else:
        image = decode_image(path)
        if image.ndim == 3 and image.shape[2] in (3, 4):
            image = image[..., [2, 1, 0, 3][: image.shape[2]]]  # OpenCV's BGR(A) to RGB(A)
    notes = []
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else "?")
        raise DataError(f"{path}: the model needs 3-channel RGB, this image has {channels} channel(s) "
                        f"(shape {image.shape})")
    if image.shape[2] == 4:
        image = image[..., :3]
        notes.append("dropped the alpha channel")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: the model was trained on 8-bit images, this one is {image.dtype}; "
                        "convert it to 8-bit first")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"{path}: the image is empty ({image.shape[1]}x{image.shape[0]} px)")
    return image, notes


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (also through links), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_paths(args: argparse.Namespace) -> None:
    """Refuse outputs that would be lossy, nameless, or overwrite an input; before any work."""
    out = Path(args.output)
    if out.suffix.lower() not in CLASS_MAP_SUFFIXES:
        raise ParamsError(f"-o: {out}: write class maps losslessly as {' or '.join(CLASS_MAP_SUFFIXES)}, "
                          f"not {out.suffix or 'a name without extension'}")
    outputs = {"-o": out}
    if args.probabilities:
        probabilities = Path(args.probabilities)
        if probabilities.suffix.lower() != ".npy":
            raise ParamsError(f"--probabilities: {probabilities}: must be a .npy file")
        outputs["--probabilities"] = probabilities
    inputs = {"image": Path(args.image), "model": Path(args.model)}
    for option, output in outputs.items():
        for name, source in inputs.items():
            if _same_file(output, source):
                raise ParamsError(f"{option}: {output} is the input {name}; choose another output")
        if output.is_dir():
            raise ParamsError(f"{option}: {output} is a folder")
    if args.probabilities and _same_file(out, Path(args.probabilities)):
        raise ParamsError(f"--probabilities: {args.probabilities} is also the class map (-o)")


def load_any_model(path: Path):
    """A Keras checkpoint, or an exported ``.onnx`` model on ONNX Runtime (TensorFlow not loaded);
    also what its input sides must be divisible by, and that number's name."""
    if path.suffix.lower() == ".onnx":
        from aerialseg.onnx_model import OnnxSegmenter

        model = OnnxSegmenter(path)
        return model, (model.input_multiple, "the input multiple")
    from aerialseg.inference import input_multiple, load_model

    model = load_model(path)
    return model, input_multiple(model)


def choose_backend(model, path: Path, backend: str):
    """What runs a Keras checkpoint: TensorFlow (keras) or ONNX Runtime (onnx).

    auto picks ONNX Runtime on a CPU, where ``bench/predict_backends.py`` measured it
    faster (1.17x on the default model, 2 cores), and TensorFlow where it sees a GPU. An
    exported ONNX model is returned as it is.
    """
    from aerialseg.onnx_model import OnnxSegmenter

    if isinstance(model, OnnxSegmenter) or backend == "keras":
        return model
    from aerialseg.framework import tf

    if backend == "auto" and tf.config.list_physical_devices("GPU"):
        return model
    from aerialseg.export import onnx_runtime_model

    try:
        return onnx_runtime_model(model)
    except Exception as err:  # the converter and a full temp disk raise many kinds; TensorFlow still works
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        if backend == "onnx":
            raise DataError(f"{path}: cannot be converted to ONNX ({reason})") from None
        print(f"aerialseg predict: {path}: predicting with TensorFlow, the ONNX conversion failed ({reason})",
              file=sys.stderr)
        return model


def export_command(args: argparse.Namespace) -> int:
    """Write a checkpoint as a SavedModel or an ONNX file with its metadata."""
    from aerialseg.export import SOURCE_GSD_M, export_model
    from aerialseg.params import load_params

    defaults = load_params(args.params) if Path(args.params).is_file() else None
    gsd = args.gsd
    if gsd is None and defaults is not None:
        gsd = SOURCE_GSD_M / defaults.resize.scale
    window = args.window or (defaults.predict.window if defaults else 128)
    subdivisions = args.subdivisions or (defaults.predict.subdivisions if defaults else 2)
    tta = defaults.predict.tta if defaults else "d4"
    if _same_file(Path(args.model), Path(args.output)):
        raise ParamsError(f"-o: {args.output} is the checkpoint itself")
    metadata = export_model(args.model, args.output, args.format, gsd_m=gsd, window=window,
                            subdivisions=subdivisions, tta=tta, layout=args.layout)
    shown = "unknown ground sample distance (give --gsd)" if gsd is None else f"{gsd:g} m/px"
    print(f"aerialseg export: wrote {args.output} ({args.format}, {metadata['layout']}, {shown}, "
          f"window {window}, subdivisions {subdivisions})")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be a positive number of metres, got {text}")
    return value


def predict_command(args: argparse.Namespace) -> int:
    """Blend a checkpoint's predictions over one image and write the class map."""
    from tqdm import tqdm

    from aerialseg.blending import blend_rows, count_windows
    from aerialseg.io import atomic_path, open_npy_memmap, read_world_file, world_file_for, write_rgb, write_world_file
    from aerialseg.palette import NUM_CLASSES, index_to_rgb

    check_paths(args)
    image, notes = load_image(Path(args.image))
    model, (multiple, multiple_is) = load_any_model(Path(args.model))
    classes = int(model.output_shape[-1])
    if classes != NUM_CLASSES:
        raise DataError(f"{args.model}: the model predicts {classes} classes, the ISPRS palette has {NUM_CLASSES}")
    check_window(args.window, multiple, args.subdivisions, window_key="--window",
                 subdivisions_key="--subdivisions", multiple_is=multiple_is)
    for note in notes:
        print(f"aerialseg predict: {args.image}: {note}", file=sys.stderr)
    model = choose_backend(model, Path(args.model), args.backend)

    out = Path(args.output)
    height, width = image.shape[:2]
    class_map = np.empty((height, width), np.uint8)
    probabilities = None
    total = count_windows((height, width), window=args.window, subdivisions=args.subdivisions, tta=args.tta)
    with contextlib.ExitStack() as stack:
        if args.probabilities:
            probs_tmp = stack.enter_context(atomic_path(args.probabilities))
            probabilities = open_npy_memmap(probs_tmp, (height, width, classes), np.float16)
        bar = stack.enter_context(tqdm(total=total, unit="window", desc=Path(args.image).name))
        for top, rows in blend_rows(lambda idx: image[idx], (height, width), model, window=args.window,
                                    num_classes=classes, subdivisions=args.subdivisions, tta=args.tta,
                                    batch_size=args.batch_size, on_batch=bar.update):
            class_map[top:top + len(rows)] = rows.argmax(-1)
            if probabilities is not None:
                probabilities[top:top + len(rows)] = rows
        if probabilities is not None:
            probabilities.flush()
            del probabilities
    write_rgb(out, index_to_rgb(class_map))
    world = world_file_for(args.image)
    if world.is_file():
        write_world_file(world_file_for(out), read_world_file(world))
    print(f"aerialseg predict: wrote {out} ({width}x{height} px, {total} windows)")
    return 0


def _bounded(low: int, high: int):
    """An argparse type: an integer within [low, high] (the same bounds as the matching param)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line (``prog: error: ...``) and exit status 2, without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aerialseg`` command."""
    parser = _OneLineParser(prog="aerialseg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="smooth-blended prediction of an image of any size")
    predict.add_argument("model", help="a checkpoint (data/models/epoch_050.keras) or an exported .onnx model")
    predict.add_argument("image", help="an 8-bit RGB image (TIFF, PNG, JPEG) or an (H, W, 3) uint8 .npy")
    predict.add_argument("-o", "--output", required=True, help="class map in ISPRS colours (.png or .tif)")
    predict.add_argument("--window", type=_bounded(8, 8192), default=128, help="model input size (default 128)")
    predict.add_argument("--subdivisions", type=_bounded(1, 64), default=2,
                         help="overlap: step = window/subdivisions (default 2)")
    predict.add_argument("--tta", choices=TTA_MODES, default="d4", help="test-time augmentation (default d4)")
    predict.add_argument("--batch-size", type=_bounded(1, 4096), default=16, help="windows per model call")
    predict.add_argument("--probabilities", help="also write float16 probabilities (H, W, 6) to this .npy")
    predict.add_argument("--backend", choices=("auto", "onnx", "keras"), default="auto",
                         help="what runs a Keras checkpoint: auto (ONNX Runtime on CPU, TensorFlow on GPU), "
                              "onnx or keras; an .onnx model always runs on ONNX Runtime")
    predict.set_defaults(run=predict_command)

    export = sub.add_parser("export", help="write a checkpoint as a TensorFlow SavedModel or an ONNX model")
    export.add_argument("model", help="a checkpoint, e.g. data/models/epoch_050.keras")
    export.add_argument("--format", choices=("onnx", "savedmodel"), required=True)
    export.add_argument("-o", "--output", required=True, help="the .onnx file or the SavedModel folder")
    export.add_argument("--layout", choices=("nhwc255", "nchw01"), default="nhwc255",
                        help="input/output layout: nhwc255 (aerialseg's, default) or nchw01 (QGIS Deepness)")
    export.add_argument("--gsd", type=_positive_float, help="ground sample distance in m/px (default: from params)")
    export.add_argument("--window", type=_bounded(8, 8192), help="prediction window (default: predict.window)")
    export.add_argument("--subdivisions", type=_bounded(1, 64), help="default: predict.subdivisions")
    export.add_argument("--params", default="params.yaml", help="where the defaults come from (if it exists)")
    export.set_defaults(run=export_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aerialseg`` command: 0 done, 1 bad input file, 2 usage mistake."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ParamsError as err:
        print(f"aerialseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"aerialseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aerialseg {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
