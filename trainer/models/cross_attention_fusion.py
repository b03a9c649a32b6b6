"""Vanilla cross-attention fusion with modality-specific weights (paper sec. 3.2.2)."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import AttentionRows, split_attention

# Queries and MLP only for the modality's own tokens (paper Eq. 6).
EQ6 = "eq6"
# Each modality's whole block over all tokens, keeping its own outputs (Scenic).
SCENIC = "scenic"


class CrossAttentionFusionLayer(nn.Module):
  """z_m <- Cross-Transformer(z_m; [z_rgb || z_spec]; theta_m) for each modality m.

  Each modality has its own block (named after it); its tokens attend to the
  tokens of all modalities. The two implementations give the same outputs:
  'eq6' feeds only the modality's own tokens as queries (Eq. 6), so queries,
  attention output and MLP are computed for them alone; 'scenic' runs the
  block over the whole concatenation and discards the other modalities'
  outputs, which costs more than twice late fusion at L_f = 0 (paper fig. 3).

  Attributes:
    modalities: names of the modality token groups, concatenated in order.
    make_block: builds one EncoderBlock given `name`.
    implementation: 'eq6' or 'scenic'.
  """

  modalities: tuple[str, ...]
  make_block: Callable[..., nn.Module]
  implementation: str = EQ6

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], AttentionRows]:
    if self.implementation not in (EQ6, SCENIC):
      raise ValueError(f"unknown cross-attention implementation {self.implementation!r}")
    groups = [(modality, tokens[modality].shape[1]) for modality in self.modalities]
    everything = jnp.concatenate([tokens[modality] for modality in self.modalities], axis=1)
    updated, rows, start = dict(tokens), {}, 0
    for modality, size in groups:
      block = self.make_block(name=modality)
      if self.implementation == EQ6:
        updated[modality], weights = block(tokens[modality], everything, deterministic=deterministic,
                                           return_attention=return_attention)
      else:
        all_outputs, weights = block(everything, deterministic=deterministic, return_attention=return_attention)
        updated[modality] = all_outputs[:, start:start + size]
        weights = None if weights is None else weights[:, :, start:start + size]
      if return_attention:
        rows.update(split_attention(weights, [(modality, size)], groups))
      start += size
    return updated, rows
