"""Training losses per dataset, averaged over modalities as Scenic's MBT does.

* AudioSet (multi-hot targets): sigmoid binary cross-entropy, summed over the
  527 classes and averaged over examples (Scenic's weighted sigmoid CE).
* VGGSound (one-hot targets): softmax cross-entropy, averaged over examples.
* EPIC-KITCHENS ({'verb', 'noun'} one-hot targets): the mean of the two heads'
  softmax cross-entropies (Scenic's multi-head model averages them).

At training time the model's per-modality logits (each modality's CLS through
the shared classifier) each get the loss against that modality's targets (which
differ under modality mixup), and the losses are averaged over modalities.

Targets are soft: mixup mixes them. Label smoothing, when configured, moves
(1 - eps) of the mass to the targets and eps uniformly: eps / C per class for
softmax, eps / 2 per class (towards 0.5) for sigmoid.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax.numpy as jnp
import optax

from trainer.data.preprocess import MULTI_HOT, ONE_HOT, VERB_NOUN


def _masked_mean(per_example: jnp.ndarray, mask: Optional[jnp.ndarray]) -> jnp.ndarray:
  if mask is None:
    return jnp.mean(per_example)
  return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def sigmoid_cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray, mask: Optional[jnp.ndarray] = None,
                          label_smoothing: float = 0.0) -> jnp.ndarray:
  """Sum over classes of the binary cross-entropy, mean over (masked) examples."""
  if label_smoothing:
    targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
  per_example = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)
  return _masked_mean(per_example, mask)


def softmax_cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray, mask: Optional[jnp.ndarray] = None,
                          label_smoothing: float = 0.0) -> jnp.ndarray:
  """Cross-entropy of soft targets, mean over (masked) examples."""
  if label_smoothing:
    targets = targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]
  return _masked_mean(optax.softmax_cross_entropy(logits, targets), mask)


def task_loss(label_kind: str, logits, targets, mask: Optional[jnp.ndarray] = None,
              label_smoothing: float = 0.0) -> jnp.ndarray:
  """The dataset's loss for one set of logits ([B, C] or {'verb', 'noun'})."""
  if label_kind == MULTI_HOT:
    return sigmoid_cross_entropy(logits, targets, mask, label_smoothing)
  if label_kind == ONE_HOT:
    return softmax_cross_entropy(logits, targets, mask, label_smoothing)
  if label_kind == VERB_NOUN:
    heads = sorted(targets)
    return jnp.mean(jnp.stack([softmax_cross_entropy(logits[h], targets[h], mask, label_smoothing) for h in heads]))
  raise ValueError(f"unknown label kind {label_kind!r}")


def modality_losses(label_kind: str, logits_per_modality: Mapping[str, object],
                    targets_per_modality: Mapping[str, object], mask: Optional[jnp.ndarray] = None,
                    label_smoothing: float = 0.0) -> dict[str, jnp.ndarray]:
  """Each modality's loss against its own targets."""
  return {m: task_loss(label_kind, logits_per_modality[m], targets_per_modality[m], mask, label_smoothing)
          for m in sorted(logits_per_modality)}


def per_modality_loss(label_kind: str, logits_per_modality: Mapping[str, object],
                      targets_per_modality: Mapping[str, object], mask: Optional[jnp.ndarray] = None,
                      label_smoothing: float = 0.0) -> jnp.ndarray:
  """The training loss: the mean over modalities of each modality's loss."""
  losses = modality_losses(label_kind, logits_per_modality, targets_per_modality, mask, label_smoothing)
  return jnp.mean(jnp.stack(list(losses.values())))
