import pytest
import torch

from geomae.errors import ConfigError
from geomae.models import make_masks, visible_counts

STRATEGIES = ("consistent", "independent", "spectral")


@pytest.mark.parametrize(
    ("strategy", "groups", "patches", "ratio", "expected"),
    [
        ("consistent", 4, 16, 0.75, (4, 4)),
        ("independent", 4, 16, 0.75, (4, 4)),
        ("spectral", 4, 16, 0.75, (1, 16)),  # 3 groups dropped, the 4th fully visible
        ("spectral", 12, 16, 0.75, (3, 16)),
        ("consistent", 3, 16, 0.5, (3, 8)),
        ("spectral", 3, 16, 0.5, (2, 12)),  # 1 group dropped, 12 of 16 patches kept
        ("spectral", 1, 16, 0.75, (1, 4)),  # one group: same as consistent
        ("consistent", 2, 10, 0.99, (2, 1)),  # at least one patch per group
        ("consistent", 2, 10, 0.0, (2, 10)),
    ],
)
def test_visible_counts(strategy, groups, patches, ratio, expected):
    assert (
        visible_counts(strategy, num_groups=groups, num_patches=patches, mask_ratio=ratio)
        == expected
    )


def test_visible_counts_rejects_bad_input():
    with pytest.raises(ConfigError, match=r"mask_ratio must be in \[0, 1\)"):
        visible_counts("consistent", num_groups=1, num_patches=4, mask_ratio=1.0)
    with pytest.raises(ConfigError, match="unknown masking strategy 'random'"):
        visible_counts("random", num_groups=1, num_patches=4, mask_ratio=0.5)


def _masks(strategy, g=4, n=16, r=0.75, b=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return make_masks(
        batch_size=b, num_groups=g, num_patches=n, mask_ratio=r, strategy=strategy, generator=gen
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_masks_are_consistent_with_indices(strategy):
    m = _masks(strategy)
    b, n_total = m.mask.shape
    assert (b, n_total) == (8, 64)
    n_vis = m.ids_keep.shape[1]
    assert n_vis == 16
    # every sample: exactly n_vis visible tokens, and they are the ids_keep ones, ascending
    assert torch.all((m.mask == 0).sum(1) == n_vis)
    assert torch.all(m.mask.gather(1, m.ids_keep) == 0)
    assert torch.all(m.ids_keep[:, 1:] > m.ids_keep[:, :-1])
    # ids_restore undoes the (visible first, masked after) ordering
    tokens = torch.arange(n_total).expand(b, -1)  # token ids
    masked_ids = torch.stack([torch.nonzero(row).flatten() for row in m.mask])  # (B, N - n_vis)
    shuffled = torch.cat([m.ids_keep, masked_ids], dim=1)
    assert torch.equal(shuffled.gather(1, m.ids_restore), tokens)


def test_consistent_same_spatial_mask_for_all_groups():
    mask = _masks("consistent").mask.view(8, 4, 16)
    assert torch.equal(mask, mask[:, :1].expand(8, 4, 16))
    assert torch.all(mask.sum(-1) == 12)
    # samples differ
    assert not torch.equal(mask[0], mask[1])


def test_independent_masks_differ_between_groups():
    mask = _masks("independent").mask.view(8, 4, 16)
    assert torch.all(mask.sum(-1) == 12)  # same count in every group
    differs = [not torch.equal(mask[i, 0], mask[i, g]) for i in range(8) for g in range(1, 4)]
    assert sum(differs) >= 20


def test_spectral_drops_whole_groups():
    mask = _masks("spectral", g=12, n=16, r=0.75).mask.view(8, 12, 16)
    fully_masked = mask.sum(-1) == 16  # (B, G)
    assert torch.all(fully_masked.sum(-1) == 9)
    for i in range(8):
        kept = mask[i][~fully_masked[i]]  # (3, 16)
        # the kept groups share one spatial mask (here: all visible)
        assert torch.equal(kept, kept[:1].expand_as(kept))
    # which groups are dropped varies across the batch
    assert len({tuple(row.tolist()) for row in fully_masked}) > 1


def test_spectral_partial_spatial_mask_shared_by_kept_groups():
    mask = _masks("spectral", g=3, n=16, r=0.5).mask.view(8, 3, 16)
    fully_masked = mask.sum(-1) == 16
    assert torch.all(fully_masked.sum(-1) == 1)
    for i in range(8):
        kept = mask[i][~fully_masked[i]]  # (2, 16)
        assert torch.equal(kept[0], kept[1])
        assert kept[0].sum() == 4


def test_generator_makes_masks_reproducible():
    assert torch.equal(_masks("independent", seed=3).mask, _masks("independent", seed=3).mask)
    assert not torch.equal(_masks("independent", seed=3).mask, _masks("independent", seed=4).mask)
