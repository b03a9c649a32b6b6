"""On-device RGB finishing (colour jitter, scaling) and (modality) mixup."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.data import device_ops, mixup


def _frames(seed=0, shape=(2, 3, 4, 4, 3)):
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_no_jitter_only_scales_to_minus_one_one():
  frames = _frames()
  expected = frames.astype(np.float32) / 255 * 2 - 1
  np.testing.assert_allclose(device_ops.finish_rgb(frames), expected, atol=1e-6)
  identity = np.tile(np.array([[0.0, 1.0, 1.0, 0.0]], np.float32), (2, 1))
  np.testing.assert_allclose(device_ops.finish_rgb(frames, identity), expected, atol=1e-6)


def test_jitter_is_per_clip():
  frames = np.full((2, 1, 2, 2, 3), 100, np.uint8)
  jitter = np.array([[0.1, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]], np.float32)
  out = np.asarray(device_ops.finish_rgb(frames, jitter))
  np.testing.assert_allclose(out[0], (100 / 255 + 0.1) * 2 - 1, atol=1e-6)  # brighter
  np.testing.assert_allclose(out[1], 100 / 255 * 2 - 1, atol=1e-6)  # untouched


def test_contrast_saturation_grayscale_and_clipping():
  frames = np.zeros((1, 1, 1, 2, 3), np.uint8)
  frames[0, 0, 0, 0] = [255, 0, 0]
  frames[0, 0, 0, 1] = [0, 0, 255]
  finish = lambda params: (np.asarray(device_ops.finish_rgb(frames, np.array([params], np.float32))) + 1) / 2  # noqa
  gray = finish([0.0, 1.0, 1.0, 1.0])[0, 0, 0]
  np.testing.assert_allclose(gray[0], 0.299, atol=1e-6)  # luma of pure red, all channels
  np.testing.assert_allclose(gray[1], 0.114, atol=1e-6)
  desaturated = finish([0.0, 1.0, 0.0, 0.0])[0, 0, 0]
  np.testing.assert_allclose(desaturated, gray, atol=1e-6)
  flat = finish([0.0, 0.0, 1.0, 0.0])[0, 0, 0]  # contrast 0: each channel's frame mean
  np.testing.assert_allclose(flat[0], [0.5, 0.0, 0.5], atol=1e-6)
  assert finish([0.9, 1.0, 1.0, 0.0]).max() == pytest.approx(1.0)  # clipped


def _batch(size=4):
  rng = np.random.default_rng(0)
  inputs = {"rgb": jnp.asarray(rng.normal(size=(size, 2, 3)), jnp.float32),
            "spectrogram": jnp.asarray(rng.normal(size=(size, 5)), jnp.float32)}
  targets = jnp.asarray(np.eye(3, dtype=np.float32)[[0, 1, 2, 0][:size]])
  return inputs, targets


def test_standard_mixup_uses_one_weight_and_the_mirrored_partner():
  inputs, targets = _batch()
  mixed, per_modality, mean_targets, weights = mixup.mixup(jax.random.PRNGKey(0), inputs, targets, alpha=0.3,
                                                          per_modality=False)
  lam = float(weights["rgb"])
  assert lam == float(weights["spectrogram"]) and 0 <= lam <= 1
  for m in inputs:
    np.testing.assert_allclose(mixed[m], lam * inputs[m] + (1 - lam) * inputs[m][::-1], atol=1e-6)
    np.testing.assert_allclose(per_modality[m], lam * targets + (1 - lam) * targets[::-1], atol=1e-6)
  np.testing.assert_allclose(mean_targets, per_modality["rgb"], atol=1e-6)


def test_modality_mixup_draws_a_weight_per_modality_and_mixes_targets_with_it():
  inputs, targets = _batch()
  different = 0
  for seed in range(5):
    mixed, per_modality, mean_targets, weights = mixup.mixup(jax.random.PRNGKey(seed), inputs, targets, alpha=0.3,
                                                            per_modality=True)
    lam = {m: float(w) for m, w in weights.items()}
    different += lam["rgb"] != lam["spectrogram"]
    for m in inputs:
      np.testing.assert_allclose(mixed[m], lam[m] * inputs[m] + (1 - lam[m]) * inputs[m][::-1], atol=1e-6)
      np.testing.assert_allclose(per_modality[m], lam[m] * targets + (1 - lam[m]) * targets[::-1], atol=1e-6)
    mean = (lam["rgb"] + lam["spectrogram"]) / 2
    np.testing.assert_allclose(mean_targets, mean * targets + (1 - mean) * targets[::-1], atol=1e-6)
    np.testing.assert_allclose(per_modality["rgb"].sum(axis=1), 1.0, atol=1e-6)  # still distributions
  assert different == 5


def test_mixup_mixes_every_head_of_epic_targets():
  inputs, _ = _batch()
  targets = {"verb": jnp.eye(4)[:4], "noun": jnp.eye(4)[::-1]}
  _, per_modality, _, weights = mixup.mixup(jax.random.PRNGKey(1), inputs, targets, alpha=0.3, per_modality=True)
  lam = float(weights["spectrogram"])
  np.testing.assert_allclose(per_modality["spectrogram"]["noun"],
                             lam * targets["noun"] + (1 - lam) * targets["noun"][::-1], atol=1e-6)
