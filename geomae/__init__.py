"""geomae: channel-aware masked autoencoders for multispectral satellite imagery.

``import geomae`` registers the ``geomae_vit_*`` models with timm (so that
``timm.create_model("geomae_vit_small_patch16", ...)`` works) and exposes
:func:`load_backbone`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geomae")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from geomae import models as models  # noqa: E402
from geomae import timm_registry as timm_registry  # noqa: E402  (registers geomae_vit_*)
from geomae.convert import load_backbone  # noqa: E402
from geomae.timm_registry import MODEL_NAMES, create_channel_vit  # noqa: E402

__all__ = ["MODEL_NAMES", "__version__", "create_channel_vit", "load_backbone", "models"]
