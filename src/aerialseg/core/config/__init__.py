"""What the params say: the declarations every key is read through, and the params of each section.

``declarations`` states each key's type and bounds once; ``params`` reads ``params.yaml`` into
typed sections (``data_params`` the data sources', ``class_params`` the class table's). Nothing
here reads a raster or a model: only settings.
"""
