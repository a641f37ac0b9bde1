"""STAC Items as inputs: the raster asset of an Item (a JSON file or URL) that a model can read.

pystac reads the Item; the asset is the one named ``visual`` (STAC's true-colour convention),
else the first with the ``data`` role, else the first GeoTIFF/COG. Its href, made absolute
against the Item's location, is then read like any raster: a local file, or over HTTP range
reads when it is a URL.
"""

from __future__ import annotations

from aerialseg.core.errors import DataError, one_line_reason

RASTER_TYPES = ("image/tiff", "image/vnd.stac.geotiff", "application/x-geotiff")


def item_asset(href: str) -> str:
    """The href of the raster asset of the STAC Item at ``href``; DataError naming the Item."""
    import pystac

    try:
        item = pystac.Item.from_file(href)
    except Exception as err:  # pystac reports missing files, bad JSON and non-Items in several ways
        raise DataError(f"{href}: not a readable STAC Item ({one_line_reason(err)})") from None
    assets = item.assets
    chosen = assets.get("visual") or next(
        (a for a in assets.values() if "data" in (a.roles or [])), None) or next(
        (a for a in assets.values() if (a.media_type or "").split(";")[0] in RASTER_TYPES), None)
    if chosen is None:
        raise DataError(f"{href}: STAC Item {item.id} has no visual, data or GeoTIFF asset "
                        f"(assets: {', '.join(assets) or 'none'})")
    return str(chosen.get_absolute_href() or chosen.href)
