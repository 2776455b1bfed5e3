"""The light MAE decoder: mask tokens, fixed position + group embeddings, per-group pixel heads."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from geomae.errors import ConfigError
from geomae.models.pos_embed import sincos_2d, wavelength_embed
from geomae.models.weight_init import init_linear_and_norm

__all__ = ["MAEDecoder"]


class MAEDecoder(nn.Module):
    """Reconstruct every token's pixels from the encoded visible tokens.

    The encoder output is projected to the decoder width, mask tokens fill the masked
    positions (put back in place with ``ids_restore``), each patch token gets the fixed
    2-D sin-cos position embedding and its group's embedding (fixed wavelength sin-cos
    + learned), then timm ``Block``s, a LayerNorm and one linear pixel head per group.
    """

    pos_embed: torch.Tensor  # (1, L, Dd) buffer
    spectral_embed: torch.Tensor  # (G, Dd) buffer

    def __init__(
        self,
        *,
        encoder_dim: int,
        group_sizes: Sequence[int],
        group_wavelengths: Sequence[float],
        grid_size: tuple[int, int],
        patch_size: int,
        embed_dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
    ) -> None:
        """Build the decoder.

        Args:
            encoder_dim: encoder token width D.
            group_sizes: number of bands C_g of each group.
            group_wavelengths: wavelength (nm) of each group.
            grid_size: (gh, gw) patch grid of the position-embedding buffer.
            patch_size: p.
            embed_dim: decoder width Dd.
            depth: decoder blocks.
            num_heads: decoder attention heads.
            mlp_ratio: MLP hidden width / Dd.
        """
        super().__init__()
        if len(group_sizes) != len(group_wavelengths):
            raise ConfigError("group_sizes and group_wavelengths differ in length")
        self.group_sizes = [int(c) for c in group_sizes]
        self.patch_size = int(patch_size)
        self.embed_dim = int(embed_dim)
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.embed = nn.Linear(encoder_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # (1, 1, Dd)
        self.register_buffer(
            "pos_embed", sincos_2d(self.grid_size, embed_dim)[None], persistent=False
        )  # (1, L, Dd)
        self.register_buffer(
            "spectral_embed", wavelength_embed(group_wavelengths, embed_dim), persistent=False
        )  # (G, Dd)
        self.group_embed = nn.Parameter(torch.zeros(len(self.group_sizes), embed_dim))  # (G, Dd)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=True,
                    norm_layer=norm_layer,  # type: ignore[arg-type]
                )
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim)
        self.heads = nn.ModuleList(
            nn.Linear(embed_dim, self.patch_size**2 * c) for c in self.group_sizes
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier linears, unit norms, normal(0.02) mask token, zero learned group embed."""
        self.apply(init_linear_and_norm)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.zeros_(self.group_embed)

    def pos_embed_for(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """(1, L, Dd) position embedding for a patch grid (the buffer if it matches)."""
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        return sincos_2d(grid_size, self.embed_dim)[None].to(self.pos_embed)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, grid_size: tuple[int, int]
    ) -> list[torch.Tensor]:
        """Decode.

        Args:
            latent: (B, 1+N_vis, D) encoder output, cls first, visible tokens in
                ``ids_keep`` order.
            ids_restore: (B, N) from the masking, N = G*L.
            grid_size: (gh, gw), gh*gw = L.

        Returns:
            One (B, L, p*p*C_g) prediction per group, patch layout of
            :func:`geomae.models.patchify.patchify`.
        """
        b, n = ids_restore.shape
        g = len(self.group_sizes)
        num_patches = grid_size[0] * grid_size[1]
        if n != g * num_patches:
            raise ConfigError(f"{n} tokens do not make {g} groups of {num_patches} patches")
        x = self.embed(latent)  # (B, 1+N_vis, Dd)
        visible = x[:, 1:]  # (B, N_vis, Dd)
        fill = self.mask_token.to(x.dtype).expand(b, n - visible.shape[1], -1)  # (B, N-N_vis, Dd)
        tokens = torch.cat([visible, fill], dim=1)  # (B, N, Dd), shuffled order
        index = ids_restore.unsqueeze(-1).expand(-1, -1, self.embed_dim)  # (B, N, Dd)
        tokens = torch.gather(tokens, 1, index).view(b, g, num_patches, -1)  # (B, G, L, Dd)
        pos = self.pos_embed_for(grid_size).unsqueeze(1)  # (1, 1, L, Dd)
        group = (self.spectral_embed + self.group_embed)[None, :, None, :]  # (1, G, 1, Dd)
        tokens = (tokens + pos + group).flatten(1, 2)  # (B, N, Dd)
        x = torch.cat([x[:, :1], tokens], dim=1)  # (B, 1+N, Dd)
        x = self.norm(self.blocks(x))  # (B, 1+N, Dd)
        x = x[:, 1:].view(b, g, num_patches, -1)  # (B, G, L, Dd)
        return [head(x[:, i]) for i, head in enumerate(self.heads)]  # G x (B, L, p*p*C_g)
