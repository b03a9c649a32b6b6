"""Mixup and modality mixup, applied on the accelerator to a finished batch.

Mixup (Zhang et al. 2018), as Scenic's MBT trainer applies it: one weight
lambda ~ Beta(alpha, alpha) per batch; every example is mixed with the example
at the mirrored position of the global batch (x[i] and x[B - 1 - i]):

  x_m' = lambda * x_m + (1 - lambda) * x_m[::-1]     for every modality m
  y'   = lambda * y   + (1 - lambda) * y[::-1]

Modality mixup (paper sec. 4.3, "an independent mixup weight per modality";
Scenic's `mixmod`): each modality m draws its own lambda_m and mixes its inputs
with it, with the same partner. Each modality's targets are mixed with its own
weight,

  y_m' = lambda_m * y + (1 - lambda_m) * y[::-1],

and the training loss of modality m's logits uses y_m' (the per-modality loss
of trainer.losses), so each modality is trained towards the mixture it saw.
Only for logging the averaged logits, the targets are mixed with the mean
weight, mean_m(lambda_m). With one modality both variants are the same.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp


def _mix(weight: jnp.ndarray, tree: Any) -> Any:
  return jax.tree.map(lambda x: weight * x + (1.0 - weight) * x[::-1], tree)


def mixup(rng: jax.Array, inputs: Mapping[str, jnp.ndarray], targets: Any, *, alpha: float,
          per_modality: bool) -> tuple[dict[str, jnp.ndarray], dict[str, Any], Any, dict[str, jnp.ndarray]]:
  """Mixes a batch.

  Args:
    rng: key for the Beta draws.
    inputs: modality -> float [B, ...] model inputs.
    targets: [B, C] soft targets, or a dict of them (EPIC-KITCHENS heads).
    alpha: Beta(alpha, alpha) parameter; the paper uses 0.3.
    per_modality: True for modality mixup (one weight per modality).

  Returns:
    (mixed inputs, modality -> mixed targets, targets mixed with the mean
    weight, modality -> weight).
  """
  modalities = sorted(inputs)
  draws = jax.random.beta(rng, alpha, alpha, shape=(len(modalities) if per_modality else 1,))
  weights = {m: draws[i] if per_modality else draws[0] for i, m in enumerate(modalities)}
  mixed = {m: _mix(weights[m], inputs[m]) for m in modalities}
  targets_per_modality = {m: _mix(weights[m], targets) for m in modalities}
  mean_weight = jnp.mean(jnp.stack([weights[m] for m in modalities]))
  return mixed, targets_per_modality, _mix(mean_weight, targets), weights
