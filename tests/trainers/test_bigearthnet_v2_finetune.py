"""Fine-tuning through the real CLI and configs/multilabel_bigearthnet_v2.yaml on BENv2 fixtures."""

import importlib.util
from pathlib import Path

import pytest
import torch

from geomae.main import main


@pytest.fixture(scope="module")
def benv2_root(tmp_path_factory) -> Path:
    path = Path(__file__).parents[1] / "data" / "bigearthnet_v2" / "data.py"
    spec = importlib.util.spec_from_file_location("bigearthnet_v2_fixture_ft", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("benv2_ft")
    module.write_benv2(root, form="lmdb", reference_maps=False)
    return root


def test_multilabel_finetune_on_the_lmdb_form(benv2_root, tmp_path, ft):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "multilabel_bigearthnet_v2.yaml",
        out,
        data={"root": str(benv2_root), "batch_size": 2, "form": "lmdb"},
        model={"backbone": None, "arch": {**ft.TINY_ARCH, "patch_size": 8}, "img_size": None},
        trainer={"limit_train_batches": 1},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    metrics = ft.read_metrics(out)
    for key in ("train/loss", "val/loss", "val/mAP_micro", "val/mAP_macro"):
        ft.assert_finite(metrics[key])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    extra = ckpt["geomae"]["extra"]
    assert ckpt["geomae"]["img_size"] == 120 and extra["num_classes"] == 19
    assert extra["classification"] == "multilabel" and extra["class_names"][0] == "Urban fabric"
    assert ckpt["geomae"]["offset"] == 0.0
