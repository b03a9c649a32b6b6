"""A learned positional embedding added to one modality's tokens."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class PositionalEmbedding(nn.Module):
  """Adds a learned embedding per position: [B, n, d] -> [B, n, d].

  The table's length is fixed by the input seen at initialisation (CLS
  included); each modality has its own (paper Eq. 1, the `p` term). The table
  is float32 and is added in the tokens' dtype.

  Attributes:
    initializer: initialiser of the [1, n, d] table; N(0, 0.02) as in BERT and Scenic.
  """

  initializer: nn.initializers.Initializer = nn.initializers.normal(stddev=0.02)

  @nn.compact
  def __call__(self, tokens: jnp.ndarray) -> jnp.ndarray:
    table = self.param("pos_embedding", self.initializer, (1,) + tokens.shape[1:], jnp.float32)
    return tokens + table.astype(tokens.dtype)
