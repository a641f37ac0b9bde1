"""Where pixels are on the ground: georeferenced rasters in and out, world files, pixel sizes.

``geoio`` reads and writes GeoTIFFs (class maps, probabilities, their colour tables),
``orthophoto`` opens a user's image with its grid and nodata, ``pixel_size`` measures a grid's
ground sample distance, ``worldfile`` writes the scenes' ``.tfw``. Nothing here reads params.
"""
