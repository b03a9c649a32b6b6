"""Attention rollout (paper fig. 6) and the joint attention the model returns."""

from __future__ import annotations

import numpy as np

from trainer.models import joint_token_groups
from trainer.models.rollout import attention_rollout, rgb_relevance_maps, token_relevance
from trainer.models.token_layout import joint_layout


def test_rollout_of_a_hand_computed_case():
  # Layer 1: token 0 copies token 1. Layer 2: token 0 copies token 2.
  layer_1 = [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
  layer_2 = [[0, 0, 1], [0, 1, 0], [0, 0, 1]]
  attention = np.array([[layer_1, layer_2]], np.float32)
  # With residuals: out_0 = 1/2 h_0 + 1/2 x_2 and h_0 = 1/2 x_0 + 1/2 x_1.
  np.testing.assert_allclose(token_relevance(attention, 0), [[0.25, 0.25, 0.5]], rtol=1e-6)
  np.testing.assert_allclose(attention_rollout(attention)[0, 0], [0.25, 0.25, 0.5], rtol=1e-6)


def test_row_propagation_equals_the_full_product():
  rng = np.random.default_rng(0)
  attention = rng.random((2, 4, 6, 6)).astype(np.float32)
  attention /= attention.sum(-1, keepdims=True)
  full = np.asarray(attention_rollout(attention))
  for token in (0, 3):
    np.testing.assert_allclose(token_relevance(attention, token), full[:, token], rtol=1e-5)
  np.testing.assert_allclose(full.sum(-1), 1.0, rtol=1e-5)


def test_rgb_map_of_a_hand_computed_case(tiny_config):
  config = tiny_config(modalities=("rgb",), fusion_type="late", num_layers=1, num_frames=1)
  attention = np.eye(5, dtype=np.float32)[None, None].copy()
  attention[0, 0, 0] = [0, 0.1, 0.2, 0.3, 0.4]  # The CLS looks at the four patches.
  maps = np.asarray(rgb_relevance_maps(attention, config))
  np.testing.assert_allclose(maps, [[[[0.05, 0.1], [0.15, 0.2]]]], rtol=1e-6)


def model_attention(config, init_model, random_inputs, run_model) -> np.ndarray:
  model, variables = init_model(config)
  return np.asarray(run_model(model, variables, random_inputs(config), return_attention=True)[1]["attention"])


def test_late_fusion_rgb_relevance_never_reaches_the_audio(tiny_config, init_model, random_inputs, run_model):
  config = tiny_config(fusion_type="late")
  attention = model_attention(config, init_model, random_inputs, run_model)
  np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
  layout = joint_layout(joint_token_groups(config))
  rgb, spectrogram = layout["rgb"], layout["spectrogram"]
  assert np.all(attention[:, :, rgb, spectrogram] == 0) and np.all(attention[:, :, spectrogram, rgb] == 0)
  relevance = np.asarray(token_relevance(attention, rgb.start))
  assert np.all(relevance[:, spectrogram] == 0)
  maps = np.asarray(rgb_relevance_maps(attention, config))
  assert maps.shape == (2, 2, 2, 2)  # [B, frames, h, w]
  assert np.all(maps > 0) and np.all(maps.sum(axis=(1, 2, 3)) < 1)
  assert np.all(np.asarray(rgb_relevance_maps(attention, config, cls_modality="spectrogram")) == 0)


def test_bottleneck_relevance_reaches_the_other_modality_only_via_fusion_tokens(
    tiny_config, init_model, random_inputs, run_model
):
  config = tiny_config(fusion_type="bottleneck", fusion_layer=0)
  attention = model_attention(config, init_model, random_inputs, run_model)
  np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
  layout = joint_layout(joint_token_groups(config))
  rgb, spectrogram, fusion = layout["rgb"], layout["spectrogram"], layout["fusion_tokens"]
  assert np.all(attention[:, :, rgb, spectrogram] == 0) and np.all(attention[:, :, spectrogram, rgb] == 0)
  assert np.all(attention[:, :, rgb, fusion] > 0) and np.all(attention[:, :, fusion, rgb] > 0)
  audio_on_video = np.asarray(rgb_relevance_maps(attention, config, cls_modality="spectrogram"))
  assert np.all(audio_on_video > 0)
