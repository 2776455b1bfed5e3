"""ChannelMAE: channel-aware masked autoencoder over band-group tokens.

Flow of one batch (G groups, L patches per group, N = G*L tokens):

    image (B, C, H, W) ─> zero nodata ─> encoder.tokenize ─> (B, N, D)
      ─> mask (ids_keep) ─> gather visible (B, N_vis, D) ─> encoder blocks on cls + visible
      ─> decoder (mask tokens, unshuffle, blocks) ─> per-group pixel heads
      ─> MSE on masked patches, nodata excluded

Prediction layout (``MAEOutput.pred``): ``(B, G*L, p*p*Cmax)``, group-major tokens;
each token's vector is ``(p_row, p_col, channel)`` with the channel axis padded to
``Cmax`` (the largest group): channels ``C_g..Cmax-1`` of group ``g`` are zero. With
``norm_pix_loss`` the values are in per-patch normalized units;
:meth:`ChannelMAE.reconstruct` maps them back to images in the original band order.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from geomae.errors import ConfigError
from geomae.models.arch import MAEArch
from geomae.models.decoder import MAEDecoder
from geomae.models.loss import masked_mse, patch_stats
from geomae.models.masking import MaskingStrategy, Masks, make_masks, visible_counts
from geomae.models.patchify import patchify, unpatchify
from geomae.models.vit import ChannelViT

log = logging.getLogger(__name__)

__all__ = ["ChannelMAE", "MAEOutput"]


class MAEOutput(NamedTuple):
    """Output of :meth:`ChannelMAE.forward`.

    Attributes:
        loss: () masked reconstruction loss.
        pred: (B, G*L, p*p*Cmax) predictions (layout in the module docstring).
        mask: (B, G*L) float, 1 = masked token, group-major.
    """

    loss: torch.Tensor
    pred: torch.Tensor
    mask: torch.Tensor


class ChannelMAE(nn.Module):
    """Masked autoencoder whose encoder is a :class:`ChannelViT`.

    Attributes:
        arch: the :class:`~geomae.models.arch.MAEArch` it was built from.
        encoder: the ChannelViT (no classifier); it only ever sees visible tokens.
        decoder: the :class:`~geomae.models.decoder.MAEDecoder`.
        mask_ratio: default fraction of tokens masked.
        masking: masking strategy (see :mod:`geomae.models.masking`).
        norm_pix_loss: targets normalized per patch and group.
    """

    def __init__(self, arch: MAEArch) -> None:
        """Build the MAE of an architecture (see :meth:`build` for keyword settings).

        Args:
            arch: the resolved encoder, decoder and masking settings.
        """
        super().__init__()
        self.arch = arch
        self.mask_ratio = arch.mask_ratio
        self.masking: MaskingStrategy = arch.masking
        self.norm_pix_loss = arch.norm_pix_loss
        self.encoder = ChannelViT.from_arch(arch.encoder)
        self.decoder = MAEDecoder(
            encoder_dim=arch.encoder.embed_dim,
            group_sizes=[len(g) for g in self.encoder.groups],
            group_wavelengths=self.encoder.group_wavelengths,
            grid_size=self.encoder.grid_size,
            patch_size=arch.encoder.patch_size,
            embed_dim=arch.decoder_embed_dim,
            depth=arch.decoder_depth,
            num_heads=arch.decoder_num_heads,
            mlp_ratio=arch.encoder.mlp_ratio,
        )
        self.max_group_size = max(len(g) for g in self.encoder.groups)

    @classmethod
    def build(cls, **settings: Any) -> ChannelMAE:
        """Build from flat settings: ``ChannelMAE(MAEArch.resolve(**settings))``.

        Args:
            **settings: ``bands`` (required), ``groups`` (default ``satmae``),
                ``size`` (``tiny``; ``embed_dim``/``depth``/``num_heads`` override
                it), ``img_size`` (64), ``patch_size`` (8), ``mlp_ratio``,
                ``drop_path_rate``, ``decoder_embed_dim`` (128), ``decoder_depth`` (2),
                ``decoder_num_heads`` (4), ``mask_ratio`` (0.75), ``masking``
                (``consistent``), ``norm_pix_loss`` (True).

        Raises:
            ConfigError: unknown or inconsistent settings.
            BandError: bad bands or groups.
        """
        return cls(MAEArch.resolve(**settings))

    # ---- description -----------------------------------------------------------------
    def arch_kwargs(self) -> dict[str, Any]:
        """JSON-safe flat settings that rebuild this MAE (:meth:`MAEArch.to_dict`).

        Raises:
            ConfigError: the encoder was resized to a non-square image.
        """
        encoder = self.encoder.arch.replace(size=self.arch.encoder.size)
        return dataclasses.replace(self.arch, encoder=encoder).to_dict()

    def num_visible(self, *, mask_ratio: float | None = None, img_size: int | None = None) -> int:
        """Number of tokens the encoder sees (excluding cls) at a ratio and image size."""
        p = self.encoder.patch_size
        h, w = self.encoder.img_size if img_size is None else (img_size, img_size)
        kept_groups, per_group = visible_counts(
            self.masking,
            num_groups=self.encoder.num_groups,
            num_patches=(h // p) * (w // p),
            mask_ratio=self.mask_ratio if mask_ratio is None else mask_ratio,
        )
        return kept_groups * per_group

    # ---- forward ---------------------------------------------------------------------
    def _check_valid(self, image: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor | None:
        if valid is None:
            return None
        b, _, h, w = image.shape
        if tuple(valid.shape) != (b, 1, h, w):
            raise ConfigError(
                f"valid must have shape (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(valid.shape)}"
            )
        return valid if valid.dtype == torch.bool else valid != 0

    def forward(
        self,
        image: torch.Tensor,
        valid: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MAEOutput:
        """Mask, encode the visible tokens, decode and compute the masked loss.

        Args:
            image: (B, C, H, W) normalized tiles, channels in ``encoder.bands`` order.
            valid: (B, 1, H, W) bool, False at nodata (non-bool: nonzero = valid).
                Invalid pixels are set to 0 before embedding and excluded from the loss
                and from the per-patch target statistics. None = all valid.
            mask_ratio: override of :attr:`mask_ratio` for this call.
            generator: random generator (on the image's device) for the masks.

        Returns:
            :class:`MAEOutput` with the loss, the predictions and the token mask.
        """
        grid = self.encoder.check_input(image)
        valid = self._check_valid(image, valid)
        if valid is not None:
            image = torch.where(
                valid, image, torch.zeros((), dtype=image.dtype, device=image.device)
            )
        latent, masks = self.forward_encoder(image, mask_ratio=mask_ratio, generator=generator)
        preds = self.decoder(latent, masks.ids_restore, grid)  # G x (B, L, p*p*C_g)
        loss = self._loss(image, valid, preds, masks.mask)
        return MAEOutput(loss=loss, pred=self._pad(preds), mask=masks.mask)

    def forward_encoder(
        self,
        image: torch.Tensor,
        *,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, Masks]:
        """Tokenize, draw masks and encode only the visible tokens.

        Args:
            image: (B, C, H, W) normalized tiles with finite values.
            mask_ratio: override of :attr:`mask_ratio`.
            generator: random generator for the masks.

        Returns:
            ``(latent (B, 1+N_vis, D), masks)``.
        """
        tokens = self.encoder.tokenize(image)  # (B, N, D)
        b, n, d = tokens.shape
        masks = make_masks(
            batch_size=b,
            num_groups=self.encoder.num_groups,
            num_patches=n // self.encoder.num_groups,
            mask_ratio=self.mask_ratio if mask_ratio is None else mask_ratio,
            strategy=self.masking,
            device=tokens.device,
            generator=generator,
        )
        index = masks.ids_keep.unsqueeze(-1).expand(-1, -1, d)  # (B, N_vis, D)
        visible = torch.gather(tokens, 1, index)  # (B, N_vis, D)
        return self.encoder.encode_tokens(visible), masks  # (B, 1+N_vis, D)

    # ---- targets and loss ------------------------------------------------------------
    def _group_patches(
        self, image: torch.Tensor, valid: torch.Tensor | None
    ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per group: pixels (B, L, P, C_g) and weights (B, L, P, 1) (None if all valid)."""
        p = self.encoder.patch_size
        weight = None if valid is None else patchify(valid.to(image.dtype), p).unsqueeze(-1)
        out = []
        for g in range(self.encoder.num_groups):
            x = self.encoder.patch_embed.group_input(image, g)  # (B, C_g, H, W)
            pix = patchify(x, p)  # (B, L, P*C_g)
            out.append((pix.view(*pix.shape[:2], p * p, -1), weight))  # (B, L, P, C_g)
        return out

    def _loss(
        self,
        image: torch.Tensor,
        valid: torch.Tensor | None,
        preds: list[torch.Tensor],
        mask: torch.Tensor,
    ) -> torch.Tensor:
        b, n = mask.shape
        g = self.encoder.num_groups
        masked = mask.view(b, g, n // g)  # (B, G, L)
        pp = self.encoder.patch_size**2
        targets, weights, shaped = [], [], []
        for i, (pix, weight) in enumerate(self._group_patches(image.float(), valid)):
            if self.norm_pix_loss:
                mean, std = patch_stats(pix, weight)  # (B, L, 1, 1) each
                pix = (pix - mean) / std
            targets.append(pix)  # (B, L, P, C_g)
            token_weight = masked[:, i, :, None, None]  # (B, L, 1, 1)
            # All pixels valid: per-token weights, no full-size (B, L, P, 1) product.
            weights.append(token_weight if weight is None else weight * token_weight)
            shaped.append(preds[i].view(b, n // g, pp, -1))  # (B, L, P, C_g)
        return masked_mse(shaped, targets, weights)

    # ---- layouts ---------------------------------------------------------------------
    def _pad(self, preds: list[torch.Tensor]) -> torch.Tensor:
        """G x (B, L, P*C_g) -> (B, G*L, P*Cmax), channels zero-padded."""
        pp = self.encoder.patch_size**2
        if len(preds) == 1:  # one group is already (B, L, P*Cmax): no copy
            return preds[0]
        padded = [
            x.view(*x.shape[:2], pp, -1)
            if x.shape[-1] == pp * self.max_group_size
            else F.pad(x.view(*x.shape[:2], pp, -1), (0, self.max_group_size - x.shape[-1] // pp))
            for x in preds
        ]  # G x (B, L, P, Cmax)
        out = torch.stack(padded, dim=1)  # (B, G, L, P, Cmax)
        return out.flatten(1, 2).flatten(2)  # (B, G*L, P*Cmax)

    def patchify(self, image: torch.Tensor) -> torch.Tensor:
        """Image to the prediction layout: (B, C, H, W) -> (B, G*L, p*p*Cmax)."""
        self.encoder.check_input(image)
        pix = [x.flatten(2) for x, _ in self._group_patches(image, None)]  # G x (B, L, P*C_g)
        return self._pad(pix)

    def _grid_of(self, n: int, image: torch.Tensor | None) -> tuple[int, int]:
        p = self.encoder.patch_size
        if image is not None:
            return image.shape[2] // p, image.shape[3] // p
        gh, gw = self.encoder.grid_size
        if n != self.encoder.num_groups * gh * gw:
            raise ConfigError(
                f"{n} tokens do not match the model grid {gh}x{gw}; pass image= or grid_size="
            )
        return gh, gw

    def unpatchify(
        self, pred: torch.Tensor, *, grid_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Prediction layout back to an image in band order.

        Args:
            pred: (B, G*L, p*p*Cmax).
            grid_size: (gh, gw); default the encoder's grid.

        Returns:
            (B, C, gh*p, gw*p), channels in ``encoder.bands`` order (values as in ``pred``).
        """
        b, n, _ = pred.shape
        gh, gw = grid_size if grid_size is not None else self._grid_of(n, None)
        return self._to_image(pred, (gh, gw), image=None, valid=None)

    def reconstruct(
        self,
        pred: torch.Tensor,
        *,
        image: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        grid_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Predictions as images in the input's units and band order.

        With ``norm_pix_loss`` the predictions are per-patch normalized; given the
        ``image`` they came from, each patch is mapped back with that image patch's
        mean and standard deviation over its valid pixels (the same statistics as the
        loss targets). Without ``image`` the normalized values are returned.

        Args:
            pred: (B, G*L, p*p*Cmax) from :class:`MAEOutput`.
            image: (B, C, H, W) input the predictions are for.
            valid: (B, 1, H, W) valid-pixel mask of ``image``.
            grid_size: (gh, gw) when neither ``image`` nor the encoder grid applies.

        Returns:
            (B, C, H, W).
        """
        b, n, _ = pred.shape
        grid = grid_size if grid_size is not None else self._grid_of(n, image)
        if image is not None:
            valid = self._check_valid(image, valid)
            if valid is not None:
                image = torch.where(
                    valid, image, torch.zeros((), dtype=image.dtype, device=image.device)
                )
        return self._to_image(pred, grid, image=image, valid=valid)

    def _to_image(
        self,
        pred: torch.Tensor,
        grid: tuple[int, int],
        *,
        image: torch.Tensor | None,
        valid: torch.Tensor | None,
    ) -> torch.Tensor:
        p = self.encoder.patch_size
        g = self.encoder.num_groups
        b, n, _ = pred.shape
        per_group = pred.view(b, g, n // g, p * p, self.max_group_size)  # (B, G, L, P, Cmax)
        stats = None
        if image is not None and self.norm_pix_loss:
            stats = [patch_stats(pix.float(), w) for pix, w in self._group_patches(image, valid)]
        out = pred.new_zeros(b, len(self.encoder.bands), grid[0] * p, grid[1] * p)
        for i, channels in enumerate(self.encoder.patch_embed.group_channels):
            x = per_group[:, i, :, :, : len(channels)]  # (B, L, P, C_g)
            if stats is not None:
                mean, std = stats[i]  # (B, L, 1, 1)
                x = x * std.to(x.dtype) + mean.to(x.dtype)
            out[:, channels] = unpatchify(x.flatten(2), p, grid)  # (B, C_g, H, W)
        return out
