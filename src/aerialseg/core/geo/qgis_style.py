"""QGIS styles for the maps aerialseg writes, so that a map shows its classes wherever it is copied.

A class map's colours live in its GeoTIFF colour table and its class names in GDAL's ``.aux.xml``;
a map copied without that sidecar (or a GeoPackage of its polygons) would show numbers. QGIS
looks, when it adds a layer, for a style of the same name: ``NAME.qml`` beside a file, or the
``layer_styles`` table inside a GeoPackage (its default style, ``useAsDefault``). ``raster_qml``
is a paletted renderer (one entry per class: value, colour, name), ``polygons_qml`` a
categorised renderer on the ``class`` attribute; both in the form QGIS 3 itself saves.
``LAYER_STYLES_SCHEMA`` is the table QGIS creates in a GeoPackage to keep styles.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from aerialseg.core.classes import ClassTable

_HEADER = ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
           '<qgis version="3.22.0" styleCategories="Symbology">\n')

# the columns QGIS gives the layer_styles table of a GeoPackage (QgsOgrProviderUtils), as Fiona types
LAYER_STYLES_SCHEMA = {"geometry": None, "properties": {
    "f_table_catalog": "str", "f_table_schema": "str", "f_table_name": "str", "f_geometry_column": "str",
    "styleName": "str", "styleQML": "str", "styleSLD": "str", "useAsDefault": "bool", "description": "str",
    "owner": "str", "ui": "str", "update_time": "datetime"}}


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def raster_qml(classes: ClassTable) -> str:
    """A paletted-renderer style for a one-band class map: each class's value, colour and name."""
    entries = "".join(f'        <paletteEntry value="{i}" color="{_hex(colour)}" alpha="255" '
                      f"label={quoteattr(name)}/>\n"
                      for i, (name, colour) in enumerate(zip(classes.names, classes.colours, strict=True)))
    return (_HEADER + "  <pipe>\n"
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            "      <rasterTransparency/>\n      <colorPalette>\n" + entries + "      </colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def polygons_qml(classes: ClassTable, attribute: str = "class") -> str:
    """A categorised-renderer style for class polygons: one category per class value of ``attribute``,
    filled in the class's colour, labelled with its name."""
    categories, symbols = [], []
    for i, (name, colour) in enumerate(zip(classes.names, classes.colours, strict=True)):
        rgba = "{},{},{},255".format(*colour)
        categories.append(f'      <category value="{i}" symbol="{i}" label={quoteattr(name)} render="true"/>\n')
        symbols.append(
            f'      <symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
            '        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
            '          <Option type="Map">\n'
            f'            <Option name="color" type="QString" value="{rgba}"/>\n'
            '            <Option name="outline_style" type="QString" value="no"/>\n'
            '            <Option name="style" type="QString" value="solid"/>\n'
            '          </Option>\n'
            f'          <prop k="color" v="{rgba}"/>\n          <prop k="outline_style" v="no"/>\n'
            '          <prop k="style" v="solid"/>\n'
            "        </layer>\n      </symbol>\n")
    return (_HEADER + f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(attribute)} forceraster="0" '
            'symbollevels="0" enableorderby="0">\n    <categories>\n' + "".join(categories) + "    </categories>\n"
            "    <symbols>\n" + "".join(symbols) + "    </symbols>\n  </renderer-v2>\n</qgis>\n")
