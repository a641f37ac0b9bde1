"""``aerialseg`` command line: predict your own images with a trained checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

from aerialseg.errors import DataError, UserError
from aerialseg.io import map_rgb_tiff
from aerialseg.params import TTA_MODES, check_window


def _load_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read an image for prediction as (H, W, 3) uint8 RGB; notes say what was converted."""
    import cv2

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".npy":
        image = np.load(path, mmap_mode="r")
    elif (mapped := map_rgb_tiff(path)) is not None:  # pages are read as windows reach them
        image = mapped
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
        if image.ndim == 3:
            image = image[..., [2, 1, 0, 3][: image.shape[2]]] if image.shape[2] in (3, 4) else image
    notes = []
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise DataError(f"{path}: the model needs 3-channel RGB, this image has {channels} channel(s)")
    if image.shape[2] == 4:
        image = image[..., :3]
        notes.append("dropped the alpha channel")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: the model was trained on 8-bit images, this one is {image.dtype}; "
                        "convert it to 8-bit first")
    return image, notes


def predict_command(args: argparse.Namespace) -> int:
    """Blend a checkpoint's predictions over one image and write the class map."""
    from tqdm import tqdm

    from aerialseg.blending import blend_rows, count_windows
    from aerialseg.inference import load_model, model_depth
    from aerialseg.io import atomic_path, read_world_file, world_file_for, write_rgb, write_world_file
    from aerialseg.palette import NUM_CLASSES, index_to_rgb

    image, notes = _load_image(Path(args.image))
    model = load_model(args.model)
    classes = int(model.output_shape[-1])
    if classes != NUM_CLASSES:
        raise DataError(f"{args.model}: the model predicts {classes} classes, the ISPRS palette has {NUM_CLASSES}")
    check_window(args.window, model_depth(model), args.subdivisions, window_key="--window",
                 subdivisions_key="--subdivisions")
    for note in notes:
        print(f"aerialseg predict: {args.image}: {note}", file=sys.stderr)

    out = Path(args.output)
    height, width = image.shape[:2]
    class_map = np.empty((height, width), np.uint8)
    probabilities = None
    total = count_windows((height, width), window=args.window, subdivisions=args.subdivisions, tta=args.tta)
    with contextlib.ExitStack() as stack:
        if args.probabilities:
            probs_tmp = stack.enter_context(atomic_path(args.probabilities))
            probabilities = np.lib.format.open_memmap(probs_tmp, mode="w+", dtype=np.float16,
                                                      shape=(height, width, classes))
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aerialseg`` command."""
    parser = argparse.ArgumentParser(prog="aerialseg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="smooth-blended prediction of an image of any size")
    predict.add_argument("model", help="a checkpoint, e.g. data/models/epoch_050.keras")
    predict.add_argument("image", help="an 8-bit RGB image (TIFF, PNG, JPEG) or an (H, W, 3) uint8 .npy")
    predict.add_argument("-o", "--output", required=True, help="class map in ISPRS colours (.png or .tif)")
    predict.add_argument("--window", type=_bounded(8, 8192), default=128, help="model input size (default 128)")
    predict.add_argument("--subdivisions", type=_bounded(1, 64), default=2,
                         help="overlap: step = window/subdivisions (default 2)")
    predict.add_argument("--tta", choices=TTA_MODES, default="d4", help="test-time augmentation (default d4)")
    predict.add_argument("--batch-size", type=_bounded(1, 4096), default=16, help="windows per model call")
    predict.add_argument("--probabilities", help="also write float16 probabilities (H, W, 6) to this .npy")
    predict.set_defaults(run=predict_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aerialseg`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as err:
        print(f"aerialseg {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
