"""RGB tokeniser: non-overlapping patches of every frame, or tubelets."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class RgbTokenizer(nn.Module):
  """Projects video patches to tokens, [B, T, H, W, 3] -> [B, t * h * w, d].

  With `tubelet_frames == 1` every frame is cut into patch_size patches by a
  2D convolution (kernel = stride = patch_size), the ViT way; its kernel has
  the ViT checkpoint's shape [16, 16, 3, d]. With `tubelet_frames > 1` a 3D
  convolution cuts tubelets of tubelet_frames x patch_size (kernel = stride),
  Scenic's '3d_conv' option; `central_frame_kernel` initialises it from a 2D
  kernel. Tokens are ordered time-major, then rows, then columns.

  Attributes:
    hidden_size: d, the size of one token.
    patch_size: (height, width) of a patch in pixels.
    tubelet_frames: frames per token; 1 means per-frame patches.
    dtype: dtype of the projection and of the tokens (the kernel stays float32).
  """

  hidden_size: int
  patch_size: tuple[int, int] = (16, 16)
  tubelet_frames: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, video: jnp.ndarray) -> jnp.ndarray:
    if video.ndim != 5 or video.shape[-1] != 3:
      raise ValueError(f"rgb input must be [B, T, H, W, 3], got {video.shape}")
    batch, frames, height, width, _ = video.shape
    patch_h, patch_w = self.patch_size
    if height % patch_h or width % patch_w or frames % self.tubelet_frames:
      raise ValueError(
          f"rgb input {video.shape} is not a whole number of {self.tubelet_frames}x{self.patch_size} patches"
      )
    if self.tubelet_frames == 1:
      # Frames go through the same 2D projection, as independent images.
      frames_as_images = video.reshape(batch * frames, height, width, 3)
      project = nn.Conv(self.hidden_size, self.patch_size, strides=self.patch_size, padding="VALID", dtype=self.dtype,
                        name="projection")
      tokens = project(frames_as_images)
    else:
      kernel = (self.tubelet_frames, patch_h, patch_w)
      tokens = nn.Conv(self.hidden_size, kernel, strides=kernel, padding="VALID", dtype=self.dtype,
                       name="projection")(video)
    return tokens.reshape(batch, -1, self.hidden_size)


def central_frame_kernel(kernel_2d: np.ndarray, tubelet_frames: int) -> np.ndarray:
  """Inflates a 2D patch kernel [h, w, c, d] to a tubelet kernel [t, h, w, c, d].

  The 2D kernel goes on the central time slice (index t // 2, Scenic's choice)
  and the other slices are zero, so at initialisation a tubelet token equals
  the 2D token of its central frame.
  """
  kernel_2d = np.asarray(kernel_2d)
  if kernel_2d.ndim != 4:
    raise ValueError(f"expected a 2D conv kernel [h, w, c, d], got shape {kernel_2d.shape}")
  inflated = np.zeros((tubelet_frames,) + kernel_2d.shape, kernel_2d.dtype)
  inflated[tubelet_frames // 2] = kernel_2d
  return inflated
