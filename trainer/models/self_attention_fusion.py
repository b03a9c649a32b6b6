"""Vanilla self-attention fusion (paper sec. 3.2.1)."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import AttentionRows, split_attention


class SelfAttentionFusionLayer(nn.Module):
  """z <- Transformer([z_rgb || z_spec]; theta): one shared block over all tokens.

  Every token attends to every token of every modality, with one set of
  weights (the block is named 'shared'). The result is split back into the
  modalities so that layers compose.

  Attributes:
    modalities: names of the modality token groups, concatenated in order.
    make_block: builds one EncoderBlock given `name`.
  """

  modalities: tuple[str, ...]
  make_block: Callable[..., nn.Module]

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], AttentionRows]:
    groups = [(modality, tokens[modality].shape[1]) for modality in self.modalities]
    joint = jnp.concatenate([tokens[modality] for modality in self.modalities], axis=1)
    joint, weights = self.make_block(name="shared")(joint, deterministic=deterministic,
                                                    return_attention=return_attention)
    updated, start = dict(tokens), 0
    for modality, size in groups:
      updated[modality] = joint[:, start:start + size]
      start += size
    return updated, split_attention(weights, groups, groups) if return_attention else {}
