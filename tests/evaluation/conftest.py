"""Fixtures of the band-benchmark tests: generated datasets, tiny backbones, configs."""

import csv
from pathlib import Path

import pytest
import yaml

#: A tiny MAE whose converted encoder the benchmark tests start from.
MAE_ARCH = {
    "groups": "satmae",
    "size": "tiny",
    "img_size": 32,
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "decoder_embed_dim": 16,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}
#: The same encoder as a random-init `arch` (backbone: null).
TINY_ARCH = {
    "size": "tiny",
    "groups": "satmae",
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
}


def make_backbone(folder: Path, bands: list[str], stats_of, *, seed: int = 1234) -> Path:
    """A tiny ChannelMAE over `bands`, saved as an MAETask-style checkpoint and converted."""
    import torch

    from geomae.convert import export_weights
    from geomae.metadata import GeoMetadata
    from geomae.models import ChannelMAE
    from geomae.stats import BandStat, BandStats

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # not a benchmark seed: random_init must not rebuild these weights
    mae = ChannelMAE.build(bands=bands, **MAE_ARCH)
    stats = BandStats({b: BandStat(float(stats_of(b)), 20.0) for b in bands})
    meta = GeoMetadata(
        bands=bands,
        groups=mae.encoder.groups,
        stats=stats,
        patch_size=MAE_ARCH["patch_size"],
        img_size=MAE_ARCH["img_size"],
        arch=mae.arch_kwargs(),
        offset=0.0,
        extra={"task": "MAETask"},
    )
    ckpt = folder / "mae.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in mae.state_dict().items()},
            "geomae": meta.to_dict(),
        },
        ckpt,
    )
    weights = folder / "weights.safetensors"
    export_weights(ckpt, weights)
    return weights


@pytest.fixture(scope="session")
def backbone_all(tmp_path_factory, eurosat_data) -> Path:
    """A converted 12-band backbone, stats = the EuroSAT fixture's band values, std 20."""
    from geomae.bands import L2A_BANDS

    return make_backbone(tmp_path_factory.mktemp("bb_all"), list(L2A_BANDS), eurosat_data.value_of)


@pytest.fixture(scope="session")
def backbone_rgbn(tmp_path_factory, eurosat_data) -> Path:
    """A converted backbone trained on rgbn only."""
    return make_backbone(
        tmp_path_factory.mktemp("bb_rgbn"), ["B02", "B03", "B04", "B08"], eurosat_data.value_of
    )


def write_config(path: Path, **cfg) -> Path:
    """Write a benchmark YAML (keys as given) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def eurosat_config(root: Path, out: Path, *, backbone, **extra) -> dict:
    """A small EuroSAT benchmark configuration (CPU)."""
    cfg = {
        "backbone": None if backbone is None else str(backbone),
        "data": {
            "class_path": "geomae.datamodules.EuroSATDataModule",
            "init_args": {"root": str(root), "batch_size": 8},
        },
        "band_sets": {"rgb": "rgb", "rgbn": "rgbn", "custom": ["B04", "B08", "B11"]},
        "protocols": ["linear", "stats_baseline"],
        "seeds": [0, 1],
        "output": str(out),
        "device": "cpu",
        "linear": {"max_iter": 200},
    }
    cfg.update(extra)
    return cfg


def landcover_config(paths: dict, out: Path, *, backbone, **extra) -> dict:
    """A small segmentation benchmark over the landcover fixture (CPU)."""
    cfg = {
        "backbone": None if backbone is None else str(backbone),
        "data": {
            "class_path": "geomae.datamodules.LandCoverSegmentationDataModule",
            "init_args": {
                "paths": str(paths["scene"]),
                "label_paths": str(paths["vector"]),
                "classes": ["farm", "forest", "water"],
                "patch_size": 16,
                "batch_size": 4,
                "length": 8,
            },
        },
        "band_sets": {"rgb": "rgb", "all": "all"},
        "protocols": ["linear", "random_init", "stats_baseline"],
        "seeds": [0, 1],
        "output": str(out),
        "device": "cpu",
        "linear": {"max_iter": 200, "max_train_pixels": 2000},
    }
    cfg.update(extra)
    return cfg


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a results.csv."""
    with path.open() as f:
        return list(csv.DictReader(f))


def cells_of(rows: list[dict[str, str]]) -> set[tuple[str, str, int, str]]:
    """(band_set, protocol, seed, metric) of every row."""
    return {(r["band_set"], r["protocol"], int(r["seed"]), r["metric"]) for r in rows}


class Helpers:
    """Helpers handed to tests as the `bench` fixture."""

    TINY_ARCH = TINY_ARCH
    read_csv = staticmethod(read_csv)
    cells_of = staticmethod(cells_of)
    write_config = staticmethod(write_config)
    eurosat_config = staticmethod(eurosat_config)
    landcover_config = staticmethod(landcover_config)


@pytest.fixture(scope="session")
def bench() -> type[Helpers]:
    return Helpers


@pytest.fixture(scope="session")
def backbone_landcover(tmp_path_factory, landcover_data) -> Path:
    """A converted 12-band backbone whose stats are the landcover fixture's band values."""
    from geomae.bands import L2A_BANDS

    return make_backbone(
        tmp_path_factory.mktemp("bb_landcover"), list(L2A_BANDS), landcover_data.value_of
    )
