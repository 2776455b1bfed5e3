"""configs/pretrain_sentinel2_multinode.yaml parses against the real classes."""

import pytest
import yaml
from reliability_utils import REPO

from geomae.main import main

CONFIG = REPO / "configs" / "pretrain_sentinel2_multinode.yaml"


def _print_config(capsys, *args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIG), *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_multinode_config_parses(capsys):
    cfg = _print_config(capsys)
    trainer = cfg["trainer"]
    assert trainer["num_nodes"] == 4 and trainer["devices"] == 4
    assert trainer["strategy"]["class_path"] == "lightning.pytorch.strategies.DDPStrategy"
    assert trainer["precision"] == "bf16-mixed"
    saves_last = [
        c["init_args"]
        for c in trainer["callbacks"]
        if c["class_path"].endswith("ModelCheckpoint") and c["init_args"]["save_last"]
    ]
    assert saves_last and saves_last[0]["every_n_train_steps"] == 1000
    assert cfg["model"]["init_args"]["size"] == "large"
    assert cfg["data"]["init_args"]["max_nodata_fraction"] == 0.5


def test_fsdp_variant_of_docs_scaling_parses(capsys, tmp_path):
    fsdp = tmp_path / "fsdp.yaml"
    fsdp.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "strategy": {
                        "class_path": "lightning.pytorch.strategies.FSDPStrategy",
                        "init_args": {
                            "sharding_strategy": "FULL_SHARD",
                            "auto_wrap_policy": ["timm.models.vision_transformer.Block"],
                            "state_dict_type": "full",
                        },
                    }
                },
                "model": {"init_args": {"compile": False}},
            }
        )
    )
    cfg = _print_config(capsys, "--config", str(fsdp))
    strategy = cfg["trainer"]["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.FSDPStrategy"
    assert strategy["init_args"]["state_dict_type"] == "full"
