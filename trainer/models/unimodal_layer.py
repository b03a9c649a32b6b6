"""A layer below the fusion layer: every modality on its own."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import AttentionRows, split_attention

# The block's name when one block serves every modality (as in SelfAttentionFusionLayer).
SHARED_BLOCK = "shared"


class UnimodalLayer(nn.Module):
  """z_m <- Transformer(z_m; theta_m) for each modality m (paper sec. 3.3, l < L_f).

  Each modality sees only its own tokens. In the paper's layout each has its
  own block (named after it); with `share_block`, Scenic's share_encoder
  layout, all modalities go through one block named 'shared', so that
  Scenic's self-attention model has one block per layer in every layer.
  Token groups other than the modalities (the fusion tokens) pass through
  unchanged. Late fusion is this layer at every depth.

  Attributes:
    modalities: names of the modality token groups to update.
    make_block: builds one EncoderBlock given `name`.
    share_block: one block for every modality instead of one each.
  """

  modalities: tuple[str, ...]
  make_block: Callable[..., nn.Module]
  share_block: bool = False

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], AttentionRows]:
    shared = self.make_block(name=SHARED_BLOCK) if self.share_block else None
    updated, rows = dict(tokens), {}
    for modality in self.modalities:
      block = shared if shared is not None else self.make_block(name=modality)
      updated[modality], weights = block(tokens[modality], deterministic=deterministic,
                                         return_attention=return_attention)
      if return_attention:
        group = [(modality, tokens[modality].shape[1])]
        rows.update(split_attention(weights, group, group))
    return updated, rows
