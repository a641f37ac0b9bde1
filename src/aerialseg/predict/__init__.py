"""Prediction: smooth blending, checkpoints and ONNX backends, the prediction cache, one
orthophoto into GIS outputs, batches of many, and export.
"""
