"""Fixtures of the importer tests: tiny generated state dicts in each source's key layout."""

import pytest
import timm
import torch
from importer_helpers import L1C_13, TINY_TIMM, perturbed
from satmae_reference import make_satmae_state, save_satmae_checkpoint

import geomae  # noqa: F401  (registers the geomae timm models)


@pytest.fixture(scope="session")
def vit_tiny():
    """timm vit_tiny_patch16_224 at 32 px over 13 bands, every weight perturbed."""
    model = timm.create_model("vit_tiny_patch16_224", in_chans=13, num_classes=0, img_size=32)
    return perturbed(model, 0)


@pytest.fixture(scope="session")
def tiny_timm():
    """A 2-block, width-32 timm ViT over 13 bands, with a 10-class head (to be dropped)."""
    model = timm.create_model("vit_tiny_patch16_224", in_chans=13, num_classes=10, **TINY_TIMM)
    return perturbed(model, 1)


@pytest.fixture(scope="session")
def tiny_timm_file(tiny_timm, tmp_path_factory):
    """``tiny_timm``'s state dict saved plainly as .pth."""
    path = tmp_path_factory.mktemp("timm") / "tiny.pth"
    torch.save(tiny_timm.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def x13():
    """(2, 13, 32, 32) input batch."""
    return torch.randn(2, 13, 32, 32, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="session")
def satmae_state():
    """A SatMAE MAE checkpoint's state dict (encoder + decoder), D=64, 3 groups."""
    return make_satmae_state(seed=3)


@pytest.fixture(scope="session")
def satmae_file(satmae_state, tmp_path_factory):
    """``satmae_state`` saved the way SatMAE's training script saves checkpoints."""
    return save_satmae_checkpoint(satmae_state, tmp_path_factory.mktemp("satmae") / "ckpt.pth")


@pytest.fixture(scope="session")
def x10():
    """(2, 10, 32, 32) input batch in SatMAE's band order."""
    return torch.randn(2, 10, 32, 32, generator=torch.Generator().manual_seed(8))


@pytest.fixture(scope="session")
def eurosat_root(tmp_path_factory):
    """A generated EuroSAT MS tree (tests/data/eurosat/data.py)."""
    import importlib.util
    from pathlib import Path

    data_py = Path(__file__).parents[1] / "data" / "eurosat" / "data.py"
    spec = importlib.util.spec_from_file_location("eurosat_fixture_importers", data_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("eurosat")
    module.write_eurosat(root)
    return root


@pytest.fixture(scope="session")
def ssl4eo_like(tiny_timm_file, tmp_path_factory):
    """The tiny timm ViT imported like SSL4EO-S12 weights: 13 L1C bands, x / 10000."""
    from geomae.importers import ImportOptions, import_weights

    out = tmp_path_factory.mktemp("ssl4eo_like") / "l1c.safetensors"
    options = ImportOptions(bands=L1C_13, normalization="scale:10000", level="L1C", num_heads=2)
    return import_weights("timm-vit", tiny_timm_file, out, options)


@pytest.fixture(scope="session")
def l2a_like(tiny_timm_file, tmp_path_factory):
    """The same weights declared L2A."""
    from geomae.importers import ImportOptions, import_weights

    out = tmp_path_factory.mktemp("l2a_like") / "l2a.safetensors"
    options = ImportOptions(bands=L1C_13, normalization="scale:10000", level="L2A", num_heads=2)
    return import_weights("timm-vit", tiny_timm_file, out, options)
