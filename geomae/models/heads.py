"""Task heads on top of a ViT: linear heads and a UPerNet-style decoder.

``LinearProbeHead`` follows the MAE paper's linear probing: a BatchNorm without affine
parameters in front of the linear layer, which normalizes the frozen features.

``LinearSegmentationHead`` is the per-pixel linear probe of ``geomae bench-bands`` as a
module: a 1x1 convolution over the last block's normed patch map, upsampled bilinearly to
the tile. Bilinear upsampling is an affine combination of neighbours, so it commutes with
the 1x1 convolution: the head scores exactly what the probe scores on upsampled
features, and LP-FT can start fine-tuning from the fitted probe.

``UPerNetHead`` segments from four intermediate ViT layers, all at stride ``p`` (the
patch size). A simple feature pyramid turns them into strides p/4, p/2, p and 2p
(two transposed convolutions, one, identity, max-pool), a pyramid-pooling module
summarizes the coarsest level, a top-down FPN merges the levels, and the fused map is
classified and upsampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LinearProbeHead", "LinearSegmentationHead", "UPerNetHead"]


class LinearProbeHead(nn.Module):
    """BatchNorm (no affine) + linear classifier, for frozen features."""

    def __init__(self, *, in_features: int, num_classes: int) -> None:
        """Build the head.

        Args:
            in_features: feature width D.
            num_classes: number of outputs K.
        """
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False, eps=1e-6)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled features -> (B, K) logits."""
        return self.fc(self.norm(x))


class LinearSegmentationHead(nn.Module):
    """1x1 convolution over one ViT map, logits upsampled to the tile."""

    def __init__(self, *, in_channels: int, num_classes: int) -> None:
        """Build the head.

        Args:
            in_channels: ViT width D.
            num_classes: number of classes K.
        """
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, 1, bias=True)
        nn.init.trunc_normal_(self.classifier.weight, std=0.01)
        assert self.classifier.bias is not None
        nn.init.zeros_(self.classifier.bias)

    def load_linear(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the head to ``W f + b`` per pixel: ``weight`` (K, D), ``bias`` (K,)."""
        assert self.classifier.bias is not None
        with torch.no_grad():
            self.classifier.weight.copy_(weight.reshape(self.classifier.weight.shape))
            self.classifier.bias.copy_(bias)

    def forward(self, features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """(B, D, h, w) map -> (B, K, H, W) logits at ``output_size``."""
        logits = self.classifier(features)  # (B, K, h, w)
        if tuple(logits.shape[-2:]) == tuple(output_size):
            return logits
        return F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UPerNetHead(nn.Module):
    """UPerNet-style segmentation decoder over four same-stride ViT feature maps."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 128,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        """Build the head.

        Args:
            in_channels: ViT width D of each intermediate map.
            num_classes: number of classes K.
            channels: decoder width.
            pool_scales: output sizes of the pyramid-pooling branches.
            dropout: dropout before the classifier.
        """
        super().__init__()
        d = in_channels
        self.pyramid = nn.ModuleList(
            [
                nn.Sequential(  # stride p/4
                    nn.ConvTranspose2d(d, d, 2, stride=2),
                    nn.BatchNorm2d(d),
                    nn.GELU(),
                    nn.ConvTranspose2d(d, d, 2, stride=2),
                ),
                nn.ConvTranspose2d(d, d, 2, stride=2),  # stride p/2
                nn.Identity(),  # stride p
                nn.MaxPool2d(2, ceil_mode=True),  # stride 2p
            ]
        )
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), _conv_bn_relu(d, channels, 1))
            for s in pool_scales
        )
        self.ppm_out = _conv_bn_relu(d + len(pool_scales) * channels, channels)
        self.lateral = nn.ModuleList(_conv_bn_relu(d, channels, 1) for _ in range(3))
        self.fpn_out = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in range(3))
        self.fuse = _conv_bn_relu(4 * channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        """Segment.

        Args:
            features: four (B, D, h, w) maps from shallow to deep ViT layers.
            output_size: (H, W) of the logits (the input tile size).

        Returns:
            (B, K, H, W) logits.
        """
        if len(features) != 4:
            raise ValueError(f"UPerNetHead needs 4 feature maps, got {len(features)}")
        levels = [op(f) for op, f in zip(self.pyramid, features, strict=True)]  # fine->coarse
        top = levels[-1]  # (B, D, h/2, w/2)
        pooled = [
            F.interpolate(branch(top), size=top.shape[-2:], mode="bilinear", align_corners=False)
            for branch in self.ppm
        ]
        merged = [self.ppm_out(torch.cat([top, *pooled], dim=1))]  # coarsest first
        for i in (2, 1, 0):
            lateral = self.lateral[i](levels[i])
            up = F.interpolate(
                merged[0], size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
            merged.insert(0, self.fpn_out[i](lateral + up))
        size = merged[0].shape[-2:]  # finest, stride p/4
        upsampled = [
            F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in merged[1:]
        ]
        fused = torch.cat([merged[0], *upsampled], dim=1)  # (B, 4*channels, H', W')
        logits = self.classifier(self.dropout(self.fuse(fused)))
        return F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)
