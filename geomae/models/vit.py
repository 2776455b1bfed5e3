"""ChannelViT: a timm-style Vision Transformer over band-group tokens.

Each band group has its own patch embedding. A token of group ``g`` at patch ``l`` is

    patch_embed_g(x)[l] + pos_2d[l] + wavelength_sincos(lambda_g) + group_embed[g]

with ``pos_2d`` the fixed 2-D sin-cos embedding of the patch grid, ``lambda_g`` the
group's wavelength (by default the mean central wavelength of its bands) and
``group_embed`` learned. Group tokens are concatenated group-major to
``(B, G*L, D)`` and a learned cls token (no position embedding) is prepended:
``(B, 1 + G*L, D)``. The transformer is a stack of timm ``Block``s (fused scaled
dot-product attention) and a final LayerNorm.

The fixed embeddings are non-persistent buffers: they are recomputed from the
bands, groups and grid, so a state dict loads at any image size.

With ``pos_embed_type="learned"`` (imported ViTs, see :mod:`geomae.importers`) the
fixed ``pos_2d`` is replaced by a learned parameter ``pos_embed_learned`` of shape
``(1, L, D)``; it is resampled bicubically for another grid
(:func:`~geomae.models.pos_embed.resample_pos_embed`), as timm does for its ViTs. The model runs on
any input whose height and width are multiples of the patch size; for a grid other
than ``grid_size`` the sin-cos position embedding is computed for that grid (the same
values :meth:`ChannelViT.set_img_size` would store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal, cast

import torch
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices
from timm.models.vision_transformer import Block
from torch import nn

from geomae.bands import parse_bands
from geomae.errors import BandError, ConfigError
from geomae.models.arch import EncoderArch, PosEmbedType, grid_of, image_pair
from geomae.models.groups import GroupSpec, group_indices
from geomae.models.patch_embed import GroupPatchEmbed
from geomae.models.pos_embed import resample_pos_embed, sincos_2d, wavelength_embed
from geomae.models.weight_init import init_linear_and_norm, init_patch_conv

log = logging.getLogger(__name__)

__all__ = ["ChannelViT", "GlobalPool", "PosEmbedType"]

GlobalPool = Literal["token", "avg"]
_POOLS: tuple[str, ...] = ("token", "avg")


class ChannelViT(nn.Module):
    """Channel-aware ViT encoder with per-group patch embeddings.

    Attributes:
        bands: canonical band names in input-channel order.
        groups: band groups, one patch embedding and one spectral embedding each.
        group_wavelengths: wavelength (nm) encoded in each group's spectral embedding.
        patch_size: patch size p in pixels.
        img_size: (H, W) the position-embedding buffer is built for.
        grid_size: (H/p, W/p).
        embed_dim: token width D (also ``num_features``).
        num_prefix_tokens: 1 (the cls token).
    """

    pos_embed: torch.Tensor  # (1, L, D) buffer
    spectral_embed: torch.Tensor  # (G, D) buffer

    def __init__(
        self,
        *,
        bands: Sequence[str],
        groups: GroupSpec = "single",
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        num_classes: int = 0,
        global_pool: GlobalPool = "token",
        group_wavelengths: Sequence[float] | None = None,
        pos_embed_type: PosEmbedType = "sincos",
    ) -> None:
        """Build the encoder.

        Args:
            bands: input bands (any spelling), in channel order.
            groups: ``single``, ``satmae``, ``per-band`` or lists of bands
                (see :mod:`geomae.models.groups`).
            img_size: image size (int or (H, W)) for the position-embedding buffer.
            patch_size: patch size p in pixels.
            embed_dim: token width D.
            depth: number of transformer blocks.
            num_heads: attention heads.
            mlp_ratio: MLP hidden width / D.
            qkv_bias: bias in the qkv projection.
            drop_path_rate: stochastic depth, linearly increasing to this value.
            num_classes: classifier outputs; 0 for no classifier (identity head).
            global_pool: ``token`` (cls token) or ``avg`` (mean of patch tokens).
            group_wavelengths: wavelength (nm) per group for the spectral embedding;
                default the mean central wavelength of each group's bands.
                :meth:`select_bands` passes the original values on.
            pos_embed_type: ``sincos`` (fixed 2-D sin-cos, geomae's own models) or
                ``learned`` (a ``(1, L, D)`` parameter, for imported ViTs).

        Raises:
            BandError: unknown, duplicated or ungrouped bands.
            ConfigError: inconsistent sizes, pooling or wavelengths.
        """
        super().__init__()
        if global_pool not in _POOLS:
            raise ConfigError(f"global_pool must be one of {list(_POOLS)}, got {global_pool!r}")
        arch = EncoderArch.resolve(
            bands=bands,
            groups=groups,
            size=None,
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            group_wavelengths=group_wavelengths,
            pos_embed_type=pos_embed_type,
        )
        self.bands: list[str] = list(arch.bands)
        self.groups: list[list[str]] = [list(g) for g in arch.groups]
        self.group_wavelengths: list[float] = list(arch.group_wavelengths)
        self.pos_embed_type: PosEmbedType = arch.pos_embed_type
        self.patch_size = arch.patch_size
        self.img_size = arch.img_size
        self.grid_size = arch.grid_size
        self.embed_dim = self.num_features = self.head_hidden_size = arch.embed_dim
        self.depth, self.num_heads = arch.depth, arch.num_heads
        self.mlp_ratio, self.qkv_bias = arch.mlp_ratio, arch.qkv_bias
        self.drop_path_rate = arch.drop_path_rate
        self.num_prefix_tokens = 1
        self.grad_checkpointing = False
        self.num_classes = int(num_classes)
        self.global_pool: GlobalPool = global_pool

        self.patch_embed = GroupPatchEmbed(
            group_channels=group_indices(self.bands, self.groups),
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
        )
        self.register_buffer(
            "pos_embed", sincos_2d(self.grid_size, self.embed_dim)[None], persistent=False
        )  # (1, L, D)
        self.pos_embed_learned: nn.Parameter | None
        self.register_parameter("pos_embed_learned", None)
        if self.pos_embed_type == "learned":
            num_patches = self.grid_size[0] * self.grid_size[1]
            self.pos_embed_learned = nn.Parameter(torch.zeros(1, num_patches, self.embed_dim))
        self.register_buffer(
            "spectral_embed",
            wavelength_embed(self.group_wavelengths, self.embed_dim),
            persistent=False,
        )  # (G, D)
        self.group_embed = nn.Parameter(torch.zeros(len(self.groups), self.embed_dim))  # (G, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))  # (1, 1, D)
        rates = torch.linspace(0, self.drop_path_rate, self.depth).tolist()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=self.embed_dim,
                    num_heads=self.num_heads,
                    mlp_ratio=self.mlp_ratio,
                    qkv_bias=self.qkv_bias,
                    drop_path=rates[i],
                    norm_layer=norm_layer,  # type: ignore[arg-type]
                )
                for i in range(self.depth)
            ]
        )
        self.norm = norm_layer(self.embed_dim)
        self.head: nn.Module = self._make_head(self.num_classes)
        self.feature_info = [
            {"module": f"blocks.{i}", "num_chs": self.embed_dim, "reduction": self.patch_size}
            for i in range(self.depth)
        ]
        self.init_weights()

    # ---- construction helpers ------------------------------------------------------
    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
        if num_classes == 0:
            return nn.Identity()
        head = nn.Linear(self.embed_dim, num_classes)
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        return head

    def init_weights(self) -> None:
        """MAE-style init: xavier linears and patch convs, normal(0.02) cls, zero group embed."""
        for proj in self.patch_embed.projs:
            init_patch_conv(cast(nn.Conv2d, proj))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.zeros_(self.group_embed)
        if self.pos_embed_learned is not None:
            nn.init.trunc_normal_(self.pos_embed_learned, std=0.02)
        self.blocks.apply(init_linear_and_norm)
        self.norm.apply(init_linear_and_norm)
        self.head = self._make_head(self.num_classes)

    def no_weight_decay(self) -> set[str]:
        """Parameter names excluded from weight decay (timm optimizer factory hook)."""
        names = {"cls_token", "group_embed"}
        if self.pos_embed_learned is not None:
            names.add("pos_embed_learned")
        return names

    @classmethod
    def from_arch(
        cls, arch: EncoderArch, *, num_classes: int = 0, global_pool: GlobalPool = "token"
    ) -> ChannelViT:
        """Build a randomly initialized encoder of an :class:`EncoderArch`."""
        return cls(**arch.vit_kwargs(), num_classes=num_classes, global_pool=global_pool)

    @property
    def arch(self) -> EncoderArch:
        """The current architecture (after any :meth:`set_img_size` or pruning)."""
        return EncoderArch(
            bands=tuple(self.bands),
            groups=tuple(tuple(g) for g in self.groups),
            img_size=self.img_size,
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            group_wavelengths=tuple(self.group_wavelengths),
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
            pos_embed_type=self.pos_embed_type,
        )

    def arch_kwargs(self) -> dict[str, Any]:
        """JSON-safe constructor keyword arguments that rebuild this encoder and head."""
        return {
            **self.arch.vit_kwargs(),
            "num_classes": self.num_classes,
            "global_pool": self.global_pool,
        }

    def set_img_size(self, img_size: int | Sequence[int]) -> None:
        """Rebuild the fixed position-embedding buffer for a new image size.

        A learned position embedding is resampled (bicubic) to the new grid; call this
        before building an optimizer (the parameter is replaced).

        Args:
            img_size: new size, int or (H, W), divisible by the patch size.
        """
        size = image_pair(img_size)
        grid = grid_of(size, self.patch_size)
        if self.pos_embed_learned is not None and grid != self.grid_size:
            learned = self.pos_embed_learned
            resampled = resample_pos_embed(
                learned.detach(), old_grid=self.grid_size, new_grid=grid
            )  # (1, L', D)
            self.pos_embed_learned = nn.Parameter(
                resampled.contiguous(), requires_grad=learned.requires_grad
            )
        self.img_size, self.grid_size = size, grid
        self.pos_embed = sincos_2d(grid, self.embed_dim)[None].to(self.pos_embed)

    def reset_classifier(self, num_classes: int, global_pool: GlobalPool | None = None) -> None:
        """Replace the classifier (0 = identity) and optionally the pooling."""
        if global_pool is not None:
            if global_pool not in _POOLS:
                raise ConfigError(f"global_pool must be one of {list(_POOLS)}, got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = int(num_classes)
        self.head = self._make_head(self.num_classes).to(self.cls_token.device)

    # ---- tokens ----------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        """Number of band groups G."""
        return len(self.groups)

    def check_input(self, x: torch.Tensor) -> tuple[int, int]:
        """Validate an input batch and return its patch grid (gh, gw).

        Raises:
            ConfigError: not 4-D, or height/width not divisible by the patch size.
            BandError: channel count differs from the model's bands.
        """
        if x.ndim != 4:
            raise ConfigError(
                f"ChannelViT expects a (B, C, H, W) batch, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != len(self.bands):
            raise BandError(
                f"ChannelViT expects {len(self.bands)} channels in band order {self.bands}, "
                f"got {x.shape[1]}; select the model's bands from the data or use "
                "select_bands() for a subset"
            )
        return grid_of((x.shape[2], x.shape[3]), self.patch_size)

    def pos_embed_for(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """(1, L, D) position embedding for a patch grid (the stored one if it matches).

        Fixed sin-cos embeddings are computed for another grid; a learned one is
        resampled bicubically.
        """
        if self.pos_embed_learned is not None:
            return resample_pos_embed(
                self.pos_embed_learned,
                old_grid=self.grid_size,
                new_grid=(int(grid_size[0]), int(grid_size[1])),
            )
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        return sincos_2d(grid_size, self.embed_dim)[None].to(self.pos_embed)

    def group_token_embed(self) -> torch.Tensor:
        """(G, D) spectral embedding per group: fixed wavelength sin-cos + learned."""
        return self.spectral_embed + self.group_embed

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Embed an image into group-major patch tokens (no cls token).

        Args:
            x: (B, C, H, W), channels in :attr:`bands` order.

        Returns:
            (B, G*L, D); token ``g * L + l`` is patch ``l`` of group ``g``.
        """
        grid = self.check_input(x)
        tokens = self.patch_embed(x)  # (B, G, L, D)
        pos = self.pos_embed_for(grid).unsqueeze(1)  # (1, 1, L, D)
        spectral = self.group_token_embed()[None, :, None, :]  # (1, G, 1, D)
        tokens = tokens + (pos + spectral)  # (B, G, L, D); one full-size add
        return tokens.flatten(1, 2)  # (B, G*L, D)

    def _prepend_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)  # (B, 1, D)
        return torch.cat([cls, tokens], dim=1)  # (B, 1+n, D)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the transformer on a (sub)set of patch tokens.

        The MAE calls this with the visible tokens only.

        Args:
            tokens: (B, n, D) patch tokens from :meth:`tokenize` (or gathered from them).

        Returns:
            (B, 1+n, D) normalized tokens, cls first.
        """
        x = self._prepend_cls(tokens)  # (B, 1+n, D)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)  # (B, 1+n, D), activations recomputed
        else:
            x = self.blocks(x)  # (B, 1+n, D)
        return self.norm(x)

    # ---- timm API --------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Regexes that group the parameters by depth (timm's layer-decay hook).

        The stem (patch embeddings, cls token, group embeddings, learned position
        embedding) is the first group and block ``i`` the group ``i + 1``; the final
        norm and the classifier share the last group, ``depth + 1``, so that timm's
        layer-decay factory gives them the full learning rate and the last block
        ``layer_decay`` times it, as in MAE's and BEiT's fine-tuning recipes (timm's own
        ViT puts the final norm into the last block's group instead).

        Args:
            coarse: accepted for timm's interface; the grouping is the same.
        """
        del coarse
        return {
            "stem": r"^cls_token|^group_embed|^pos_embed_learned|^patch_embed",
            "blocks": r"^blocks\.(\d+)",
            "head": r"^norm|^head",
        }

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks' activations in the backward pass (saves memory).

        Args:
            enable: turn gradient checkpointing on or off.
        """
        self.grad_checkpointing = bool(enable)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier head (``nn.Identity`` when ``num_classes == 0``)."""
        return self.head

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the blocks after the last one needed for ``indices`` (timm's interface).

        Args:
            indices: blocks that will be taken (see :meth:`forward_intermediates`).
            prune_norm: replace the final norm with an identity.
            prune_head: remove the classifier (``num_classes = 0``).

        Returns:
            The absolute indices of the blocks to take.
        """
        take, last = self._take_indices(indices)
        self.blocks = self.blocks[: last + 1]
        self.depth = len(self.blocks)
        self.feature_info = self.feature_info[: last + 1]
        if prune_norm:
            self.norm = nn.Identity()  # type: ignore[assignment]
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1+G*L, D) normalized tokens."""
        return self.encode_tokens(self.tokenize(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the tokens and apply the classifier.

        Args:
            x: (B, 1+G*L, D) from :meth:`forward_features`.
            pre_logits: return the pooled (B, D) features without the head.

        Returns:
            (B, num_classes) logits, or (B, D) if ``pre_logits`` or ``num_classes == 0``.
        """
        if self.global_pool == "avg":
            pooled = x[:, self.num_prefix_tokens :].mean(dim=1)  # (B, D)
        else:
            pooled = x[:, 0]  # (B, D)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes) logits (or (B, D) pooled features)."""
        return self.forward_head(self.forward_features(x))

    def _take_indices(self, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
        """Sorted absolute block indices and the last one (timm's ``feature_take_indices``)."""
        chosen = indices if indices is None or isinstance(indices, int) else list(indices)
        try:
            take, last = feature_take_indices(self.depth, chosen)
        except AssertionError as err:
            raise ConfigError(f"cannot take blocks {indices} of {self.depth}: {err}") from err
        return sorted(set(take)), int(last)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """Features of selected blocks as spatial maps.

        With several band groups there are G tokens per patch position; each
        intermediate map is their **mean over groups** at every position, so the
        maps have the layout of a plain ViT.

        Args:
            x: (B, C, H, W) input.
            indices: blocks to return: None = all, int n = the last n, or a list of
                (possibly negative) block indices.
            return_prefix_tokens: also return the cls token of each block, as pairs
                ``(map, (B, 1, D) cls)``.
            norm: apply the final LayerNorm to the intermediates.
            output_fmt: ``NCHW`` -> (B, D, gh, gw) maps; ``NLC`` -> (B, gh*gw, D).
            intermediates_only: return only the list (blocks after the last requested
                one are skipped).

        Returns:
            The list of intermediates, or ``(final (B, 1+G*L, D), intermediates)``.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ConfigError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take, _ = self._take_indices(indices)
        gh, gw = self.check_input(x)
        b, g = x.shape[0], self.num_groups
        h = self._prepend_cls(self.tokenize(x))  # (B, 1+G*L, D)
        last = take[-1] if intermediates_only else self.depth - 1
        intermediates: list[Any] = []
        for i, block in enumerate(self.blocks[: last + 1]):
            h = block(h)  # (B, 1+G*L, D)
            if i not in take:
                continue
            y = self.norm(h) if norm else h
            prefix = y[:, : self.num_prefix_tokens]  # (B, 1, D)
            spatial = y[:, self.num_prefix_tokens :].reshape(b, g, gh * gw, -1).mean(1)  # (B, L, D)
            if output_fmt == "NCHW":
                spatial = spatial.reshape(b, gh, gw, -1).permute(0, 3, 1, 2).contiguous()
            intermediates.append((spatial, prefix) if return_prefix_tokens else spatial)
        if intermediates_only:
            return intermediates
        return self.norm(h), intermediates

    # ---- band subsets ----------------------------------------------------------------
    def select_bands(self, bands: Sequence[str] | str) -> ChannelViT:
        """Return a new encoder for a subset of this model's bands, sharing no storage.

        The new model's input channels follow ``bands`` in the order given. Groups with
        no remaining band are dropped. For a group that keeps ``n_kept`` of its
        ``n_full`` bands, the patch-embedding weight is sliced to the kept input
        channels and multiplied by ``n_full / n_kept``, so that for bands of similar
        (normalized) values the embedding keeps the scale it had with all bands; its
        bias is kept. Each kept group keeps its spectral embedding (fixed wavelength
        and learned part); every other weight is copied unchanged. The new model is
        loaded with ``strict=True``: nothing is re-initialized.

        Args:
            bands: band names (any spelling) or a band-set name, each one of
                :attr:`bands`.

        Returns:
            The new :class:`ChannelViT` on the same device, in the same train/eval mode.

        Raises:
            BandError: a band that is not a Sentinel-2 band or not in this model
                (named in the message), or a duplicated band.
        """
        requested = parse_bands(bands, keep_order=True)
        missing = [b for b in requested if b not in self.bands]
        if missing:
            raise BandError(
                f"band(s) {missing} are not in this model; it was built for {self.bands}"
            )
        kept_groups: list[list[str]] = []
        plan: list[tuple[int, list[int]]] = []  # (old group, kept in-group channel indices)
        for g, group in enumerate(self.groups):
            kept = [b for b in group if b in requested]
            if kept:
                kept_groups.append(kept)
                plan.append((g, [group.index(b) for b in kept]))
        dropped = [grp for grp in self.groups if not any(b in requested for b in grp)]
        if dropped:
            log.info("select_bands: dropping band groups %s (no requested band)", dropped)
        kwargs = self.arch_kwargs()
        kwargs.update(
            bands=requested,
            groups=kept_groups,
            group_wavelengths=[self.group_wavelengths[g] for g, _ in plan],
        )
        new = ChannelViT(**kwargs)
        old_state = self.state_dict()
        state: dict[str, torch.Tensor] = {}
        for key, value in old_state.items():
            if key.startswith("patch_embed.") or key == "group_embed":
                continue
            state[key] = value
        for new_g, (old_g, channels) in enumerate(plan):
            weight = old_state[f"patch_embed.projs.{old_g}.weight"]  # (D, C_g, p, p)
            scale = len(self.groups[old_g]) / len(channels)
            index = torch.tensor(channels, device=weight.device)
            state[f"patch_embed.projs.{new_g}.weight"] = weight.index_select(1, index) * scale
            state[f"patch_embed.projs.{new_g}.bias"] = old_state[f"patch_embed.projs.{old_g}.bias"]
        state["group_embed"] = old_state["group_embed"][[g for g, _ in plan]]  # (G', D)
        new.load_state_dict(state, strict=True)
        new.to(device=self.cls_token.device, dtype=self.cls_token.dtype)
        return new.train(self.training)
