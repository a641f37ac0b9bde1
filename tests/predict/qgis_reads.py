"""Run by /usr/bin/python3 with headless QGIS (python3-qgis): how QGIS itself shows a folder's class
map (map.tif) and its polygons (map.gpkg), printed as one JSON object. Not a test module: the test
runs it in QGIS's own interpreter, apart from aerialseg's environment."""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer  # noqa: E402

app = QgsApplication([], False)
app.initQgis()
folder = sys.argv[1]
raster = QgsRasterLayer(f"{folder}/map.tif", "map")
vector = QgsVectorLayer(f"{folder}/map.gpkg|layername=classes", "classes", "ogr")
shown = {"raster_valid": raster.isValid(), "raster_renderer": raster.renderer().type(),
         "vector_valid": vector.isValid(), "vector_renderer": vector.renderer().type()}
if shown["raster_renderer"] == "paletted":
    shown["raster_classes"] = [[int(c.value), c.label, c.color.name()] for c in raster.renderer().classes()]
if shown["vector_renderer"] == "categorizedSymbol":
    shown["vector_attribute"] = vector.renderer().classAttribute()
    shown["vector_classes"] = [[str(c.value()), c.label(), c.symbol().color().name()]
                               for c in vector.renderer().categories()]
print(json.dumps(shown), flush=True)
del raster, vector  # layers outlive the application otherwise, and QGIS crashes on the way out
app.exitQgis()
