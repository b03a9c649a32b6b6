"""A learned classification token prepended to one modality's tokens."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class ClsToken(nn.Module):
  """Prepends a learned CLS token: [B, n, d] -> [B, 1 + n, d].

  Each modality has its own (paper Eq. 4); its final state feeds the
  classifier. The parameter is float32 and joins the tokens in their dtype.

  Attributes:
    initializer: initialiser of the [1, 1, d] token; zeros as in ViT and Scenic.
  """

  initializer: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, tokens: jnp.ndarray) -> jnp.ndarray:
    batch, _, hidden = tokens.shape
    cls = self.param("cls", self.initializer, (1, 1, hidden), jnp.float32).astype(tokens.dtype)
    return jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, hidden)), tokens], axis=1)
