"""A test-side forward of SatMAE's group-channel ViT encoder, written from its published
architecture (see geomae/importers/satmae.py for the facts), on plain tensors.

It shares no code with geomae or timm: convolutions, LayerNorm, softmax attention and
the MLP are spelled out, so that the importer's mapping is checked against the
architecture, not against itself.
"""

import argparse

import torch
import torch.nn.functional as F

#: SatMAE's channel groups as indices into its 10 bands B02 ... B8A B11 B12.
GROUP_INDICES = ((0, 1, 2, 6), (3, 4, 5, 7), (8, 9))
EPS = 1e-6  # LayerNorm eps of SatMAE's models


def make_satmae_state(
    *,
    embed_dim=64,
    channel_dim=16,
    depth=2,
    patch=8,
    grid=4,
    groups=GROUP_INDICES,
    mlp_ratio=4,
    decoder=True,
    seed=0,
):
    """Random weights with SatMAE's exact key names and shapes (an MAE checkpoint's if
    ``decoder``)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    d, hidden, n = embed_dim, embed_dim * mlp_ratio, grid * grid
    sd = {
        "cls_token": rnd(1, 1, d),
        "pos_embed": rnd(1, 1 + n, d - channel_dim, std=0.5),
        "channel_embed": rnd(1, len(groups), channel_dim, std=0.5),
        "channel_cls_embed": rnd(1, 1, channel_dim),
    }
    for i, idx in enumerate(groups):
        sd[f"patch_embed.{i}.proj.weight"] = rnd(d, len(idx), patch, patch)
        sd[f"patch_embed.{i}.proj.bias"] = rnd(d)
    for b in range(depth):
        p = f"blocks.{b}."
        sd[p + "norm1.weight"] = 1 + rnd(d)
        sd[p + "norm1.bias"] = rnd(d)
        sd[p + "attn.qkv.weight"] = rnd(3 * d, d, std=0.1)
        sd[p + "attn.qkv.bias"] = rnd(3 * d)
        sd[p + "attn.proj.weight"] = rnd(d, d, std=0.1)
        sd[p + "attn.proj.bias"] = rnd(d)
        sd[p + "norm2.weight"] = 1 + rnd(d)
        sd[p + "norm2.bias"] = rnd(d)
        sd[p + "mlp.fc1.weight"] = rnd(hidden, d, std=0.1)
        sd[p + "mlp.fc1.bias"] = rnd(hidden)
        sd[p + "mlp.fc2.weight"] = rnd(d, hidden, std=0.1)
        sd[p + "mlp.fc2.bias"] = rnd(d)
    sd["norm.weight"] = 1 + rnd(d)
    sd["norm.bias"] = rnd(d)
    if decoder:
        dd = 32
        sd["mask_token"] = rnd(1, 1, d)
        sd["decoder_embed.weight"] = rnd(dd, d)
        sd["decoder_embed.bias"] = rnd(dd)
        sd["decoder_pos_embed"] = rnd(1, 1 + n, dd - 8)
        sd["decoder_channel_embed"] = rnd(1, len(groups), 8)
        sd["decoder_blocks.0.norm1.weight"] = rnd(dd)
        sd["decoder_norm.weight"] = rnd(dd)
        for i, idx in enumerate(groups):
            sd[f"decoder_pred.{i}.weight"] = rnd(len(idx) * patch * patch, dd)
    return sd


def save_satmae_checkpoint(state, path):
    """Save like SatMAE's training script: model, optimizer, epoch, scaler and args."""
    torch.save(
        {
            "model": state,
            "optimizer": {"state": {}, "param_groups": []},
            "epoch": 199,
            "scaler": {"scale": 65536.0},
            "args": argparse.Namespace(model="mae_vit_large_patch16", input_size=96, lr=None),
        },
        path,
    )
    return path


def _block(h, sd, i, heads):
    p = f"blocks.{i}."
    b, n, d = h.shape
    y = F.layer_norm(h, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], EPS)
    qkv = y @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]  # (B, N, 3D)
    q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # (B, H, N, hd)
    att = torch.softmax((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5, dim=-1)
    y = (att @ v).transpose(1, 2).reshape(b, n, d)
    h = h + (y @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"])
    y = F.layer_norm(h, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], EPS)
    y = F.gelu(y @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
    return h + (y @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"])


def satmae_forward_features(sd, x, *, num_heads, groups=GROUP_INDICES, keep_groups=None):
    """(B, 10, H, W) -> (B, 1 + G*L, D) normalized tokens, as SatMAE's encoder computes them.

    ``keep_groups`` runs only those groups (their tokens, channel embeddings and patch
    embeddings), the way a model over a subset of whole groups sees the data.
    """
    keep = list(range(len(groups))) if keep_groups is None else list(keep_groups)
    tokens = []
    for g in keep:
        w, bias = sd[f"patch_embed.{g}.proj.weight"], sd[f"patch_embed.{g}.proj.bias"]
        y = F.conv2d(x[:, list(groups[g])], w, bias, stride=w.shape[-1])  # (B, D, gh, gw)
        tokens.append(y.flatten(2).transpose(1, 2))  # (B, L, D)
    t = torch.stack(tokens, dim=1)  # (B, G, L, D)
    b, ng, n, d = t.shape
    pos = sd["pos_embed"][:, 1:].unsqueeze(1).expand(-1, ng, -1, -1)  # (1, G, L, pD)
    chan = sd["channel_embed"][:, keep].unsqueeze(2).expand(-1, -1, n, -1)  # (1, G, L, cD)
    t = (t + torch.cat([pos, chan], dim=-1)).reshape(b, ng * n, d)
    cls = sd["cls_token"] + torch.cat([sd["pos_embed"][:, :1], sd["channel_cls_embed"]], -1)
    h = torch.cat([cls.expand(b, -1, -1), t], dim=1)  # (B, 1+G*L, D)
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(depth):
        h = _block(h, sd, i, num_heads)
    return F.layer_norm(h, (d,), sd["norm.weight"], sd["norm.bias"], EPS)
