"""Tile stores on object storage: prepare to ``s3://`` and train from it (moto server)."""

import logging
import socket

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from geomae.cli.prepare import main
from geomae.datamodules.tilestore import TileStoreDataModule
from geomae.errors import StorageError
from geomae.store import TileStore, TileStoreDataset
from geomae.store.parallel import prepare_scenes
from geomae.store.remote import StoreLocation, parse_storage_options
from geomae.store.writer import CutOptions
from geomae.trainers import MAETask

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

BUCKET = "geomae-test"
ARGS = ["--tile-size", "32", "--chunk-tiles", "4"]


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch, tmp_path):
    """No credentials from the environment, files or instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def endpoint():
    """URL of an S3-compatible server on localhost with the bucket ``geomae-test``."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=url).mkdir(BUCKET)
    yield url
    server.stop()


def options(endpoint: str) -> dict[str, str]:
    return {"key": "testing", "secret": "testing", "endpoint_url": endpoint}


def cli_options(endpoint: str) -> list[str]:
    return [f"--storage-option={k}={v}" for k, v in options(endpoint).items()]


def test_parse_storage_options():
    parsed = parse_storage_options(["anon=true", "client_kwargs.region_name=eu-west-1", "k=a=b"])
    assert parsed == {"anon": True, "client_kwargs": {"region_name": "eu-west-1"}, "k": "a=b"}
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        parse_storage_options(["anon"])


def test_prepare_to_s3_then_fit(tmp_path, scene_dir, endpoint, s2data):
    url = f"s3://{BUCKET}/store.zarr"
    assert main([str(scene_dir), "-o", url, *ARGS, *cli_options(endpoint)]) == 0
    local = tmp_path / "local.zarr"
    main([str(scene_dir), "-o", str(local), *ARGS])
    remote = TileStore(url, storage_options=options(endpoint))
    assert remote.info.to_dict() == TileStore(local).info.to_dict()
    tiles, valid = remote.read([0, 5, 6, 2])  # one orthogonal selection, per chunk
    ref_tiles, ref_valid = TileStore(local).read([0, 5, 6, 2])
    assert (tiles == ref_tiles).all() and (valid == ref_valid).all()
    # DataLoader workers (forked) open their own connections and read whole batches
    loader = DataLoader(TileStoreDataset(remote), batch_size=4, num_workers=2)
    images = np.concatenate([batch["image"].numpy() for batch in loader])  # (N, C, T, T)
    np.testing.assert_array_equal(images, TileStore(local).read(np.arange(len(remote)))[0])
    # the Dask path writes its parts and the store on the object store too
    second = tmp_path / "second"
    s2data.write_band_files(second, size=96, nodata=0, seed=3)
    info = prepare_scenes(
        [str(scene_dir), str(second)],
        f"s3://{BUCKET}/dask.zarr",
        options=CutOptions(tile_size=32, stride=32, chunk_tiles=4),
        storage_options=options(endpoint),
        workers=1,
        processes=False,
    )
    assert info.num_tiles == 16
    assert not StoreLocation.parse(f"s3://{BUCKET}/dask.zarr.parts", options(endpoint)).exists()
    # train a tiny MAE for a few steps straight from the bucket
    dm = TileStoreDataModule(
        path=url, storage_options=options(endpoint), batch_size=4, val_fraction=0.25
    )
    task = MAETask(
        groups="single",
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        warmup_steps=0,
    )
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm)
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_missing_bucket_is_named_before_any_tile(scene_dir, endpoint):
    url = "s3://no-such-bucket/store.zarr"
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist") as caught:
        main([str(scene_dir), "-o", url, *ARGS, *cli_options(endpoint)])
    assert url in str(caught.value)
    with pytest.raises(StorageError, match="does not exist"):
        prepare_scenes(
            [str(scene_dir)],
            url,
            options=CutOptions(tile_size=32, stride=32),
            storage_options=options(endpoint),
            workers=1,
            processes=False,
        )


def test_no_credentials_is_named_before_any_tile(scene_dir, endpoint):
    url = f"s3://{BUCKET}/nocreds.zarr"
    argv = [str(scene_dir), "-o", url, *ARGS, f"--storage-option=endpoint_url={endpoint}"]
    with pytest.raises(StorageError, match="no credentials found") as caught:
        main(argv)
    message = str(caught.value)
    assert url in message and "AWS_ACCESS_KEY_ID" in message and "--storage-option" in message
    fs = s3fs.S3FileSystem(**options(endpoint))
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}/nocreds.zarr")  # nothing was written
    with pytest.raises(StorageError, match="no credentials found"):
        TileStoreDataModule(path=url, storage_options={"endpoint_url": endpoint})
