"""MAETask: channel-aware MAE pretraining as a LightningModule."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import torch
from lightning.pytorch import LightningModule

from geomae.bands import parse_bands
from geomae.datamodules.contract import PretrainData, require_data
from geomae.errors import CheckpointError, ConfigError, NonFiniteLossError
from geomae.metadata import GeoMetadata
from geomae.models import ChannelMAE, MAEOutput
from geomae.models.arch import MAEArch
from geomae.models.recon_quality import reconstruction_quality
from geomae.optim import adamw_warmup_cosine, param_groups, plan_steps
from geomae.stats import BandStats
from geomae.version import __version__

log = logging.getLogger(__name__)

__all__ = ["MAETask"]

#: Seed of the masks drawn in validation, so that val losses are comparable over epochs.
VAL_MASK_SEED = 1234


class MAETask(LightningModule):
    """Pretrain a :class:`~geomae.models.ChannelMAE` on multispectral tiles.

    Bands, statistics, the L2A offset and the image size default to the DataModule's
    (read in :meth:`configure_model`) and are stored in the hyperparameters, so every
    checkpoint rebuilds the same model with the same normalization. Given explicitly,
    they must agree with the DataModule's, otherwise fitting stops with a
    :class:`~geomae.errors.ConfigError` before the first step. A DataModule must be a
    :class:`~geomae.datamodules.contract.PretrainData` (bands, stats, offset, tile side,
    processing level, ``describe()``); one that lacks a member stops the fit with a
    ConfigError naming it.
    """

    def __init__(
        self,
        *,
        bands: str | list[str] | None = None,
        stats: dict[str, Any] | str | None = None,
        offset: float | None = None,
        img_size: int | None = None,
        groups: str | list[list[str]] = "satmae",
        size: Literal["tiny", "small", "base", "large", "huge"] = "tiny",
        patch_size: int = 8,
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        decoder_embed_dim: int = 128,
        decoder_depth: int = 2,
        decoder_num_heads: int = 4,
        mask_ratio: float = 0.75,
        masking: Literal["consistent", "independent", "spectral"] = "consistent",
        norm_pix_loss: bool = True,
        drop_path_rate: float = 0.0,
        base_lr: float = 1.5e-4,
        min_lr_ratio: float = 0.0,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_epochs: float = 1.0,
        warmup_steps: int | None = None,
        on_nonfinite: Literal["raise", "skip", "off"] = "raise",
        compile: bool = False,
        figure_samples: int = 4,
    ) -> None:
        """Store the hyperparameters; the model is built in :meth:`configure_model`.

        Args:
            bands: bands the model sees (default: the DataModule's).
            stats: normalization statistics, a dict or YAML path (default: the
                DataModule's).
            offset: DN offset subtracted before normalization (default: DataModule's).
            img_size: tile size in pixels (default: the DataModule's ``patch_size``).
            groups: band groups: ``single``, ``satmae``, ``per-band`` or lists of bands.
            size: encoder size preset; ``embed_dim``/``depth``/``num_heads`` override it.
            patch_size: ViT patch size in pixels.
            embed_dim: encoder width override.
            depth: encoder depth override.
            num_heads: encoder heads override.
            decoder_embed_dim: decoder width.
            decoder_depth: decoder depth.
            decoder_num_heads: decoder heads.
            mask_ratio: fraction of tokens masked.
            masking: masking strategy.
            norm_pix_loss: normalize each target patch by its own mean and variance.
            drop_path_rate: stochastic depth in the encoder.
            base_lr: learning rate per 256 images; the actual lr is
                ``base_lr * effective_batch / 256``.
            min_lr_ratio: final lr of the cosine as a fraction of the peak.
            weight_decay: AdamW decay of weight matrices.
            betas: AdamW betas.
            warmup_epochs: linear warmup length in epochs (fractions allowed).
            warmup_steps: linear warmup length in optimizer steps (overrides epochs).
            on_nonfinite: on a NaN/Inf loss, ``raise`` (after saving the last good state
                as ``nonfinite-step<N>.ckpt``), ``skip`` the batch (the weights and the
                optimizer state stay as they were), or ``off`` (no check, no host sync
                per step). With several processes the decision is taken together: if
                any rank's loss is non-finite, every rank raises or skips.
            compile: wrap the MAE in ``torch.compile``.
            figure_samples: tiles shown in the reconstruction figure per validation.
        """
        super().__init__()
        self.save_hyperparameters()
        self.model: ChannelMAE | None = None
        self._figure_batch: dict[str, torch.Tensor] | None = None
        self._drop_grads = False
        self._skipped = 0
        self._last_batch_size = 1
        #: the DataModule's processing level (L1C / L2A), recorded in the metadata
        self._processing_level: str | None = None
        if bands is not None and stats is not None and img_size is not None:
            self.configure_model()

    @property
    def hp(self) -> Any:
        """The hyperparameters, with attribute access."""
        return self.hparams

    # ---- model --------------------------------------------------------------------
    def _resolve_data_settings(self) -> None:
        """Fill bands/stats/offset/img_size from the DataModule, or check agreement.

        Raises:
            ConfigError: the DataModule lacks a member of
                :class:`~geomae.datamodules.contract.PretrainData`, disagrees with the
                task's settings, or there is no DataModule and no settings.
        """
        trainer: Any = self._trainer
        datamodule = trainer.datamodule if trainer is not None else None
        hp = self.hp
        if datamodule is not None:
            require_data(datamodule, PretrainData, user=type(self).__name__)
            dm = cast(PretrainData, datamodule)
            desc = dm.describe()
            dm_values = {
                "bands": list(desc["bands"]),
                "stats": desc["stats"],
                "offset": float(desc["offset"]),
                "img_size": int(dm.patch_size)
                if isinstance(dm.patch_size, int)
                else int(dm.patch_size[0]),
            }
            for key, value in dm_values.items():
                if hp[key] is None:
                    hp[key] = value
            self._check_agrees_with(dm_values)
            level = dm.processing_level
            if level is not None:
                self._processing_level = str(level)
        missing = [k for k in ("bands", "stats", "img_size") if hp[k] is None]
        if missing:
            raise ConfigError(
                f"MAETask needs {missing}: pass them to the task or use a geomae "
                "DataModule, which provides bands, stats and tile size"
            )
        hp["bands"] = parse_bands(hp["bands"], keep_order=True)
        hp["offset"] = float(hp["offset"] or 0.0)
        if not isinstance(hp["stats"], Mapping):
            hp["stats"] = BandStats.coerce(hp["stats"]).to_dict()

    def _check_agrees_with(self, dm_values: Mapping[str, Any]) -> None:
        hp = self.hp
        bands = parse_bands(hp["bands"], keep_order=True)
        if bands != dm_values["bands"]:
            raise ConfigError(
                f"the task's bands {bands} differ from the DataModule's "
                f"{dm_values['bands']}: band order must match the weights"
            )
        ours = BandStats.coerce(hp["stats"]).select(bands)
        theirs = BandStats.coerce(dm_values["stats"]).select(bands)
        diff = [
            b
            for b in bands
            if not math.isclose(ours.bands[b].mean, theirs.bands[b].mean, rel_tol=1e-6)
            or not math.isclose(ours.bands[b].std, theirs.bands[b].std, rel_tol=1e-6)
        ]
        if diff:
            raise ConfigError(
                f"the task's normalization stats differ from the DataModule's for {diff}; "
                "the weights would see differently normalized data"
            )
        for key in ("offset", "img_size"):
            if float(hp[key]) != float(dm_values[key]):
                raise ConfigError(
                    f"the task's {key}={hp[key]} differs from the DataModule's {dm_values[key]}"
                )

    def configure_model(self) -> None:
        """Build the ChannelMAE once bands, stats and image size are known."""
        if self.model is not None:
            if self._trainer is not None:
                self._resolve_data_settings()
            return
        self._resolve_data_settings()
        hp = self.hp
        keys = (*MAEArch.ENCODER_KEYS, *MAEArch.DECODER_KEYS)
        model = ChannelMAE(MAEArch.resolve(**{k: hp[k] for k in keys if hp.get(k) is not None}))
        if hp.compile:
            model.compile()  # in place: the state dict keys stay ``model.*``
        self.model = model

    @property
    def metadata(self) -> GeoMetadata:
        """Band, normalization and architecture metadata of the current model."""
        if self.model is None:
            raise ConfigError("the model is not built yet (call configure_model)")
        hp = self.hp
        return GeoMetadata(
            bands=list(self.model.encoder.bands),
            groups=[list(g) for g in self.model.encoder.groups],
            stats=BandStats.coerce(hp.stats),
            patch_size=int(hp.patch_size),
            img_size=int(hp.img_size),
            arch=self.model.arch_kwargs(),
            offset=float(hp.offset),
            processing_level=self._processing_level,
            extra={"geomae_version": __version__, "task": "MAETask"},
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the metadata next to the weights."""
        checkpoint["geomae"] = self.metadata.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse checkpoints of other tasks or of a different model, before any weight.

        Raises:
            CheckpointError: if the checkpoint has no ``geomae`` metadata, was written by
                another task, or its bands, groups, sizes or architecture differ.
        """
        trainer = self._trainer
        source = (
            f"checkpoint {trainer.ckpt_path}" if trainer and trainer.ckpt_path else "checkpoint"
        )
        meta = checkpoint.get("geomae")
        if not isinstance(meta, dict):
            raise CheckpointError(
                f"{source} has no 'geomae' metadata: it was not written by a geomae task "
                f"(hyper-parameters of {checkpoint.get('hparams_name') or 'an unknown model'}); "
                "resume only from checkpoints of `geomae fit` with MAETask"
            )
        task = meta.get("extra", {}).get("task", "MAETask")
        if task != "MAETask":
            raise CheckpointError(f"{source} was written by {task}, not by MAETask")
        if self.model is None:
            return
        ours = self.metadata.to_dict()
        diff = {
            key: (meta.get(key), ours[key])
            for key in ("bands", "groups", "patch_size", "img_size", "arch")
            if meta.get(key) != ours[key]
        }
        if diff:
            detail = "; ".join(
                f"{k}: checkpoint {a!r}, this run {b!r}" for k, (a, b) in diff.items()
            )
            raise CheckpointError(
                f"{source} holds a different model: {detail}. Resume with the configuration "
                "the checkpoint was trained with"
            )
        for key in ("stats", "offset"):
            if meta.get(key) != ours[key]:
                log.warning("%s was trained with other %s than this run's", source, key)

    # ---- steps --------------------------------------------------------------------
    def _forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._forward_output(batch).loss

    def _forward_output(self, batch: Mapping[str, torch.Tensor]) -> MAEOutput:
        assert self.model is not None, "configure_model builds the model before any step"
        return self.model(batch["image"], batch.get("valid"))  # image (B, C, H, W)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """One MAE step on visible tokens; returns the masked reconstruction loss."""
        loss = self._forward(batch)
        self._last_batch_size = int(batch["image"].shape[0])
        if self.hp.on_nonfinite != "off":
            finite = bool(torch.isfinite(loss))
            trainer = self._trainer
            if trainer is not None and trainer.world_size > 1:  # all ranks raise or skip
                finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
            if not finite:
                return self._handle_nonfinite(loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _handle_nonfinite(self, loss: torch.Tensor) -> torch.Tensor | None:
        step = self.global_step
        if self.hp.on_nonfinite == "skip":
            log.warning("non-finite loss %s at step %d: batch skipped", loss.item(), step)
            self._skipped += 1
            batch_size = self._last_batch_size
            # logged as is: otherwise the logger would repeat the last finite loss
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
            self.log("train/skipped", float(self._skipped), batch_size=batch_size)
            if self._trainer is None or self._trainer.world_size == 1:
                return None
            # Lightning refuses None with several processes. A zero loss reaching every
            # parameter keeps DDP's gradient all-reduce in step on all ranks;
            # on_after_backward then drops the gradients, so AdamW leaves the weights
            # and its moments untouched.
            self._drop_grads = True
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.stack([p.sum() for p in params]).sum() * 0.0
        path = Path(self.trainer.default_root_dir) / f"nonfinite-step{step}.ckpt"
        self.trainer.save_checkpoint(path, weights_only=False)  # full state: resumable
        raise NonFiniteLossError(
            f"the training loss became {loss.item()} at global step {step} (epoch "
            f"{self.current_epoch}); the last good state is saved in {path}. Check the "
            "input for NaN/Inf or lower the learning rate; on_nonfinite='skip' skips such "
            "batches instead"
        )

    def on_after_backward(self) -> None:
        """Drop the gradients of a skipped step (see ``on_nonfinite='skip'``)."""
        if self._drop_grads:
            for p in self.parameters():
                p.grad = None
            self._drop_grads = False

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int
    ) -> torch.Tensor | None:
        """Masked loss and reconstruction quality, masks seeded per batch.

        Seeded masks make epochs comparable. Besides ``val/loss`` it logs the masked-patch
        PSNR of the reconstruction and of the trivial visible-mean baseline
        (``val/psnr``, ``val/psnr_baseline``, dB) and the collapse diagnostics
        ``val/pred_std`` / ``val/target_std`` (see :mod:`geomae.models.recon_quality`).
        A batch whose tiles were all left out (mostly nodata) is skipped.
        """
        if batch["image"].shape[0] == 0:
            return None
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(VAL_MASK_SEED + batch_idx)
            out = self._forward_output(batch)
        loss = out.loss
        size = len(batch["image"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        assert self.model is not None
        quality = reconstruction_quality(self.model, batch["image"], batch.get("valid"), out)
        for name, value in quality._asdict().items():
            if torch.isfinite(value):
                self.log(f"val/{name}", value, sync_dist=True, batch_size=size)
        if batch_idx == 0:
            n = self.hp.figure_samples
            self._figure_batch = {
                k: v[:n].detach() for k, v in batch.items() if k in ("image", "valid")
            }
        return loss

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Same as validation, logged as ``test/loss``."""
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(VAL_MASK_SEED + batch_idx)
            loss = self._forward(batch)
        self.log("test/loss", loss, sync_dist=True, batch_size=len(batch["image"]))
        return loss

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Encoder features of unmasked tiles: ``(B, 1 + G*L, D)``."""
        assert self.model is not None
        return self.model.encoder.forward_features(batch["image"])

    def on_validation_epoch_end(self) -> None:
        """Save the reconstruction figure (PNG, and TensorBoard when present)."""
        # trainer.log_dir broadcasts from rank 0: every rank must ask, before any return
        log_dir = self.trainer.log_dir
        if self._figure_batch is None or self.trainer.sanity_checking:
            return
        if not self.trainer.is_global_zero:
            return
        from geomae.viz import reconstruction_figure, save_figure

        assert self.model is not None
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(VAL_MASK_SEED)
            fig = reconstruction_figure(
                self.model,
                self._figure_batch["image"],
                self._figure_batch.get("valid"),
                metadata=self.metadata,
                title=f"epoch {self.current_epoch}, step {self.global_step}",
            )
        root = Path(log_dir or self.trainer.default_root_dir)
        path = root / "reconstructions" / f"epoch{self.current_epoch:03d}.png"
        save_figure(fig, path)
        for logger in self.loggers:
            add_figure = getattr(getattr(logger, "experiment", None), "add_figure", None)
            if add_figure is not None:
                add_figure("reconstruction", fig, global_step=self.global_step)
        import matplotlib.pyplot as plt

        plt.close(fig)
        self._figure_batch = None

    # ---- optimization -------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:  # type: ignore[override]
        """AdamW with scaled lr, no decay on norms/biases/embeddings, warmup + cosine."""
        assert self.model is not None
        hp = self.hp
        plan = plan_steps(
            self.trainer,
            base_lr=hp.base_lr,
            warmup_epochs=hp.warmup_epochs,
            warmup_steps=hp.warmup_steps,
        )
        log.info(
            "lr %.3g = base_lr %.3g x effective batch %d / 256 (batch %d x world %d x "
            "accumulate %d); %d warmup of %d steps",
            plan.lr,
            plan.base_lr,
            plan.effective_batch,
            plan.batch_size,
            self.trainer.world_size,
            self.trainer.accumulate_grad_batches,
            plan.warmup_steps,
            plan.total_steps,
        )
        groups = param_groups(self.model.named_parameters(), weight_decay=hp.weight_decay)
        return adamw_warmup_cosine(groups, plan=plan, betas=hp.betas, min_lr_ratio=hp.min_lr_ratio)
