"""EncoderArch / MAEArch: one resolved architecture for every builder."""

import json

import pytest

from geomae.errors import ConfigError
from geomae.models import ChannelMAE, ChannelViT
from geomae.models.arch import EncoderArch, MAEArch


def test_resolve_applies_preset_overrides_groups_and_wavelengths():
    arch = EncoderArch.resolve(
        bands=["B02", "B03", "B04", "B08"], groups="satmae", size="small", depth=2, img_size=32
    )
    assert (arch.embed_dim, arch.depth, arch.num_heads) == (384, 2, 6)
    assert arch.bands == ("B02", "B03", "B04", "B08") and arch.img_size == (32, 32)
    assert len(arch.groups) == len(arch.group_wavelengths)
    # frozen: a model cannot drift from the description it was built from
    with pytest.raises(AttributeError):
        arch.depth = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embed_dim": 30, "num_heads": 4}, "not divisible by num_heads"),
        ({"img_size": 30}, "divisible by the patch size"),
        ({"size": "gigantic"}, "unknown model size"),
    ],
)
def test_resolve_rejects_inconsistent_settings(changes, message):
    settings = {"bands": "rgb", "size": "tiny", "img_size": 32, "patch_size": 8, **changes}
    with pytest.raises(ConfigError, match=message):
        EncoderArch.resolve(**settings)


def test_no_preset_needs_every_width():
    with pytest.raises(ConfigError, match=r"no size preset and no \['depth'\]"):
        EncoderArch.resolve(bands="rgb", size=None, embed_dim=32, num_heads=2)


def test_vit_round_trips_through_its_arch():
    vit = ChannelViT(
        bands="rgbn", groups="satmae", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2
    )
    arch = vit.arch
    clone = ChannelViT.from_arch(arch)
    assert clone.arch == arch
    assert set(clone.state_dict()) == set(vit.state_dict())
    stored = json.loads(json.dumps(arch.to_dict()))
    again = EncoderArch.from_dict(
        stored, bands=arch.bands, groups=arch.groups, img_size=32, patch_size=8
    )
    assert again == arch


def test_mae_arch_dict_is_the_metadata_format_and_reads_back_as_encoder():
    mae = ChannelMAE.build(
        bands="rgbn",
        size="tiny",
        embed_dim=32,
        depth=2,
        num_heads=2,
        img_size=32,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        masking="independent",
    )
    stored = json.loads(json.dumps(mae.arch_kwargs()))
    assert stored["size"] == "tiny" and stored["masking"] == "independent"
    assert MAEArch.resolve(**stored) == mae.arch
    # the converter reads the encoder out of an MAE description
    enc = EncoderArch.from_dict(
        stored, bands=stored["bands"], groups=stored["groups"], img_size=32, patch_size=8
    )
    assert enc.replace(size=None) == mae.encoder.arch


def test_mae_arch_rejects_unknown_settings_and_bad_decoder():
    with pytest.raises(ConfigError, match=r"unknown MAE architecture setting\(s\) \['widht'\]"):
        MAEArch.resolve(bands="rgb", widht=3)
    with pytest.raises(ConfigError, match="decoder embed_dim=30 is not divisible"):
        MAEArch.resolve(bands="rgb", decoder_embed_dim=30, decoder_num_heads=4)
    with pytest.raises(ConfigError, match="unknown masking strategy"):
        MAEArch.resolve(bands="rgb", masking="random")
