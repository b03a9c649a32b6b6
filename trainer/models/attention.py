"""Multi-head dot-product attention: a fused kernel, or explicit weights for rollout."""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# cuDNN's fused attention takes half-precision inputs with head sizes that are
# multiples of 8 up to 128 (256 from Hopper on; 128 is safe everywhere).
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)
_CUDNN_MAX_HEAD_DIM = 128
FUSED_SCOPE = "fused_attention"
EXPLICIT_SCOPE = "explicit_attention"


def fused_implementation(dtype: Any, head_dim: int, has_mask: bool, backend: Optional[str] = None) -> Optional[str]:
  """The `implementation` for jax.nn.dot_product_attention on `backend` (default: JAX's).

  'cudnn' (the fused flash-attention kernel) on NVIDIA GPUs for the inputs it
  supports, None (XLA's fusion of the same maths) everywhere else. Masks go to
  XLA: cuDNN turns them into a bias, which needs even sequence lengths.
  """
  if (backend or jax.default_backend()) != "gpu" or has_mask:
    return None
  if jnp.dtype(dtype) not in [jnp.dtype(d) for d in _CUDNN_DTYPES]:
    return None
  if head_dim % 8 or head_dim > _CUDNN_MAX_HEAD_DIM:
    return None
  return "cudnn"


class MultiHeadAttention(nn.Module):
  """Attention of `queries` over `context`: MCA(X, Y) of paper sec. 3.1.

  With context = queries this is self-attention (MSA). Parameter names and
  shapes are those of flax's MultiHeadDotProductAttention and so of the ViT
  checkpoints: query/key/value kernels [d, heads, d / heads], out kernel
  [heads, d / heads, d].

  Two paths compute the same function. By default `jax.nn.dot_product_attention`
  (cuDNN's fused kernel on GPU, XLA elsewhere), which never materialises the
  [B, heads, q, k] weights in memory. The explicit einsum / softmax path runs
  when the weights are asked for (attention rollout), when dropout on the
  weights is active, or with `fused=False` (benchmarks). Both compute the
  logits and the softmax in float32 whatever `dtype` is.

  Attributes:
    num_heads: attention heads; must divide the token size.
    dropout_rate: dropout on the attention weights during training.
    kernel_init: initialiser of the four projections.
    dtype: dtype of the projections and of the outputs (parameters stay float32).
    fused: use jax.nn.dot_product_attention when the weights are not needed.
  """

  num_heads: int
  dropout_rate: float = 0.0
  kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()
  dtype: Any = jnp.float32
  fused: bool = True

  @nn.compact
  def __call__(
      self,
      queries: jnp.ndarray,
      context: jnp.ndarray,
      *,
      mask: jnp.ndarray | None = None,
      deterministic: bool,
      return_weights: bool = False,
  ) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """Attends.

    Args:
      queries: [B, q, d] tokens that are updated.
      context: [B, k, d] tokens that provide keys and values.
      mask: optional boolean, broadcastable to [B, heads, q, k]; False means
        the query may not see that key (its weight is exactly zero).
      deterministic: no dropout when True.
      return_weights: also return the attention weights (explicit path).

    Returns:
      ([B, q, d] output, [B, heads, q, k] float32 attention weights before
      dropout, or None unless `return_weights`).
    """
    hidden = queries.shape[-1]
    if hidden % self.num_heads:
      raise ValueError(f"token size {hidden} is not a multiple of {self.num_heads} heads")
    head_dim = hidden // self.num_heads
    project = functools.partial(nn.DenseGeneral, features=(self.num_heads, head_dim), kernel_init=self.kernel_init,
                                dtype=self.dtype)
    query = project(name="query")(queries)
    key = project(name="key")(context)
    value = project(name="value")(context)

    dropping = self.dropout_rate > 0.0 and not deterministic
    weights = None
    # The scopes name the two paths in HLO metadata and profiles.
    if self.fused and not (return_weights or dropping):
      with jax.named_scope(FUSED_SCOPE):
        attended = jax.nn.dot_product_attention(
            query, key, value, mask=mask, implementation=fused_implementation(query.dtype, head_dim, mask is not None))
    else:
      dropout = nn.Dropout(rate=self.dropout_rate)
      attended, weights = _explicit_attention(query, key, value, mask, lambda w: dropout(w, deterministic=deterministic))
    output = nn.DenseGeneral(features=hidden, axis=(-2, -1), kernel_init=self.kernel_init, dtype=self.dtype,
                             name="out")(attended)
    return output, weights if return_weights else None


def _explicit_attention(query, key, value, mask, dropout):
  """(attended [B, q, heads, c], float32 weights [B, heads, q, k]) by einsum and softmax."""
  with jax.named_scope(EXPLICIT_SCOPE):
    logits = jnp.einsum("bqhc,bkhc->bhqk", query, key, preferred_element_type=jnp.float32)
    logits = logits / jnp.sqrt(jnp.float32(query.shape[-1]))
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhqk,bkhc->bqhc", dropout(weights).astype(value.dtype), value), weights
