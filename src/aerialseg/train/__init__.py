"""Training: the tile store's reader, the input pipeline, models and encoders, losses,
schedules, checkpoints, the resumable fit loop and distribution.
"""
