"""ClassificationTask through the real CLI on generated EuroSAT / BigEarthNet fixtures."""

import pytest
import torch

from geomae.backbone import BuiltBackbone, push_stats
from geomae.bands import L2A_BANDS
from geomae.convert import load_backbone
from geomae.datamodules import EuroSATDataModule
from geomae.main import main
from geomae.metadata import GeoMetadata
from geomae.models import ChannelViT
from geomae.optim import param_groups, timm_layer_ids
from geomae.stats import BandStat, BandStats
from geomae.trainers import ClassificationTask


def _eurosat_stats(eurosat_data) -> BandStats:
    return BandStats({b: BandStat(float(eurosat_data.value_of(b)), 20.0) for b in L2A_BANDS})


def test_linear_probe_random_init_fit_then_test(eurosat_root, eurosat_data, tmp_path, ft):
    out = tmp_path / "run"
    stats = tmp_path / "stats.yaml"
    _eurosat_stats(eurosat_data).save(stats)
    cfg = ft.tiny_config(
        "linear_probe_eurosat.yaml",
        out,
        data={"root": str(eurosat_root), "batch_size": 4, "stats": str(stats)},
        model={"backbone": None, "arch": ft.TINY_ARCH},
    )
    assert main(["fit", "--config", str(cfg)]) == 0

    metrics = ft.read_metrics(out)
    assert len(metrics["train/loss"]) == 2
    for key in ("train/loss", "val/loss", "val/OA", "val/F1_macro"):
        ft.assert_finite(metrics[key])
    assert 0.0 <= metrics["val/OA"][0] <= 1.0 and 0.0 <= metrics["val/F1_macro"][0] <= 1.0

    ckpt_path = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.bands == list(L2A_BANDS) and meta.img_size == 64 and meta.patch_size == 16
    assert meta.stats.bands["B03"] == BandStat(float(eurosat_data.value_of("B03")), 20.0)
    assert meta.extra["mode"] == "linear" and meta.extra["classification"] == "multiclass"
    assert meta.extra["class_names"][0] == "AnnualCrop" and meta.extra["num_classes"] == 10
    assert meta.arch["embed_dim"] == 32 and meta.arch["depth"] == 2
    assert ckpt["hyper_parameters"]["num_classes"] == 10
    assert ckpt["hyper_parameters"]["task"] == "multiclass"
    assert "head.norm.running_mean" in ckpt["state_dict"]  # the linear-probe BatchNorm

    assert main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt_path)]) == 0
    metrics = ft.read_metrics(out)
    for key in ("test/loss", "test/OA", "test/F1_macro"):
        ft.assert_finite(metrics[key])


def test_finetune_layer_decay_groups(eurosat_root, ft):
    task = ClassificationTask(backbone=None, arch=ft.TINY_ARCH, mode="finetune", layer_decay=0.5)
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    dm.setup("fit")
    task.setup_from_datamodule(dm)
    assert task.backbone.bands == ["B02", "B03", "B04"]
    # timm's grouping of the backbone; the head (outside it) shares the top layer
    layers = timm_layer_ids(task.backbone, prefix="backbone.")
    ids = {n: layers.get(n, 3) for n, _ in task.named_parameters()}
    assert set(layers.values()) == {0, 1, 2, 3}
    assert ids["backbone.patch_embed.projs.0.weight"] == 0
    assert ids["backbone.cls_token"] == 0 and ids["backbone.group_embed"] == 0
    assert ids["backbone.blocks.0.attn.qkv.weight"] == 1
    assert ids["backbone.blocks.1.mlp.fc2.bias"] == 2
    assert ids["backbone.norm.weight"] == 3 and ids["head.weight"] == 3
    groups = param_groups(
        task.named_parameters(),
        weight_decay=0.05,
        layer_id=lambda name: layers.get(name, 3),
        layer_decay=0.5,
        num_layers=2,
    )
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(task.named_parameters())
    assert scale_of[id(params["backbone.patch_embed.projs.0.weight"])] == 0.125
    assert scale_of[id(params["backbone.blocks.0.attn.qkv.weight"])] == 0.25
    assert scale_of[id(params["head.weight"])] == 1.0
    assert decay_of[id(params["head.weight"])] == 0.05 and decay_of[id(params["head.bias"])] == 0.0


def test_multilabel_bigearthnet_native_120px(ben_root, tmp_path, ft):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "multilabel_bigearthnet.yaml",
        out,
        data={"root": str(ben_root), "batch_size": 2},
        model={"backbone": None, "arch": {**ft.TINY_ARCH, "patch_size": 8}, "img_size": None},
        trainer={"limit_train_batches": 1},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    metrics = ft.read_metrics(out)
    for key in ("train/loss", "val/loss", "val/mAP_micro", "val/mAP_macro"):
        ft.assert_finite(metrics[key])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["geomae"]["img_size"] == 120 and ckpt["geomae"]["extra"]["num_classes"] == 19
    assert ckpt["geomae"]["extra"]["classification"] == "multilabel"


def test_multilabel_resizes_tiles_to_img_size(ben_root, tmp_path, ft):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "multilabel_bigearthnet.yaml",
        out,
        data={"root": str(ben_root), "batch_size": 2},
        model={"backbone": None, "arch": ft.TINY_ARCH, "mode": "linear"},  # patch 16, img 128
        trainer={"limit_train_batches": 1},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    ft.assert_finite(ft.read_metrics(out)["val/mAP_macro"])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["geomae"]["img_size"] == 128


def test_tile_size_not_divisible_by_patch_fails_before_training(ben_root, tmp_path, ft, capsys):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "multilabel_bigearthnet.yaml",
        out,
        data={"root": str(ben_root), "batch_size": 2},
        model={"backbone": None, "arch": ft.TINY_ARCH, "img_size": None},
    )
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "120-px tiles are not divisible by the patch size 16" in err
    assert "img_size" in err and "e.g. 128" in err
    assert not list(out.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"backbone": None, "arch": {"size": "tiny", "bands": "rgb"}},
            "unknown arch key(s) ['bands']",
        ),
        ({"backbone": "weights.safetensors", "arch": {"size": "tiny"}}, "set arch to null"),
        ({"backbone": None, "arch": {"size": "tiny", "depth": 1, "embed_dim": 30}}, "divisible"),
        (
            {"backbone": None, "arch": {"size": "tiny"}, "task": "multilabel"},
            "is a 'multiclass' DataModule",
        ),
    ],
)
def test_bad_model_options_fail_before_training(eurosat_root, tmp_path, ft, capsys, model, message):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "finetune_eurosat.yaml", out, data={"root": str(eurosat_root), "batch_size": 4}, model=model
    )
    assert main(["fit", "--config", str(cfg)]) == 2
    assert message in capsys.readouterr().err
    assert not list(out.rglob("*.ckpt"))


def test_label_smoothing_is_for_multiclass_only(ben_root, tmp_path, ft, capsys):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "multilabel_bigearthnet.yaml",
        out,
        data={"root": str(ben_root), "batch_size": 2},
        model={"backbone": None, "arch": ft.TINY_ARCH, "label_smoothing": 0.1},
    )
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "label_smoothing applies to multiclass tasks only" in capsys.readouterr().err


class _RecordingDataModule:
    """Just what push_stats talks to: set_stats, offset and the processing level."""

    processing_level = None
    allow_level_mismatch = False

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.calls = []

    def set_stats(self, stats, *, source):
        self.calls.append((stats, source))


def test_push_stats_hands_over_the_backbone_stats_and_logs_an_offset_mismatch(caplog):
    vit = ChannelViT(
        bands=["B02", "B03"], img_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2
    )
    stats = BandStats({"B02": BandStat(1200.0, 300.0), "B03": BandStat(1300.0, 310.0)})
    built = BuiltBackbone(model=vit, stats=stats, offset=1000.0, source="backbone w.safetensors")
    dm = _RecordingDataModule(offset=0.0)
    with caplog.at_level("WARNING", logger="geomae.backbone"):
        push_stats(dm, built)
    assert dm.calls == [(stats, "backbone w.safetensors")]
    assert (
        "subtracts offset 0 from raw DN while the pretraining data of backbone w.safetensors used 1000"
        in caplog.text
    )

    caplog.clear()
    push_stats(_RecordingDataModule(offset=1000.0), built)
    random = BuiltBackbone(model=vit, stats=None, offset=None, source="random init")
    untouched = _RecordingDataModule(offset=0.0)
    push_stats(untouched, random)
    assert untouched.calls == [] and "offset" not in caplog.text


# ---- from converted MAE weights ---------------------------------------------------------
def _backbone_state(ckpt: dict) -> dict[str, torch.Tensor]:
    return {
        k.removeprefix("backbone."): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("backbone.")
    }


def _fit_from(weights, eurosat_root, out, ft, *, mode, bands="all", backbone="weights", **model):
    cfg = ft.tiny_config(
        "finetune_eurosat.yaml" if mode == "finetune" else "linear_probe_eurosat.yaml",
        out,
        data={"root": str(eurosat_root), "batch_size": 4, "bands": bands},
        model={"backbone": str(weights[backbone]), **model},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_linear_probe_keeps_the_pretrained_backbone_and_its_stats(
    pretrained, eurosat_root, tmp_path, ft
):
    ckpt = _fit_from(pretrained, eurosat_root, tmp_path / "run", ft, mode="linear")
    state = _backbone_state(ckpt)
    assert set(state) == set(pretrained["encoder"])
    for key, value in pretrained["encoder"].items():
        assert torch.equal(state[key], value), key
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.stats.bands == pretrained["stats"].bands  # the DataModule took the backbone's stats
    assert meta.img_size == 64 and meta.patch_size == 8
    assert "weights.safetensors" in meta.extra["backbone_source"]
    ft.assert_finite(ft.read_metrics(tmp_path / "run")["val/OA"])


def test_rgb_finetune_from_12_band_weights(pretrained, eurosat_root, tmp_path, ft, caplog):
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="geomae.trainers.finetune"):
        ckpt = _fit_from(
            pretrained,
            eurosat_root,
            out,
            ft,
            mode="finetune",
            bands="rgb",
            lr=None,  # the config gives lr; base_lr instead applies the batch scaling
            base_lr=2.56e-2,
            global_pool="token",
        )
    # batch 4 x world 1 x accumulate 1 -> lr = 2.56e-2 * 4 / 256
    assert (
        "lr 0.0004 = base_lr 0.0256 x effective batch 4 / 256, weight decay 0.05, layer decay 0.75"
        in caplog.text
    )
    ft.assert_finite(ft.read_metrics(out)["val/F1_macro"])
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.bands == ["B02", "B03", "B04"] and meta.groups == [["B02", "B03", "B04"]]
    assert list(meta.stats.bands) == ["B02", "B03", "B04"]
    state = _backbone_state(ckpt)
    assert state["patch_embed.projs.0.weight"].shape == (32, 3, 8, 8)
    selected = load_backbone(pretrained["weights"]).select_bands(["B02", "B03", "B04"]).state_dict()
    changed = [k for k, v in selected.items() if not torch.equal(state[k], v)]
    assert "blocks.0.attn.qkv.weight" in changed and "patch_embed.projs.0.weight" in changed

    # the checkpoint alone rebuilds the classifier, and hands its stats to a DataModule
    task = ClassificationTask.load_from_checkpoint(
        out / "checkpoints" / "last.ckpt", weights_only=True
    ).eval()
    assert task.backbone.global_pool == "token" and task.class_names[-1] == "SeaLake"
    assert all(torch.equal(v, state[k]) for k, v in task.backbone.state_dict().items())
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=4)
    dm.setup("test")
    task.setup_from_datamodule(dm)
    assert dm.stats.bands == pretrained["stats"].select(["B02", "B03", "B04"]).bands
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    probs = task.predict_step(batch, 0)
    assert probs.shape == (4, 10)
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)


def test_linear_probe_on_a_band_subset_keeps_the_selected_weights(
    pretrained, eurosat_root, tmp_path, ft
):
    ckpt = _fit_from(
        pretrained, eurosat_root, tmp_path / "run", ft, mode="linear", bands="B03,B04,B8A"
    )
    expected = load_backbone(pretrained["weights"], bands="B03,B04,B8A").state_dict()
    state = _backbone_state(ckpt)
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert ckpt["geomae"]["bands"] == ["B03", "B04", "B8A"]
    assert ckpt["geomae"]["groups"] == [["B03", "B04"], ["B8A"]]  # two of the four satmae groups


def test_mae_checkpoint_as_backbone_and_random_init_of_its_architecture(
    pretrained, eurosat_root, tmp_path, ft
):
    ckpt = _fit_from(pretrained, eurosat_root, tmp_path / "mae", ft, mode="linear", backbone="ckpt")
    state = _backbone_state(ckpt)
    assert all(torch.equal(state[k], v) for k, v in pretrained["encoder"].items())

    ckpt = _fit_from(
        pretrained, eurosat_root, tmp_path / "random", ft, mode="linear", pretrained=False
    )
    state = _backbone_state(ckpt)
    assert set(state) == set(pretrained["encoder"])
    assert not torch.equal(
        state["blocks.0.attn.qkv.weight"], pretrained["encoder"]["blocks.0.attn.qkv.weight"]
    )
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.stats.bands == pretrained["stats"].bands  # same normalization as the pretrained run
    assert meta.arch["embed_dim"] == 32 and meta.extra["backbone_source"].startswith(
        "random init of backbone"
    )


def test_bands_missing_from_the_backbone_fail_before_training(
    pretrained, eurosat_root, tmp_path, ft, capsys
):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "finetune_eurosat.yaml",
        out,
        data={"root": str(eurosat_root), "batch_size": 4, "bands": "l1c"},
        model={"backbone": str(pretrained["weights"])},
    )
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "band(s) ['B10'] are not in the backbone" in err and "weights.safetensors" in err
    assert not list(out.rglob("*.ckpt"))


def test_user_stats_override_the_backbone_stats_with_a_warning(
    pretrained, eurosat_root, eurosat_data, tmp_path, ft, caplog
):
    other = tmp_path / "other.yaml"
    BandStats({b: BandStat(float(eurosat_data.value_of(b)), 40.0) for b in L2A_BANDS}).save(other)
    out = tmp_path / "override"
    cfg = ft.tiny_config(
        "linear_probe_eurosat.yaml",
        out,
        data={"root": str(eurosat_root), "batch_size": 4, "stats": str(other)},
        model={"backbone": str(pretrained["weights"])},
    )
    with caplog.at_level("WARNING"):
        assert main(["fit", "--config", str(cfg)]) == 0
    assert "override the statistics of backbone" in caplog.text and "std 40 vs 20" in caplog.text
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (
        ckpt["geomae"]["stats"]["bands"]["B02"]["std"] == 40.0
    )  # what the data was normalized with
