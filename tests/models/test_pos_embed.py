import math

import pytest
import torch

from geomae.errors import ConfigError
from geomae.models import resample_pos_embed, sincos_1d, sincos_2d, wavelength_embed


def test_sincos_1d_matches_formula():
    emb = sincos_1d(torch.tensor([0.0, 3.0]), 8)
    assert emb.shape == (2, 8)
    assert emb.dtype == torch.float32
    # position 0: sin = 0, cos = 1
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    k = 1
    omega = 10000 ** (-k / 4)
    assert emb[1, k].item() == pytest.approx(math.sin(3 * omega), abs=1e-6)
    assert emb[1, 4 + k].item() == pytest.approx(math.cos(3 * omega), abs=1e-6)


def test_sincos_2d_row_major_halves():
    emb = sincos_2d((3, 4), 16)  # (12, 16)
    assert emb.shape == (12, 16)
    rows = emb[:, :8].reshape(3, 4, 8)
    cols = emb[:, 8:].reshape(3, 4, 8)
    # first half depends on the row only, second half on the column only
    assert torch.equal(rows, rows[:, :1].expand(3, 4, 8))
    assert torch.equal(cols, cols[:1].expand(3, 4, 8))
    assert torch.equal(emb[5, :8], sincos_1d(torch.tensor([1.0]), 8)[0])  # row 1
    assert torch.equal(emb[5, 8:], sincos_1d(torch.tensor([1.0]), 8)[0])  # column 1
    # all positions are distinct
    assert torch.cdist(emb, emb).add(torch.eye(12) * 10).min() > 0.1


def test_sincos_2d_width_must_divide_by_4():
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d((2, 2), 10)


def test_wavelength_embed_distinct():
    emb = wavelength_embed([490.0, 560.0, 665.0], 32)
    assert emb.shape == (3, 32)
    assert torch.cdist(emb, emb).add(torch.eye(3) * 10).min() > 0.5


def test_resample_keeps_prefix_and_constants():
    grid = torch.full((1, 4, 8), 2.5)  # constant over a 2x2 grid
    pos = torch.cat([torch.arange(8.0).view(1, 1, 8), grid], dim=1)  # (1, 1+4, 8)
    out = resample_pos_embed(pos, old_grid=(2, 2), new_grid=(4, 6), num_prefix_tokens=1)
    assert out.shape == (1, 1 + 24, 8)
    assert torch.equal(out[:, 0], pos[:, 0])
    assert torch.allclose(out[:, 1:], torch.full((1, 24, 8), 2.5), atol=1e-5)
    assert resample_pos_embed(pos, old_grid=(2, 2), new_grid=(2, 2), num_prefix_tokens=1) is pos


def test_resample_bilinear_interpolates_between_rows():
    # values 0 in row 0 and 1 in row 1 of a 2x1 grid; upsampled rows lie in [0, 1], monotone
    pos = torch.tensor([[[0.0], [1.0]]]).expand(1, 2, 4).contiguous()  # (1, 2, 4)
    out = resample_pos_embed(pos, old_grid=(2, 1), new_grid=(4, 1), mode="bilinear")
    col = out[0, :, 0]
    assert torch.all(col[1:] >= col[:-1])
    assert col.min() >= 0 and col.max() <= 1


def test_resample_checks_token_count():
    with pytest.raises(ConfigError, match="has 5 tokens"):
        resample_pos_embed(torch.zeros(1, 5, 8), old_grid=(2, 3), new_grid=(4, 4))
