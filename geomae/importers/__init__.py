"""Import published Sentinel-2 ViT weights with their band metadata (``geomae import``).

See :mod:`geomae.importers.api` for the sources and the order of checks,
:mod:`geomae.importers.timm_vit`, :mod:`geomae.importers.satmae` and
:mod:`geomae.importers.presets` for each source's facts and mapping.
"""

from geomae.importers.api import (
    SOURCES,
    ImportOptions,
    PreparedImport,
    import_weights,
    prepare_import,
)
from geomae.importers.presets import PRESETS, Preset, get_preset

__all__ = [
    "PRESETS",
    "SOURCES",
    "ImportOptions",
    "Preset",
    "PreparedImport",
    "get_preset",
    "import_weights",
    "prepare_import",
]
