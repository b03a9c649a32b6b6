"""Stochastic depth: dropping a whole residual branch, per example."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def stochastic_depth_rates(rate: float, num_layers: int) -> list[float]:
  """Per-layer drop rates growing linearly: layer i gets rate * i / (L - 1).

  The first layer is never dropped and the last is dropped with `rate`
  (Scenic's schedule; a single layer gets 0).
  """
  return [rate * layer / max(num_layers - 1, 1) for layer in range(num_layers)]


class StochasticDepth(nn.Module):
  """Zeroes a residual branch for a random subset of examples in training.

  Each example of the batch draws its own keep/drop (timm's drop-path, which
  Scenic follows); kept branches are scaled by 1 / (1 - rate) so that the
  expected branch equals the evaluation-time branch (Scenic does not rescale).

  Attributes:
    rate: probability of dropping the branch for one example, in [0, 1).
  """

  rate: float

  @nn.compact
  def __call__(self, branch: jnp.ndarray, *, deterministic: bool) -> jnp.ndarray:
    if deterministic or self.rate == 0.0:
      return branch
    keep_prob = 1.0 - self.rate
    keep_shape = (branch.shape[0],) + (1,) * (branch.ndim - 1)
    keep = jax.random.bernoulli(self.make_rng("dropout"), keep_prob, keep_shape)
    return jnp.where(keep, branch / keep_prob, jnp.zeros_like(branch))
