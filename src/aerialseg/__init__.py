"""aerialseg: a reproducible DVC pipeline for U-Net segmentation of aerial orthophotos."""

import os

# The one place that quiets TensorFlow's C++ start-up logging (CUDA probing on CPU machines,
# oneDNN notices): it must be set before TensorFlow is first imported, which any aerialseg
# module that needs TensorFlow does only after this package's __init__ has run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Decoders' own complaints about a damaged file (libtiff via OpenCV) would add lines to the
# one-line DataError that names the file; set OPENCV_LOG_LEVEL=INFO to see them.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
