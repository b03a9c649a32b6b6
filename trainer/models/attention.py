"""Multi-head dot-product attention that also returns its weights."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


class MultiHeadAttention(nn.Module):
  """Attention of `queries` over `context`: MCA(X, Y) of paper sec. 3.1.

  With context = queries this is self-attention (MSA). Parameter names and
  shapes are those of flax's MultiHeadDotProductAttention and so of the ViT
  checkpoints: query/key/value kernels [d, heads, d / heads], out kernel
  [heads, d / heads, d]. The weights are returned (before dropout) so that
  attention rollout can use them; unused, XLA drops them.

  Attributes:
    num_heads: attention heads; must divide the token size.
    dropout_rate: dropout on the attention weights during training.
    kernel_init: initialiser of the four projections.
  """

  num_heads: int
  dropout_rate: float = 0.0
  kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()

  @nn.compact
  def __call__(
      self,
      queries: jnp.ndarray,
      context: jnp.ndarray,
      *,
      mask: jnp.ndarray | None = None,
      deterministic: bool,
  ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Attends.

    Args:
      queries: [B, q, d] tokens that are updated.
      context: [B, k, d] tokens that provide keys and values.
      mask: optional boolean, broadcastable to [B, heads, q, k]; False means
        the query may not see that key (its weight is exactly zero).
      deterministic: no dropout when True.

    Returns:
      ([B, q, d] output, [B, heads, q, k] attention weights).
    """
    hidden = queries.shape[-1]
    if hidden % self.num_heads:
      raise ValueError(f"token size {hidden} is not a multiple of {self.num_heads} heads")
    head_dim = hidden // self.num_heads
    project = functools.partial(nn.DenseGeneral, features=(self.num_heads, head_dim), kernel_init=self.kernel_init)
    query = project(name="query")(queries) / jnp.sqrt(head_dim).astype(queries.dtype)
    key = project(name="key")(context)
    value = project(name="value")(context)
    logits = jnp.einsum("bqhc,bkhc->bhqk", query, key)
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    dropped = nn.Dropout(rate=self.dropout_rate)(weights, deterministic=deterministic)
    attended = jnp.einsum("bhqk,bkhc->bqhc", dropped, value)
    output = nn.DenseGeneral(features=hidden, axis=(-2, -1), kernel_init=self.kernel_init, name="out")(attended)
    return output, weights
