"""Attention rollout (Abnar & Zuidema, 2020): where the CLS token looked.

Paper fig. 6 maps the output CLS tokens back to the RGB input with rollout.
Per layer l the head-averaged attention A_l gets the residual connection
added and rows renormalised, Â_l = (A_l + I) / rowsum; the rollout is
R = Â_L ... Â_1, and row c of R says how much each input token contributes to
token c at the output. The model returns A_l over ALL tokens of all
modalities and the fusion tokens (`MBT(..., return_attention=True)`,
intermediates['attention']), so cross-modal paths are followed too.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from trainer.models import config as model_config
from trainer.models.mbt import joint_token_groups
from trainer.models.token_layout import joint_layout


def _with_residual(attention: jnp.ndarray) -> jnp.ndarray:
  """Â = (A + I) with rows renormalised, for [..., N, N] attention."""
  augmented = attention + jnp.eye(attention.shape[-1], dtype=attention.dtype)
  return augmented / augmented.sum(axis=-1, keepdims=True)


def attention_rollout(attention: jnp.ndarray) -> jnp.ndarray:
  """The full rollout matrix Â_L ... Â_1.

  Args:
    attention: [B, L, N, N] head-averaged attention per layer, rows = queries.

  Returns:
    [B, N, N]; row i holds the relevance of every input token to output token i.
  """
  layers = _with_residual(attention)
  rollout = layers[:, 0]
  for layer in range(1, layers.shape[1]):
    rollout = layers[:, layer] @ rollout
  return rollout


def token_relevance(attention: jnp.ndarray, token_index: int) -> jnp.ndarray:
  """Row `token_index` of the rollout, without forming N x N products.

  Propagates the row vector e_c down from the last layer: r <- r Â_l, which is
  O(L N^2) instead of O(L N^3).

  Args:
    attention: [B, L, N, N] head-averaged attention per layer.
    token_index: the output token (e.g. a CLS token's joint index).

  Returns:
    [B, N] relevance of each input token; sums to 1.
  """
  layers = _with_residual(attention)
  relevance = layers[:, -1, token_index]
  for layer in range(layers.shape[1] - 2, -1, -1):
    relevance = jnp.einsum("bn,bnm->bm", relevance, layers[:, layer])
  return relevance


def rgb_relevance_maps(
    attention: jnp.ndarray, config: ml_collections.ConfigDict, cls_modality: str = model_config.RGB
) -> jnp.ndarray:
  """Relevance of every RGB patch to a modality's output CLS, per frame.

  Args:
    attention: intermediates['attention'] of a model built from `config`.
    config: the model config (for the token layout and the RGB grid).
    cls_modality: whose CLS to explain; 'spectrogram' shows which image
      regions the audio classification drew on (only non-zero with fusion).

  Returns:
    [B, t, h, w]: t frames (or tubelets) of h x w patches. Values are shares
    of the CLS token's total relevance (all tokens sum to 1); normalise per
    map for display.
  """
  if model_config.RGB not in config.modalities:
    raise ValueError("the model has no RGB stream to map")
  if config.get("classifier", model_config.TOKEN) != model_config.TOKEN:
    raise ValueError(f"classifier {config.classifier!r} has no CLS token whose relevance could be mapped")
  layout = joint_layout(joint_token_groups(config))
  expected = max(s.stop for s in layout.values())
  if attention.shape[-1] != expected:
    raise ValueError(f"attention covers {attention.shape[-1]} tokens but the config's layout has {expected}")
  relevance = token_relevance(attention, layout[cls_modality].start)
  rgb = layout[model_config.RGB]
  frames, height, width = model_config.token_grids(config)[model_config.RGB]
  # Skip the RGB CLS token: the map is over patches only.
  return relevance[:, rgb.start + 1:rgb.stop].reshape(-1, frames, height, width)
