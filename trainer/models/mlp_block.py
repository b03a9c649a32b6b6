"""The transformer's position-wise MLP."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MlpBlock(nn.Module):
  """Dense -> GELU -> dropout -> Dense -> dropout, applied to every token.

  GELU is flax's default tanh approximation, as in ViT. Initialisation follows
  ViT: Xavier-uniform kernels, biases N(0, 1e-6).

  Attributes:
    mlp_dim: width of the hidden layer (3072 for ViT-B).
    dropout_rate: dropout after the activation and after the output.
    dtype: dtype of the computation (parameters stay float32).
  """

  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: jnp.ndarray, *, deterministic: bool) -> jnp.ndarray:
    dense_kwargs = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.normal(stddev=1e-6),
                        dtype=self.dtype)
    hidden = nn.Dense(self.mlp_dim, name="hidden", **dense_kwargs)(tokens)
    hidden = nn.Dropout(rate=self.dropout_rate)(nn.gelu(hidden), deterministic=deterministic)
    output = nn.Dense(tokens.shape[-1], name="output", **dense_kwargs)(hidden)
    return nn.Dropout(rate=self.dropout_rate)(output, deterministic=deterministic)
