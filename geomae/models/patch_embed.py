"""Per-group patch embedding: one ``Conv2d(C_g, D, kernel=p, stride=p)`` per band group."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GroupPatchEmbed"]


class GroupPatchEmbed(nn.Module):
    """Embed each band group's channels into patch tokens of width D.

    Attributes:
        projs: one convolution per group; ``projs[g].weight`` is (D, C_g, p, p) with its
            input channels in the group's band order.
        group_channels: input-channel indices of each group.
    """

    def __init__(
        self, *, group_channels: Sequence[Sequence[int]], patch_size: int, embed_dim: int
    ) -> None:
        """Build the embeddings.

        Args:
            group_channels: for each group, the indices of its channels in the input.
            patch_size: patch size p in pixels (kernel and stride).
            embed_dim: token width D.
        """
        super().__init__()
        self.patch_size = int(patch_size)
        self.embed_dim = int(embed_dim)
        self.group_channels = [list(map(int, idx)) for idx in group_channels]
        self.projs = nn.ModuleList(
            nn.Conv2d(len(idx), embed_dim, kernel_size=patch_size, stride=patch_size)
            for idx in self.group_channels
        )
        # Contiguous groups are sliced (a view); others are gathered with index_select.
        self._slices: list[slice | None] = []
        for g, idx in enumerate(self.group_channels):
            contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
            self._slices.append(slice(idx[0], idx[0] + len(idx)) if contiguous else None)
            self.register_buffer(f"_index{g}", torch.tensor(idx), persistent=False)

    @property
    def num_groups(self) -> int:
        """Number of band groups G."""
        return len(self.projs)

    def group_input(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """Channels of group ``g``: (B, C, H, W) -> (B, C_g, H, W)."""
        sl = self._slices[g]
        if sl is not None:
            return x[:, sl]
        return x.index_select(1, getattr(self, f"_index{g}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed patches group by group.

        Args:
            x: (B, C, H, W) image, H and W divisible by p.

        Returns:
            (B, G, L, D) tokens, L = (H/p) * (W/p) in row-major order.
        """
        tokens = [
            proj(self.group_input(x, g)).flatten(2).transpose(1, 2)  # (B, L, D)
            for g, proj in enumerate(self.projs)
        ]
        if len(tokens) == 1:
            return tokens[0].unsqueeze(1)  # (B, 1, L, D), a view: no copy for one group
        return torch.stack(tokens, dim=1)  # (B, G, L, D)
