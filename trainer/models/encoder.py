"""The multimodal encoder: L layers, unimodal below L_f, fusing from L_f on."""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.bottleneck_fusion import BottleneckFusionLayer
from trainer.models.config import SHARED_ENCODER_FUSION_TYPES
from trainer.models.cross_attention_fusion import CrossAttentionFusionLayer
from trainer.models.encoder_block import LAYER_NORM_EPSILON, EncoderBlock
from trainer.models.self_attention_fusion import SelfAttentionFusionLayer
from trainer.models.stochastic_depth import stochastic_depth_rates
from trainer.models.token_layout import FUSION_TOKENS, assemble_joint_attention, joint_layout
from trainer.models.unimodal_layer import UnimodalLayer


class Encoder(nn.Module):
  """Runs the modality token streams through L layers (paper sec. 3.3).

  Layer l < L_f is a UnimodalLayer (with one shared block under
  share_encoder); layer l >= L_f is the fusion layer of `fusion_type`
  ('late' means L_f = L). Layers are named layer_0 ... and hold one block per
  modality (named after it), or one block named 'shared' for self-attention
  fusion and for every layer with share_encoder. Each modality's tokens end
  with its own LayerNorm (norm_<modality>).

  Attributes:
    modalities: modality names in canonical order.
    num_layers: L.
    num_heads: attention heads per block.
    mlp_dim: MLP width per block.
    fusion_type: 'bottleneck', 'self_attention', 'cross_attention' or 'late'.
    fusion_layer: L_f.
    share_encoder: one block per layer shared by all modalities in every
      layer (Scenic's share_encoder; 'self_attention' or 'late' only).
    num_bottleneck_tokens: B, for bottleneck fusion.
    bottleneck_exchange: False cuts the bottleneck (see BottleneckFusionLayer).
    cross_attention_impl: 'eq6' or 'scenic' (see CrossAttentionFusionLayer).
    dropout_rate: dropout inside the blocks.
    attention_dropout_rate: dropout on attention weights.
    stochastic_depth_rate: drop rate of the last layer's residual branches.
    dtype: dtype of the blocks' computation and of the token stream between
      them; the final LayerNorms run and return float32. Parameters stay float32.
    fused_attention: fused attention kernel unless attention is returned.
  """

  modalities: tuple[str, ...]
  num_layers: int
  num_heads: int
  mlp_dim: int
  fusion_type: str = "late"
  fusion_layer: int = 0
  share_encoder: bool = False
  num_bottleneck_tokens: int = 4
  bottleneck_exchange: bool = True
  cross_attention_impl: str = "eq6"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth_rate: float = 0.0
  dtype: Any = jnp.float32
  fused_attention: bool = True

  @property
  def first_fusion_layer(self) -> int:
    """L_f as used: num_layers for late fusion or a single modality."""
    if self.fusion_type == "late" or len(self.modalities) < 2:
      return self.num_layers
    return self.fusion_layer

  @property
  def uses_fusion_tokens(self) -> bool:
    """Whether the model has bottleneck fusion tokens (some layer fuses through them)."""
    return self.fusion_type == "bottleneck" and self.first_fusion_layer < self.num_layers

  def _unimodal_layer_class(self):
    """The layer class (with its options bound) used below L_f."""
    return functools.partial(UnimodalLayer, share_block=True) if self.share_encoder else UnimodalLayer

  def _fusion_layer_class(self):
    """The layer class (with its options bound) used from L_f on."""
    if self.share_encoder and self.fusion_type not in SHARED_ENCODER_FUSION_TYPES:
      raise ValueError(f"share_encoder works with {SHARED_ENCODER_FUSION_TYPES}, not {self.fusion_type!r}")
    return {
        "bottleneck": functools.partial(BottleneckFusionLayer, exchange=self.bottleneck_exchange),
        "self_attention": SelfAttentionFusionLayer,
        "cross_attention": functools.partial(CrossAttentionFusionLayer, implementation=self.cross_attention_impl),
    }[self.fusion_type]

  @nn.compact
  def __call__(
      self, tokens: Mapping[str, jnp.ndarray], *, deterministic: bool, return_attention: bool = False
  ) -> tuple[dict[str, jnp.ndarray], jnp.ndarray | None]:
    """Encodes.

    Args:
      tokens: modality -> [B, n_m, d] embedded tokens (CLS first).
      deterministic: no dropout or stochastic depth when True.
      return_attention: also return the joint attention of every layer.

    Returns:
      (modality -> [B, n_m, d] normalised final tokens, plus FUSION_TOKENS ->
      [B, B_fsn, d] for bottleneck fusion; [B, L, N, N] joint attention over
      the layout of `joint_token_groups`, or None).
    """
    state = {modality: tokens[modality].astype(self.dtype) for modality in self.modalities}
    batch, _, hidden = state[self.modalities[0]].shape
    if self.uses_fusion_tokens:
      fusion = self.param(FUSION_TOKENS, nn.initializers.normal(stddev=0.02), (1, self.num_bottleneck_tokens, hidden))
      state[FUSION_TOKENS] = jnp.broadcast_to(fusion.astype(self.dtype), (batch, self.num_bottleneck_tokens, hidden))
    groups = [(name, value.shape[1]) for name, value in state.items()]

    layer_rows = []
    for layer, drop_rate in enumerate(stochastic_depth_rates(self.stochastic_depth_rate, self.num_layers)):
      make_block = functools.partial(
          EncoderBlock,
          num_heads=self.num_heads,
          mlp_dim=self.mlp_dim,
          dropout_rate=self.dropout_rate,
          attention_dropout_rate=self.attention_dropout_rate,
          stochastic_depth_rate=drop_rate,
          dtype=self.dtype,
          fused_attention=self.fused_attention,
      )
      layer_class = self._unimodal_layer_class() if layer < self.first_fusion_layer else self._fusion_layer_class()
      state, rows = layer_class(self.modalities, make_block, name=f"layer_{layer}")(
          state, deterministic=deterministic, return_attention=return_attention)
      layer_rows.append(rows)

    # The classifier reads these: normalised and returned in float32.
    for modality in self.modalities:
      state[modality] = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, dtype=jnp.float32, name=f"norm_{modality}")(
          state[modality])
    attention = None
    if return_attention:
      layout = joint_layout(groups)
      attention = jnp.stack([assemble_joint_attention(rows, layout, batch) for rows in layer_rows], axis=1)
    return state, attention
