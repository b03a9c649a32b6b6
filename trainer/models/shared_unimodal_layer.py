"""A layer below the fusion layer whose one block serves every modality (Scenic's share_encoder)."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import AttentionRows, split_attention


class SharedUnimodalLayer(nn.Module):
  """z_m <- Transformer(z_m; theta) for each modality m, with ONE theta.

  Scenic's `share_encoder` layout below L_f: each modality still sees only its
  own tokens, but all modalities go through the same block (named 'shared',
  like the block of SelfAttentionFusionLayer above L_f). With it, Scenic's
  self-attention model has one block per layer in every layer; the paper's
  layout (UnimodalLayer) has one block per modality below L_f. Token groups
  other than the modalities pass through unchanged.

  Attributes:
    modalities: names of the modality token groups to update.
    make_block: builds one EncoderBlock given `name`.
  """

  modalities: tuple[str, ...]
  make_block: Callable[..., nn.Module]

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], AttentionRows]:
    block = self.make_block(name="shared")
    updated, rows = dict(tokens), {}
    for modality in self.modalities:
      updated[modality], weights = block(tokens[modality], deterministic=deterministic,
                                         return_attention=return_attention)
      if return_attention:
        group = [(modality, tokens[modality].shape[1])]
        rows.update(split_attention(weights, group, group))
    return updated, rows
