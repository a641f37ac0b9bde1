"""Prediction backends on this CPU: TensorFlow, ONNX Runtime fp32, int8 and fp16, on the same windows.

Two architectures, each built with seeded weights (speed does not depend on training): the
default params' U-Net (8 filters doubling to a cap of 32) and the seed notebook's (depth 6, 16
filters doubling to 1024, the one a Potsdam user trains; ``--seed-windows`` of them, fewer: each
costs ~100x). For each it exports it with ``aerialseg.predict.export`` (fp32 ONNX), quantises it with
``aerialseg.predict.quantize`` (int8, calibrated on tiles drawn by the synthetic generator as
the default run draws them) and converts it to fp16 with ONNX Runtime's own converter (fp32
inputs and outputs kept). All sides run ``predict_on_batch`` on the same windows in
alternating repeats (this machine changes speed within seconds), and the ratios are medians of
per-repeat ratios; ``fastest`` names the fastest backend, ``auto`` the one ``--backend auto`` picks
for the fp32 export with its int8 model beside it (``aerialseg.predict.auto_precision``, measuring
afresh in a cache folder of its own) and ``auto_share_of_fastest`` what it gets of the fastest
backend's speed (the median over repeats of the repeat's fastest time over auto's). Then, on ONNX
Runtime only:

- ``threads_batch`` (default model): fp32 and int8 windows/s for intra-op threads 1 and all cores x batch
  1, 4, 16, 64, interleaved;
- ``profile``, ``seed_profile``: each op type's share of ONNX Runtime's kernel time (its own profiler), fp32
  and int8: where the time goes;
- ``conv_width``: one 3x3 convolution on a 128 x 128 input, fp32 against int8, at the
  channel widths of the default model (8-32) and of wider ones: what int8 kernels gain as a
  function of width.

Achieved GFLOP/s count the convolutions' multiply-adds x 2 per window (``bench/train.py``'s
``forward_flops``) and compare them with this CPU's fp32 peak (``cpu_peak``, cores x clock x
FP32 FLOP per cycle, as ``bench/train.py`` computes it); int8 also against its VNNI peak (4x the
fp32 rate where ``avx512_vnni``). ``km2_per_core_hour`` is the model-call floor's mapping rate at
the model's ground sample distance: each window adds (window / subdivisions)^2 new pixels,
divided by the test-time augmentation's 8 (d4) or 1 (none) model calls. Prints one JSON line.

    python bench/predict_backends.py [--windows 256] [--seed-windows 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def calibration_tiles(params, count: int) -> np.ndarray:
    """Training tiles of two synthetic train scenes, as the default run cuts them."""
    from aerialseg.prepare.preprocess import resize_image, resize_label
    from aerialseg.prepare.sources.synthetic import generate_scene
    from aerialseg.prepare.sources.synthetic_drawing import GSD_M
    from aerialseg.prepare.tiling import cut_tiles

    tiles = []
    for scene_id in params.data.synthetic.split.train[:2]:
        scene = generate_scene(params.seed, scene_id, params.data.synthetic.scene_size)
        scale = GSD_M / params.resize.gsd  # synthetic scenes are drawn at GSD_M
        image = resize_image(scene.image, scale)
        label = resize_label(scene.label, scale)
        tiles += [t.image for t in cut_tiles(scene_id, image, label, params.tile.patch_size, params.tile.stride)]
    pick = np.random.default_rng(params.seed).choice(len(tiles), size=min(count, len(tiles)), replace=False)
    return np.stack([tiles[i] for i in np.sort(pick)]).astype(np.float32)


def session(path: Path, threads: int, profile: bool = False):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = profile
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed(run, windows: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(windows), batch):
        run(windows[i:i + batch])
    return time.perf_counter() - start


def interleaved(sides: dict, windows: np.ndarray, batch: dict | int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each side per repeat, sides taking turns within every repeat (after one warm-up) pass by
    pass: turns batch by batch were tried and read each side's speed by its place in the turn (a
    session's ONNX Runtime threads spin on after its call, taking the cores from the next one)."""
    sizes = batch if isinstance(batch, dict) else dict.fromkeys(sides, batch)
    for name, run in sides.items():
        timed(run, windows, sizes[name])
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            seconds[name].append(timed(run, windows, sizes[name]))
    return seconds


def op_shares(path: Path, windows: np.ndarray, threads: int) -> dict[str, float]:
    """Each op type's share of the kernel time ONNX Runtime's profiler records over a few batches."""
    sess = session(path, threads, profile=True)
    name = sess.get_inputs()[0].name
    for _ in range(4):
        sess.run(None, {name: windows})
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"]
    whole = sum(totals.values())
    return {op: round(t / whole, 3) for op, t in sorted(totals.items(), key=lambda kv: -kv[1]) if t / whole >= 0.01}


def conv_width(folder: Path, repeats: int) -> dict[str, float]:
    """int8 over fp32 speed of one 3x3 convolution (+ ReLU) on (8, C, 128, 128), by channel width C."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from aerialseg.predict.quantize import Calibration, quantize_int8

    rng = np.random.default_rng(0)
    out = {}
    for width in (8, 32, 128):
        weight = numpy_helper.from_array((rng.standard_normal((width, width, 3, 3)) * 0.1).astype(np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
            "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width, 128, 128])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width, 128, 128])], [weight])
        fp32 = folder / f"conv{width}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
        x = rng.uniform(0, 255, (8, width, 128, 128)).astype(np.float32)
        int8 = folder / f"conv{width}_int8.onnx"
        # the quantiser feeds the NHWC windows through the nhwc255 layout as they are: (N, C, H, W) here
        quantize_int8(fp32, int8, Calibration(x, "minmax", "random"))
        sides = {}
        for name, path in (("fp32", fp32), ("int8", int8)):
            sess = session(path, 1)
            sides[name] = (lambda s: lambda batch: s.run(None, {"x": batch}))(sess)
        seconds = interleaved(sides, x, 8, repeats)
        out[str(width)] = round(statistics.median(f / i for f, i in zip(seconds["fp32"], seconds["int8"],
                                                                      strict=True)), 3)
    return out


def measure(model, name: str, params, windows: np.ndarray, calibration: np.ndarray, folder: Path, repeats: int,
            peak: dict) -> tuple[dict, dict[str, Path]]:
    """Windows/s of one architecture on every backend, interleaved, with GFLOP/s, shares of this CPU's
    peak, the map rate and the class-map agreement with TensorFlow; also its ONNX files."""
    from aerialseg.core.framework import keras
    from aerialseg.predict.auto_precision import auto_precision, int8_sibling
    from aerialseg.predict.export import export_model
    from aerialseg.predict.onnx_model import OnnxSegmenter
    from aerialseg.predict.quantize import Calibration, quantize_int8
    from train import forward_flops

    p = params.predict
    window, batch, cores = p.window, p.batch_size, len(os.sched_getaffinity(0))
    sized = keras.models.clone_model(model, input_tensors=keras.Input((window, window, 3)))
    gflop = forward_flops(sized) / 1e9  # the layers' shapes at the window's size
    checkpoint = folder / f"{name}.keras"
    model.save(checkpoint)
    files = {"fp32": folder / f"{name}.onnx", "int8": int8_sibling(folder / f"{name}.onnx"),
             "fp16": folder / f"{name}_fp16.onnx"}
    export_model(checkpoint, files["fp32"], "onnx", gsd_m=None, window=window, subdivisions=p.subdivisions,
                 tta=p.tta)
    quantize_int8(files["fp32"], files["int8"], Calibration(calibration, params.export.calibration_method,
                                                            "synthetic tiles"))
    fp16_note = _fp16(files["fp32"], files["fp16"])
    backends = {"keras": model, "onnx_fp32": OnnxSegmenter(files["fp32"]), "onnx_int8": OnnxSegmenter(files["int8"])}
    if files["fp16"].exists():
        backends["onnx_fp16"] = OnnxSegmenter(files["fp16"])
    reference = np.asarray(model.predict_on_batch(windows[:batch]))
    agreement = {b: round(float((run.predict_on_batch(windows[:batch]).argmax(-1) == reference.argmax(-1)).mean()),
                          4) for b, run in backends.items() if b != "keras"}
    seconds = interleaved({b: run.predict_on_batch for b, run in backends.items()}, windows, batch, repeats)
    rate = {b: len(windows) / statistics.median(s) for b, s in seconds.items()}
    ratio = {f"{a}_over_{b}": round(statistics.median(y / x for x, y in zip(seconds[a], seconds[b], strict=True)), 3)
             for a, b in (("onnx_fp32", "keras"), ("onnx_int8", "onnx_fp32"), ("onnx_fp16", "onnx_fp32"))
             if a in seconds}
    int8_peak = peak["peak_gflops"] * (4 if "avx512_vnni" in Path("/proc/cpuinfo").read_text() else 2)
    new_km2 = (window / p.subdivisions * params.resize.gsd) ** 2 / 1e6  # new area each window adds to a map
    km2 = {f"{b}_{tta}": round(rate[b] * 3600 * new_km2 / calls / cores, 2)
           for b in rate for tta, calls in (("d4", 8), ("none", 1))}
    fastest = max(rate, key=lambda b: rate[b])
    os.environ["AERIALSEG_CACHE_DIR"] = str(folder / "cache")  # measured afresh, as on a first use
    pick = auto_precision(files["fp32"], window)  # what aerialseg predict's default runs for the fp32 export
    auto = "onnx_int8" if pick.path == files["int8"] else "onnx_fp32"
    return {
        "model": {"encoder": model_params(params, name).encoder, "depth": model_params(params, name).depth,
                  "base_filters": model_params(params, name).base_filters,
                  "max_filters": model_params(params, name).max_filters},
        "windows": len(windows), "windows_per_s": {b: round(r, 1) for b, r in rate.items()}, **ratio,
        "fastest": fastest, "auto": auto, "auto_measured_int8_over_fp32": round(pick.int8_over_fp32 or 0, 3),
        "auto_share_of_fastest": round(statistics.median(min(s[r] for s in seconds.values()) / seconds[auto][r]
                                                         for r in range(repeats)), 3),
        "run_ratios_int8_over_fp32": [round(f / i, 3) for f, i in zip(seconds["onnx_fp32"], seconds["onnx_int8"],
                                                                     strict=True)],
        "argmax_agreement_with_keras": agreement, "fp16": fp16_note,
        "forward_gflop_per_window": round(gflop, 4),
        "gflops": {b: round(r * gflop, 1) for b, r in rate.items()},
        "share_of_fp32_peak": {b: round(r * gflop / peak["peak_gflops"], 3) for b, r in rate.items()},
        "int8_share_of_int8_peak": round(rate["onnx_int8"] * gflop / int8_peak, 3),
        "int8_peak_gops": round(int8_peak, 1), "km2_per_core_hour": km2,
    }, files


def model_params(params, name: str):
    """The default params' architecture, or the seed notebook's: 16 filters doubling without a cap."""
    import dataclasses

    return params.model if name == "default" else dataclasses.replace(params.model, base_filters=16, max_filters=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=256, help="windows per timed pass, default model")
    parser.add_argument("--seed-windows", type=int, default=32, help="windows per timed pass, the seed's model")
    parser.add_argument("--repeats", type=int, default=5)
    add_out_option(parser)
    args = parser.parse_args()

    from aerialseg.core.config.params import load_params
    from aerialseg.core.framework import keras
    from aerialseg.predict.onnx_model import to_layout
    from aerialseg.train.compiling import build_model
    from train import cpu_peak

    params = load_params(ROOT / "params.yaml")
    p = params.predict
    batch, cores = p.batch_size, len(os.sched_getaffinity(0))
    windows = calibration_tiles(params, args.windows)
    if len(windows) < args.windows:
        windows = np.concatenate([windows] * (args.windows // len(windows) + 1))[:args.windows]
    calibration = calibration_tiles(params, params.export.calibration_tiles)
    peak = cpu_peak()
    architectures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, count in (("default", args.windows), ("seed", args.seed_windows)):
            keras.utils.set_random_seed(params.seed)
            model = build_model(model_params(params, name), len(params.classes))
            architectures[name], files = measure(model, name, params, windows[:count], calibration, folder,
                                                 args.repeats, peak)
            if name == "default":
                fp32, int8 = files["fp32"], files["int8"]
                study_windows = windows[:128]
                study: dict[str, float] = {}
                for threads in sorted({1, cores}):
                    sides = {}
                    for precision, path in (("fp32", fp32), ("int8", int8)):
                        sess = session(path, threads)
                        input_name = sess.get_inputs()[0].name
                        run = (lambda s, n: lambda b: s.run(None, {n: to_layout(b, "nhwc255")}))(sess, input_name)
                        for size in (1, 4, 16, 64):
                            sides[f"{precision}_t{threads}_b{size}"] = run
                    sizes = {side: int(side.rsplit("_b", 1)[1]) for side in sides}
                    for side, runs in interleaved(sides, study_windows, sizes, 3).items():
                        study[side] = round(len(study_windows) / statistics.median(runs), 1)
                profile_batch = to_layout(windows[:batch], "nhwc255")
                profile = {"fp32": op_shares(fp32, profile_batch, cores), "int8": op_shares(int8, profile_batch, cores)}
            else:
                seed_profile = {"fp32": op_shares(files["fp32"], to_layout(windows[:batch], "nhwc255"), cores),
                                "int8": op_shares(files["int8"], to_layout(windows[:batch], "nhwc255"), cores)}
            del model
            keras.backend.clear_session()
        widths = conv_width(folder, 3)

    emit({
        "window": p.window, "batch": batch, "repeats": args.repeats, "cores": cores, "cpu": peak,
        "gsd_m": params.resize.gsd, "subdivisions": p.subdivisions, "architectures": architectures,
        "threads_batch_windows_per_s": study, "profile": profile, "seed_profile": seed_profile,
        "conv_width_int8_over_fp32": widths,
    }, args.out)


def _fp16(fp32: Path, out: Path) -> str:
    """The model in fp16 by ONNX Runtime's converter (fp32 inputs and outputs), or why not."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(out))
        session(out, 1)
    except Exception as err:  # what ONNX Runtime refuses is the finding
        out.unlink(missing_ok=True)
        return f"not runnable on the CPU provider: {type(err).__name__}: {str(err)[:200]}"
    return "converted with onnxruntime.transformers.float16 (fp32 inputs/outputs)"


if __name__ == "__main__":
    main()
