"""The shared core every phase builds on: errors, classes, params, file names, atomic and
georeferenced I/O, code fingerprints, the one TensorFlow/Keras gateway and the stage runner.
"""
