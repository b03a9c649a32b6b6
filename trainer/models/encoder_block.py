"""The pre-LayerNorm transformer encoder block (paper Eqs. 2, 3 and 6)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from trainer.models.attention import MultiHeadAttention
from trainer.models.mlp_block import MlpBlock
from trainer.models.stochastic_depth import StochasticDepth

LAYER_NORM_EPSILON = 1e-6


class EncoderBlock(nn.Module):
  """y = x + MCA(LN(x), LN(context)); out = y + MLP(LN(y)).

  Without a context this is the ViT block (context = x, Eqs. 2-3). With a
  context it is the cross-transformer block of Eq. 6: the tokens x are the
  queries and the only tokens updated (attention output and MLP), while
  keys and values come from the context (which may include x). Both residual
  branches go through dropout and stochastic depth.

  Attributes:
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP.
    dropout_rate: dropout on the attention output and in the MLP.
    attention_dropout_rate: dropout on the attention weights.
    stochastic_depth_rate: per-example drop rate of each residual branch.
    dtype: dtype of the computation and of the tokens it returns; parameters
      stay float32 (LayerNorm statistics and the softmax run in float32).
    fused_attention: use the fused attention kernel unless weights are asked for.
  """

  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth_rate: float = 0.0
  dtype: Any = jnp.float32
  fused_attention: bool = True

  @nn.compact
  def __call__(
      self,
      tokens: jnp.ndarray,
      context: jnp.ndarray | None = None,
      *,
      attention_mask: jnp.ndarray | None = None,
      deterministic: bool,
      return_attention: bool = False,
  ) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """Updates `tokens`.

    Args:
      tokens: [B, n, d] tokens to update (the queries).
      context: optional [B, k, d] tokens to attend to; defaults to `tokens`.
      attention_mask: optional boolean mask broadcastable to [B, heads, n, k].
      deterministic: no dropout or stochastic depth when True.
      return_attention: also return the attention weights.

    Returns:
      ([B, n, d] updated tokens in `dtype`, [B, heads, n, k] float32 attention
      weights or None unless `return_attention`).
    """
    # One LayerNorm for queries and context: it is per token, so LN(context)
    # holds exactly LN(tokens) wherever the context contains the tokens.
    tokens = tokens.astype(self.dtype)
    attention_norm = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, dtype=self.dtype, name="attention_norm")
    queries = attention_norm(tokens)
    keys_values = queries if context is None else attention_norm(context.astype(self.dtype))
    attended, weights = MultiHeadAttention(
        num_heads=self.num_heads, dropout_rate=self.attention_dropout_rate, dtype=self.dtype,
        fused=self.fused_attention, name="attention"
    )(queries, keys_values, mask=attention_mask, deterministic=deterministic, return_weights=return_attention)
    attended = nn.Dropout(rate=self.dropout_rate)(attended, deterministic=deterministic)
    drop_attention = StochasticDepth(self.stochastic_depth_rate, name="attention_drop_path")
    tokens = tokens + drop_attention(attended, deterministic=deterministic)

    transformed = MlpBlock(self.mlp_dim, self.dropout_rate, dtype=self.dtype, name="mlp")(
        nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, dtype=self.dtype, name="mlp_norm")(tokens),
        deterministic=deterministic,
    )
    drop_mlp = StochasticDepth(self.stochastic_depth_rate, name="mlp_drop_path")
    tokens = tokens + drop_mlp(transformed, deterministic=deterministic)
    return tokens, weights
