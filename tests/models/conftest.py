import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.models import ChannelMAE, ChannelViT

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
TINY_DECODER = {"decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2}


@pytest.fixture
def image12():
    """(2, 12, 32, 32) normalized-looking tile batch in L2A band order."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 12, 32, 32, generator=g)


@pytest.fixture
def make_vit():
    """Factory of tiny ChannelViTs (width 32, depth 2) in eval mode."""

    def make(groups="satmae", bands=L2A_BANDS, img_size=32, patch_size=8, **kw):
        torch.manual_seed(0)
        params = {**TINY, **kw}
        return ChannelViT(
            bands=list(bands), groups=groups, img_size=img_size, patch_size=patch_size, **params
        ).eval()

    return make


@pytest.fixture
def make_mae():
    """Factory of tiny ChannelMAEs (12 bands, 32 px tiles, patch 8 -> L = 16)."""

    def make(**overrides):
        torch.manual_seed(0)
        kwargs = {
            "bands": list(L2A_BANDS),
            "groups": "satmae",
            "img_size": 32,
            "patch_size": 8,
            **TINY,
            **TINY_DECODER,
        }
        kwargs.update(overrides)
        return ChannelMAE.build(**kwargs)

    return make
