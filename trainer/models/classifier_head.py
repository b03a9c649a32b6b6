"""The classifier shared by all modalities, with logits averaged."""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

Logits = jnp.ndarray | dict[str, jnp.ndarray]


class ClassifierHead(nn.Module):
  """Applies the SAME linear classifier(s) to each modality's CLS embedding.

  The logits of the modalities are averaged (paper sec. 3.4; Scenic's
  'output_projection'). With `class_heads` there is one linear layer per head
  (e.g. EPIC-KITCHENS verb and noun) and logits are dicts keyed by head.

  Attributes:
    num_classes: classes of the single head; 0 when class_heads is used.
    class_heads: ((head name, classes), ...) for several heads.
    zero_init: zero initial kernels (fine-tuning, as Scenic); else LeCun normal.
  """

  num_classes: int = 0
  class_heads: tuple[tuple[str, int], ...] = ()
  zero_init: bool = True

  @nn.compact
  def __call__(self, cls_embeddings: Mapping[str, jnp.ndarray]) -> tuple[Logits, dict[str, Logits]]:
    """Classifies.

    Args:
      cls_embeddings: modality -> [B, d] final CLS embedding.

    Returns:
      (logits averaged over modalities, modality -> logits), where logits are
      [B, num_classes] or {head: [B, classes]}.
    """
    if bool(self.num_classes) == bool(self.class_heads):
      raise ValueError("set exactly one of num_classes and class_heads")
    kernel_init = nn.initializers.zeros if self.zero_init else nn.linear.default_kernel_init
    if self.class_heads:
      classifiers = {
          head: nn.Dense(size, kernel_init=kernel_init, name=f"classifier_{head}") for head, size in self.class_heads
      }
      per_modality = {m: {head: dense(cls) for head, dense in classifiers.items()} for m, cls in cls_embeddings.items()}
      logits = {
          head: jnp.mean(jnp.stack([per_modality[m][head] for m in per_modality]), axis=0) for head in classifiers
      }
    else:
      classifier = nn.Dense(self.num_classes, kernel_init=kernel_init, name="classifier")
      per_modality = {m: classifier(cls) for m, cls in cls_embeddings.items()}
      logits = jnp.mean(jnp.stack(list(per_modality.values())), axis=0)
    return logits, per_modality
