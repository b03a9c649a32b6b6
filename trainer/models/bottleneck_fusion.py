"""Fusion through attention bottlenecks (paper sec. 3.2.3, Eqs. 8-9)."""

from __future__ import annotations

from typing import Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.token_layout import FUSION_TOKENS, AttentionRows, split_attention


class BottleneckFusionLayer(nn.Module):
  """Modalities exchange information only through B shared fusion tokens.

  For each modality m: [z_m || zhat_fsn_m] = Transformer([z_m || z_fsn]; theta_m)
  with its own block (named after it); then z_fsn = mean_m zhat_fsn_m. The
  fusion tokens travel in the token dict under FUSION_TOKENS.

  A modality reads the other's contribution to z_fsn only in the NEXT fusion
  layer, so information reaches another modality's tokens only with two or
  more fusion layers: L_f = L - 1 is still late fusion for the CLS outputs.

  Attributes:
    modalities: names of the modality token groups.
    make_block: builds one EncoderBlock given `name`.
    exchange: True in normal use. False masks the fusion tokens out of the
      modality tokens' attention, cutting the only cross-modal path (the
      fusion tokens are still updated); for tests and ablations.
  """

  modalities: tuple[str, ...]
  make_block: Callable[..., nn.Module]
  exchange: bool = True

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], AttentionRows]:
    fusion = tokens[FUSION_TOKENS]
    num_fusion = fusion.shape[1]
    updated = dict(tokens)
    rows: AttentionRows = {FUSION_TOKENS: {}} if return_attention else {}
    fusion_updates = []
    for modality in self.modalities:
      size = tokens[modality].shape[1]
      groups = [(modality, size), (FUSION_TOKENS, num_fusion)]
      outputs, weights = self.make_block(name=modality)(
          jnp.concatenate([tokens[modality], fusion.astype(tokens[modality].dtype)], axis=1),
          attention_mask=None if self.exchange else _modality_ignores_fusion_mask(size, num_fusion),
          deterministic=deterministic,
          return_attention=return_attention,
      )
      updated[modality] = outputs[:, :size]
      fusion_updates.append(outputs[:, size:])
      if not return_attention:
        continue
      modality_rows = split_attention(weights, groups, groups)
      rows[modality] = modality_rows[modality]
      # The averaged fusion tokens draw on each modality's update in equal parts.
      for key, key_weights in modality_rows[FUSION_TOKENS].items():
        share = key_weights / len(self.modalities)
        rows[FUSION_TOKENS][key] = rows[FUSION_TOKENS][key] + share if key in rows[FUSION_TOKENS] else share
    updated[FUSION_TOKENS] = jnp.mean(jnp.stack(fusion_updates), axis=0)
    return updated, rows


def _modality_ignores_fusion_mask(num_modality: int, num_fusion: int) -> jnp.ndarray:
  """[1, 1, n + B, n + B] mask: modality queries may not see fusion keys."""
  is_modality = jnp.arange(num_modality + num_fusion) < num_modality
  return ~(is_modality[:, None] & ~is_modality[None, :])[None, None]
