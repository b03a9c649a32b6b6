"""A layer below the fusion layer: every modality on its own."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import AttentionRows, split_attention


class UnimodalLayer(nn.Module):
  """z_m <- Transformer(z_m; theta_m) for each modality m (paper sec. 3.3, l < L_f).

  Each modality has its own block (named after it) and sees only its own
  tokens. Token groups other than the modalities (the fusion tokens) pass
  through unchanged. Late fusion is this layer at every depth.

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
    updated, rows = dict(tokens), {}
    for modality in self.modalities:
      updated[modality], weights = self.make_block(name=modality)(
          tokens[modality], deterministic=deterministic, return_attention=return_attention)
      if return_attention:
        group = [(modality, tokens[modality].shape[1])]
        rows.update(split_attention(weights, group, group))
    return updated, rows
