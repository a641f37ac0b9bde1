# Vendored unchanged from the project's shared/bench/ref_blend.py: an independent reference
# implementation of smooth blending, written apart from aerialseg. Do not edit.
"""Independent reference implementation of "predict with smooth blending".

Written from the algorithm description (not from the original source) to
reproduce the *output semantics* of Vooban's
``smooth_tiled_predictions.predict_img_with_smooth_windowing``, i.e.:

* 1-D window: squared-spline window built from a discrete triangular window
  ``t`` (the same values as ``scipy.signal.windows.triang(window_size)``):
  ``2*t**2`` in the outer quarters (index < window_size//4 or
  >= window_size - window_size//4), ``1 - 2*(1-t)**2`` in the middle
  (general ``power`` p: ``(2t)**p/2`` and ``1 - (2(1-t))**p/2``), then divided
  by its mean.  2-D window = outer product of the 1-D window with itself.
* Reflect-padding (``np.pad(mode='reflect')``) of
  ``int(round(window_size * (1 - 1/subdivisions)))`` pixels on every side.
* step = ``int(window_size / subdivisions)``; patch origins
  ``range(0, padded_len - window_size + 1, step)`` on each axis, the grid being
  anchored at (0, 0) of *each* D4-transformed padded image.
* For each of the 8 dihedral transforms of the padded image: predict all
  patches, multiply each by the 2-D window, add into an accumulator, undo the
  transform; final = sum / (subdivisions**2 * n_transforms) (Vooban divides
  each variant by ``subdivisions**2`` and then takes the mean of the 8).
  There is NO division by the accumulated window weight, so pixels that are
  covered by fewer than ``subdivisions`` windows per axis (the last
  ``H % step`` rows / ``W % step`` columns, in half of the D4 variants) come
  out attenuated exactly as in the original.
* Crop the padding away; output is float64, shape (H, W, nb_classes).

Differences from the original that do not change the result (up to float
rounding): a single float64 accumulator is used (the D4 transform is applied to
the accumulator as a numpy view, so "undo" is implicit) instead of 8 full
padded result maps plus a temporary 5-D patch array; ``batch_size`` optionally
splits the pred_func calls (``None`` = one call per D4 variant with all of its
patches, as in the original).

Known behaviour of the original that is deliberately NOT reproduced:
``subdivisions == 1`` makes the original return an empty array
(``padded[0:-0]``); here it returns the un-overlapped tiling.
"""

import numpy as np

__all__ = [
    "triangular_window",
    "spline_window_1d",
    "spline_window_2d",
    "pad_amount",
    "step_size",
    "d4_transforms",
    "predict_smooth_reference",
    "coverage_weight",
]


def triangular_window(n):
    """Discrete triangular window of length n (values of scipy's triang(n))."""
    n = int(n)
    k = np.arange(n)
    d = np.minimum(k, n - 1 - k).astype(np.float64)  # distance to nearest end
    if n % 2 == 0:
        return (2.0 * d + 1.0) / n
    return 2.0 * (d + 1.0) / (n + 1.0)


def spline_window_1d(window_size, power=2):
    """Squared-spline 1-D window normalised to mean 1 (float64, length window_size)."""
    t = triangular_window(window_size)
    q = int(window_size / 4)
    outer = (2.0 * t) ** power / 2.0
    inner = 1.0 - (2.0 * (1.0 - t)) ** power / 2.0
    idx = np.arange(window_size)
    if q > 0:
        is_outer = (idx < q) | (idx >= window_size - q)
    else:  # degenerate tiny windows: the original ends up with the outer part everywhere
        is_outer = np.ones(window_size, dtype=bool)
    w = np.where(is_outer, outer, inner)
    return w / w.mean()


def spline_window_2d(window_size, power=2):
    """2-D window of shape (window_size, window_size, 1), float64."""
    w = spline_window_1d(window_size, power)
    return np.multiply.outer(w, w)[:, :, None]


def pad_amount(window_size, subdivisions):
    return int(round(window_size * (1 - 1.0 / subdivisions)))


def step_size(window_size, subdivisions):
    return int(window_size / subdivisions)


def d4_transforms():
    """The 8 elements of D4 acting on the two leading axes, as view-returning functions.

    Each function maps an array ``a`` (H, W, ...) to a *view* of it; writing into
    the view writes into ``a`` at the corresponding (un-transformed) location.
    """
    def make(k, flip):
        def f(a):
            b = a[:, ::-1] if flip else a
            return np.rot90(b, k=k, axes=(0, 1))
        f.__name__ = "rot%d%s" % (90 * k, "_flip" if flip else "")
        return f
    return [make(k, flip) for flip in (False, True) for k in range(4)]


def _tile_origins(length, window_size, step):
    return list(range(0, length - window_size + 1, step))


def predict_smooth_reference(img, window_size, subdivisions, nb_classes, pred_func,
                             d4=True, batch_size=None, power=2, normalize="vooban"):
    """Smoothly-blended tiled prediction with Vooban's output semantics.

    Args:
        img: array (H, W, C_in). Patches are passed to ``pred_func`` with img's dtype.
        window_size: patch side length given to pred_func.
        subdivisions: overlap factor (2 -> 50% overlap, step = window_size/2).
        nb_classes: number of output channels of pred_func.
        pred_func: callable, (N, ws, ws, C_in) array -> (N, ws, ws, nb_classes).
        d4: average over the 8 dihedral rotations/mirrors (True, as the original)
            or only the identity (False).
        batch_size: None -> one pred_func call per D4 variant with all patches
            (as the original); an int -> at most that many patches per call.
        power: spline power (the original always uses 2).
        normalize: "vooban" -> divide by subdivisions**2 * n_variants (original);
            "weights" -> divide by the accumulated window weight (edge-exact
            variant, NOT the original behaviour; provided for comparison).

    Returns:
        float64 array (H, W, nb_classes).
    """
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError("img must be (H, W, C), got shape %r" % (img.shape,))
    if normalize not in ("vooban", "weights"):
        raise ValueError("normalize must be 'vooban' or 'weights'")
    ws = int(window_size)
    h, w = img.shape[:2]
    aug = pad_amount(ws, subdivisions)
    step = step_size(ws, subdivisions)
    if step < 1:
        raise ValueError("window_size / subdivisions must be >= 1")
    win = spline_window_2d(ws, power)

    padded = np.pad(img, ((aug, aug), (aug, aug), (0, 0)), mode="reflect")
    acc = np.zeros(padded.shape[:2] + (nb_classes,), dtype=np.float64)
    wacc = np.zeros(padded.shape[:2] + (1,), dtype=np.float64) if normalize == "weights" else None

    transforms = d4_transforms() if d4 else d4_transforms()[:1]
    for tf_ in transforms:
        src = tf_(padded)
        dst = tf_(acc)
        wdst = tf_(wacc) if wacc is not None else None
        rows = _tile_origins(src.shape[0], ws, step)
        cols = _tile_origins(src.shape[1], ws, step)
        origins = [(r, c) for r in rows for c in cols]
        chunk = len(origins) if batch_size is None else max(1, int(batch_size))
        for s in range(0, len(origins), chunk):
            part = origins[s:s + chunk]
            batch = np.stack([src[r:r + ws, c:c + ws] for r, c in part])
            out = np.asarray(pred_func(batch))
            if out.shape != (len(part), ws, ws, nb_classes):
                raise ValueError("pred_func returned shape %r, expected %r"
                                 % (out.shape, (len(part), ws, ws, nb_classes)))
            for (r, c), o in zip(part, out, strict=True):
                dst[r:r + ws, c:c + ws] += o * win
                if wdst is not None:
                    wdst[r:r + ws, c:c + ws] += win
            del batch, out

    if normalize == "vooban":
        acc /= float(subdivisions ** 2) * len(transforms)
    else:
        acc /= np.maximum(wacc, 1e-12)
    return acc[aug:aug + h, aug:aug + w]


def coverage_weight(shape_hw, window_size, subdivisions, d4=True):
    """Effective weight map the original applies to a constant prediction of 1.

    1.0 everywhere would mean a perfect partition of unity; values < 1 show
    where Vooban's fixed ``/ subdivisions**2`` normalisation under-weights.
    """
    h, w = shape_hw
    dummy = np.zeros((h, w, 1), dtype=np.float32)
    ones = lambda x: np.ones(x.shape[:3] + (1,), dtype=np.float32)  # noqa: E731
    return predict_smooth_reference(dummy, window_size, subdivisions, 1, ones, d4=d4)[..., 0]
