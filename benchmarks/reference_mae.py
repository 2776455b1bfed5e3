"""A plain masked autoencoder, the yardstick for the ChannelMAE step benchmark.

Written for this benchmark from the description in He et al., "Masked Autoencoders
Are Scalable Vision Learners" (2021), section 3:

- the image is cut into non-overlapping p x p patches, each linearly embedded (one
  convolution over all input channels), plus a fixed 2-D sin-cos position embedding;
- per sample, a uniformly random subset of ``round(L * (1 - r))`` patches is kept
  (random noise, argsort, keep the first K), the rest is masked;
- the encoder (a learned class token + the visible patches only, then transformer
  blocks and a LayerNorm) never sees mask tokens;
- the light decoder projects the encoded tokens to its width, appends one shared
  learned mask token per masked patch, puts every token back at its position,
  adds its own fixed position embedding, runs its blocks, a LayerNorm and a linear
  head predicting the p*p*C pixels of every patch;
- the loss is the mean squared error on the masked patches only, the target of each
  patch normalized by that patch's own mean and variance.

It depends only on torch and timm (``Block`` with fused scaled-dot-product
attention), so it measures what the channel-aware machinery of geomae costs on top
of the classic MAE with the same widths, depths, heads and mask ratio.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

__all__ = ["ReferenceMAE", "grid_sincos"]


def grid_sincos(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding of a square patch grid.

    Half of the width encodes the row, half the column; each half is
    ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000 ** (-k / (dim / 4))``.

    Returns:
        (grid * grid, dim) float32, row-major.
    """
    quarter = dim // 4
    freqs = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64) / quarter)  # (dim/4,)
    pos = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")  # (grid, grid) each
    parts = []
    for coord in (rows.reshape(-1), cols.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]  # (L, dim/4)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()  # (L, dim)


class ReferenceMAE(nn.Module):
    """The classic single-tokenizer MAE; ``forward(image)`` returns the loss."""

    pos_embed: torch.Tensor  # (1, L, D) buffer
    decoder_pos_embed: torch.Tensor  # (1, L, Dd) buffer

    def __init__(
        self,
        *,
        in_chans: int,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        decoder_embed_dim: int,
        decoder_depth: int,
        decoder_num_heads: int,
        mlp_ratio: float = 4.0,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
    ) -> None:
        """Build the encoder and decoder (MAE initialization).

        Args:
            in_chans: input channels C.
            img_size: square tile size in pixels, divisible by ``patch_size``.
            patch_size: p.
            embed_dim: encoder width D (divisible by 4 and by ``num_heads``).
            depth: encoder blocks.
            num_heads: encoder attention heads.
            decoder_embed_dim: decoder width Dd.
            decoder_depth: decoder blocks.
            decoder_num_heads: decoder attention heads.
            mlp_ratio: MLP hidden width / width.
            mask_ratio: fraction of masked patches r.
            norm_pix_loss: normalize each target patch by its mean and variance.
        """
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.num_keep = min(max(round(self.num_patches * (1.0 - mask_ratio)), 1), self.num_patches)
        self.norm_pix_loss = norm_pix_loss
        norm = partial(nn.LayerNorm, eps=1e-6)

        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", grid_sincos(self.grid, embed_dim)[None])
        self.blocks = nn.Sequential(
            *[
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm)
                for _ in range(depth)
            ]
        )
        self.norm = norm(embed_dim)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", grid_sincos(self.grid, decoder_embed_dim)[None])
        dec_dim, dec_heads = decoder_embed_dim, decoder_num_heads
        self.decoder_blocks = nn.Sequential(
            *[
                Block(dec_dim, dec_heads, mlp_ratio, qkv_bias=True, norm_layer=norm)
                for _ in range(decoder_depth)
            ]
        )
        self.decoder_norm = norm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def patchify(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), pixel-major, channel-last."""
        b, c, _, _ = image.shape
        p, g = self.patch_size, self.grid
        x = image.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)  # (B, g, g, p, p, C)
        return x.reshape(b, g * g, p * p * c)

    def random_masking(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Keep ``num_keep`` random tokens per sample.

        Returns:
            ``(visible (B, K, D), mask (B, L) 1 = masked, ids_restore (B, L))``.
        """
        b, n, d = tokens.shape
        noise = torch.rand(b, n, device=tokens.device)  # (B, L)
        ids_shuffle = noise.argsort(dim=1)  # ascending: the first K are kept
        ids_restore = ids_shuffle.argsort(dim=1)  # (B, L)
        ids_keep = ids_shuffle[:, : self.num_keep]  # (B, K)
        visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, d))  # (B, K, D)
        mask = torch.ones(b, n, device=tokens.device)
        mask[:, : self.num_keep] = 0
        mask = mask.gather(1, ids_restore)  # (B, L) in patch order
        return visible, mask, ids_restore

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Embed, mask and encode the visible patches: ``(latent (B, 1+K, D), mask, ids)``."""
        tokens = self.patch_embed(image).flatten(2).transpose(1, 2)  # (B, L, D)
        tokens = tokens + self.pos_embed
        visible, mask, ids_restore = self.random_masking(tokens)  # (B, K, D)
        cls = self.cls_token.expand(visible.shape[0], -1, -1)  # (B, 1, D)
        x = self.blocks(torch.cat([cls, visible], dim=1))  # (B, 1+K, D)
        return self.norm(x), mask, ids_restore

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch: (B, 1+K, D) -> (B, L, p*p*C)."""
        x = self.decoder_embed(latent)  # (B, 1+K, Dd)
        b, _, dd = x.shape
        fill = self.mask_token.expand(b, self.num_patches - self.num_keep, -1)  # (B, L-K, Dd)
        patches = torch.cat([x[:, 1:], fill], dim=1)  # (B, L, Dd), shuffled order
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, dd))  # (B, L, Dd)
        x = torch.cat([x[:, :1], patches + self.decoder_pos_embed], dim=1)  # (B, 1+L, Dd)
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x[:, 1:])  # (B, L, p*p*C)

    def loss(self, image: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE over the masked patches (per-patch normalized targets)."""
        target = self.patchify(image.float())  # (B, L, p*p*C)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> () masked reconstruction loss."""
        latent, mask, ids_restore = self.encode(image)
        return self.loss(image, self.decode(latent, ids_restore), mask)
