"""TensorFlow and Keras, imported once, without CUDA probing noise on a CPU user's terminal.

Importing TensorFlow on a machine without a GPU prints several lines to the process's
standard error from C++ (``Could not find cuda drivers``, ``failed call to cuInit``) that
no logging setting silences. They would bury the one line a stage or the CLI prints. The
import and the first device query run with standard error captured; the capture is shown
when a GPU is found (its messages may matter there) or when the import fails, and dropped
otherwise. Every module that needs TensorFlow or Keras takes them from here.
"""

from __future__ import annotations

from typing import Any

from aerialseg.core.native_stderr import Captured, captured_stderr


def _import_quietly() -> Any:
    said = Captured()
    try:
        with captured_stderr() as said:
            import tensorflow

            found_gpu = bool(tensorflow.config.list_physical_devices("GPU"))
    except BaseException:
        said.replay()
        raise
    if found_gpu:
        said.replay()
    return tensorflow


tf = _import_quietly()

import keras  # noqa: E402  (after TensorFlow, which Keras uses as its backend)

__all__ = ["keras", "tf"]
