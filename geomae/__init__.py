"""geomae: channel-aware masked autoencoders for multispectral satellite imagery.

``import geomae`` registers the ``geomae_vit_*`` models with timm (so that
``timm.create_model("geomae_vit_small_patch16", ...)`` works) and exposes
:func:`load_backbone`.
"""

from geomae import models as models
from geomae import timm_registry as timm_registry  # registers geomae_vit_*
from geomae.convert import load_backbone
from geomae.timm_registry import MODEL_NAMES, create_channel_vit
from geomae.version import __version__

__all__ = ["MODEL_NAMES", "__version__", "create_channel_vit", "load_backbone", "models"]
