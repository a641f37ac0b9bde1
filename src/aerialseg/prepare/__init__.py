"""Data preparation (download -> resize -> encode -> tile): sources, archives, preprocessing and
the tile store's writer. Runs no model code.
"""
