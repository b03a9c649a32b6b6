"""Spectrogram tokeniser: the log-mel treated as a one-channel image."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SpectrogramTokenizer(nn.Module):
  """Projects log-mel patches to tokens, [B, rows, mel_bins] -> [B, n, d].

  The spectrogram is an image of time rows x mel bins with one channel (AST,
  paper sec. 3.1); non-overlapping patch_size patches (kernel = stride) make
  rows/16 x mel_bins/16 tokens, time-major: 800 x 128 -> 50 x 8 = 400.

  Attributes:
    hidden_size: d, the size of one token.
    patch_size: (time rows, mel bins) of a patch.
    dtype: dtype of the projection and of the tokens (the kernel stays float32).
  """

  hidden_size: int
  patch_size: tuple[int, int] = (16, 16)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, spectrogram: jnp.ndarray) -> jnp.ndarray:
    if spectrogram.ndim != 3:
      raise ValueError(f"spectrogram input must be [B, rows, mel_bins], got {spectrogram.shape}")
    batch, rows, bins = spectrogram.shape
    if rows % self.patch_size[0] or bins % self.patch_size[1]:
      raise ValueError(f"spectrogram {spectrogram.shape} is not a whole number of {self.patch_size} patches")
    image = spectrogram[..., None]
    project = nn.Conv(self.hidden_size, self.patch_size, strides=self.patch_size, padding="VALID", dtype=self.dtype,
                      name="projection")
    tokens = project(image)
    return tokens.reshape(batch, -1, self.hidden_size)
