"""Step 2: locally aware patch embeddings from several feature maps.

Each feature vector is averaged with its 3x3 neighbourhood (a small receptive-field boost that
keeps resolution), deeper maps are resized to the shallowest grid, and layers are concatenated:
one vector per grid cell ("patch").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import PatchCoreError


def aggregate(feat: torch.Tensor, size: int = 3) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h, w): mean over each size x size neighbourhood (stride 1).

    Zero padding counts in the mean at the border, as in the official code (unfold with padding)
    and anomalib (AvgPool2d): border patches are damped alike in training and test images.
    """
    return F.avg_pool2d(feat, size, stride=1, padding=size // 2, count_include_pad=True)


def fuse(feats: list[torch.Tensor]) -> torch.Tensor:
    """Resize every map to the finest (shallowest) map's grid and concatenate channels."""
    h, w = max((f.shape[-2:] for f in feats), key=lambda s: s[0] * s[1])  # any layer order
    resized = [f if f.shape[-2:] == (h, w) else
               F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False) for f in feats]
    return torch.cat(resized, dim=1)  # (B, sum C_l, h, w)


def reduce_dim(feats: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Official-code style reduction: pool each layer's vector to `dim`, then the stack to `dim`."""
    total = sum(f.shape[1] for f in feats)
    if dim > total:
        raise PatchCoreError(f"--embed-dim: {dim} is above the feature dimension {total} of these "
                             "layers (reduction cannot add information)")
    per_layer = [_pool_channels(f, dim) for f in feats]  # each (B, dim, h, w)
    return _pool_channels(torch.cat(per_layer, dim=1), dim)


def _pool_channels(f: torch.Tensor, dim: int) -> torch.Tensor:
    b, c, h, w = f.shape
    flat = f.permute(0, 2, 3, 1).reshape(-1, 1, c)  # (B*h*w, 1, C)
    pooled = F.adaptive_avg_pool1d(flat, dim)  # (B*h*w, 1, dim)
    return pooled.reshape(b, h, w, dim).permute(0, 3, 1, 2)


def embed(feats: list[torch.Tensor], embed_dim: int | None = None,
          local: bool = True) -> torch.Tensor:
    """Layer maps -> patch embeddings (B, h, w, D). D = sum of channels, or `embed_dim`."""
    if local:
        feats = [aggregate(f) for f in feats]
    fused = fuse(feats)  # (B, C, h, w)
    if embed_dim:
        fused = reduce_dim(list(torch.split(fused, [f.shape[1] for f in feats], dim=1)), embed_dim)
    return fused.permute(0, 2, 3, 1).contiguous()  # (B, h, w, D)
