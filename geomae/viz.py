"""Reconstruction figures: original, masked input and MAE reconstruction as composites.

Each row is one tile; columns show a true-colour (B04, B03, B02) and, where the bands
exist, a false-colour (B08, B04, B03) composite of the original, the masked input
(masked patches grey) and the reconstruction (visible patches from the input, masked
patches predicted). Pixels are de-normalized with the model's stats and stretched
between each band's 2nd and 98th percentile (mean +- 2 std where percentiles are
unknown).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from geomae.metadata import GeoMetadata  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from geomae.models import ChannelMAE

__all__ = ["COMPOSITES", "composite", "reconstruction_figure", "save_figure"]

#: Composite name -> (red, green, blue) bands.
COMPOSITES: dict[str, tuple[str, str, str]] = {
    "true colour": ("B04", "B03", "B02"),
    "false colour": ("B08", "B04", "B03"),
}


def composite(
    image: torch.Tensor, bands: list[str], rgb: tuple[str, str, str], meta: GeoMetadata
) -> torch.Tensor:
    """De-normalize three bands of a normalized tile and stretch them to [0, 1].

    Args:
        image: (C, H, W) normalized tile in ``bands`` order.
        bands: band names of ``image``'s channels.
        rgb: band names for the red, green and blue channels.
        meta: metadata holding the normalization statistics.

    Returns:
        (H, W, 3) float tensor in [0, 1].
    """
    channels = []
    for band in rgb:
        stat = meta.stats.bands[band]
        dn = image[bands.index(band)].float() * stat.std + stat.mean  # (H, W)
        low = stat.p2 if stat.p2 is not None else stat.mean - 2 * stat.std
        high = stat.p98 if stat.p98 is not None else stat.mean + 2 * stat.std
        channels.append(((dn - low) / max(high - low, 1e-6)).clamp(0, 1))
    return torch.stack(channels, dim=-1)  # (H, W, 3)


def _pixel_mask(model: ChannelMAE, mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Expand a token mask (B, G*L), group-major, to a channel mask (B, C, H, W)."""
    b, c, h, w = shape
    p = model.encoder.patch_size
    groups = model.encoder.groups
    bands = list(model.encoder.bands)
    gh, gw = h // p, w // p
    per_group = mask.reshape(b, len(groups), gh, gw).float()  # (B, G, gh, gw)
    per_group = F.interpolate(per_group, scale_factor=p, mode="nearest")  # (B, G, H, W)
    out = torch.zeros(b, c, h, w, device=mask.device)
    for g, group in enumerate(groups):
        for band in group:
            out[:, bands.index(band)] = per_group[:, g]
    return out > 0.5


@torch.no_grad()
def reconstruction_figure(
    model: ChannelMAE,
    image: torch.Tensor,
    valid: torch.Tensor | None,
    *,
    metadata: GeoMetadata,
    title: str = "",
) -> Figure:
    """Run the MAE on ``image`` and draw original / masked / reconstruction composites.

    Args:
        model: the MAE (its current mask ratio and strategy are used).
        image: (B, C, H, W) normalized tiles.
        valid: (B, 1, H, W) valid-pixel mask or None.
        metadata: bands and statistics used to de-normalize.
        title: figure title.

    Returns:
        The matplotlib figure (caller closes it).
    """
    was_training = model.training
    model.eval()
    out = model(image, valid)
    recon = model.reconstruct(out.pred, image=image, valid=valid)  # (B, C, H, W)
    model.train(was_training)
    masked = _pixel_mask(model, out.mask, image.shape)  # (B, C, H, W) True = masked
    pasted = torch.where(masked, recon, image)
    bands = list(model.encoder.bands)
    composites = {n: rgb for n, rgb in COMPOSITES.items() if set(rgb) <= set(bands)}
    if not composites:
        composites = {"first bands": tuple((bands * 3)[:3])}  # type: ignore[dict-item]
    cols = [(n, kind) for n in composites for kind in ("original", "masked", "reconstruction")]
    rows = image.shape[0]
    fig, axes = plt.subplots(rows, len(cols), figsize=(2.2 * len(cols), 2.2 * rows), squeeze=False)
    for i in range(rows):
        for j, (name, kind) in enumerate(cols):
            tile = {"original": image, "masked": image, "reconstruction": pasted}[kind][i]
            rgb = composite(tile.cpu(), bands, composites[name], metadata)  # (H, W, 3)
            if kind == "masked":
                hidden = masked[i, [bands.index(b) for b in composites[name]]].all(0).cpu()
                rgb[hidden] = 0.5
            axes[i, j].imshow(rgb.numpy())
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(f"{name}\n{kind}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
