"""The last step of the RGB input, run on the accelerator inside the jitted step.

The host pipeline ships uint8 frames (a quarter of float32's bytes) and, for
training, four colour-jitter numbers per clip drawn from the clip's own random
stream (see trainer.data.preprocess). Here they become float32 in [-1, 1], the
value range of the ImageNet-21k ViT checkpoints the paper starts from.

Colour jitter, per clip (the same for all its frames), in this order:
brightness (x + delta), contrast (towards each frame's per-channel mean),
saturation (towards the ITU-R 601 luma), optional grayscale; then clip to
[0, 1]. Parameters (0, 1, 1, 0) leave frames unchanged.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np

# numpy, not jnp: a jax array made at import would start JAX's backend before
# jax.distributed.initialize() can run.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def finish_rgb(frames: jnp.ndarray, jitter: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """uint8 frames [B, ..., H, W, 3] -> float32 in [-1, 1], jittered if asked.

  Args:
    frames: uint8 frames with the batch first, e.g. [B, T, H, W, 3].
    jitter: float32 [B, 4] (brightness delta, contrast, saturation, grayscale
      flag) or None for none (evaluation).
  """
  x = frames.astype(jnp.float32) * (1.0 / 255.0)
  if jitter is not None:
    # [B, 4] -> four arrays [B, 1, ..., 1] that broadcast against x.
    per_clip = jitter.astype(jnp.float32).reshape(jitter.shape[:1] + (1,) * (x.ndim - 1) + (4,))
    brightness, contrast, saturation, grayscale = (per_clip[..., i] for i in range(4))
    x = x + brightness
    mean = jnp.mean(x, axis=(-3, -2), keepdims=True)
    x = (x - mean) * contrast + mean
    gray = jnp.einsum("...c,c->...", x, _LUMA)[..., None]
    x = gray + (x - gray) * saturation
    x = jnp.where(grayscale > 0.5, jnp.broadcast_to(gray, x.shape), x)
    x = jnp.clip(x, 0.0, 1.0)
  return x * 2.0 - 1.0


def finish_inputs(inputs: dict, jitter: Optional[jnp.ndarray] = None) -> dict:
  """The model's input dict: RGB finished as above, the spectrogram as it is."""
  finished = dict(inputs)
  if "rgb" in finished:
    finished["rgb"] = finish_rgb(finished["rgb"], jitter)
  return finished
