"""The small modules: tokenisers, CLS and positional embedding, attention, block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from trainer.models.cls_token import ClsToken
from trainer.models.encoder import Encoder
from trainer.models.encoder_block import EncoderBlock
from trainer.models.positional_embedding import PositionalEmbedding
from trainer.models.rgb_tokenizer import RgbTokenizer, central_frame_kernel
from trainer.models.spectrogram_tokenizer import SpectrogramTokenizer

RNG = np.random.default_rng(0)


def patches(image: np.ndarray, size: int) -> np.ndarray:
  """[H, W, C] -> [H/size * W/size, size*size*C], row-major patch order."""
  h, w, c = image.shape
  grid = image.reshape(h // size, size, w // size, size, c).transpose(0, 2, 1, 3, 4)
  return grid.reshape(-1, size * size * c)


def test_rgb_tokens_are_per_frame_patch_projections():
  video = RNG.normal(size=(2, 3, 32, 48, 3)).astype(np.float32)
  tokenizer = RgbTokenizer(hidden_size=8)
  variables = tokenizer.init(jax.random.key(0), video)
  tokens = np.asarray(tokenizer.apply(variables, video))
  assert tokens.shape == (2, 3 * 2 * 3, 8)
  kernel = np.asarray(variables["params"]["projection"]["kernel"]).reshape(-1, 8)
  bias = np.asarray(variables["params"]["projection"]["bias"])
  for frame in range(3):  # Time-major, then rows, then columns.
    expected = patches(video[1, frame], 16) @ kernel + bias
    np.testing.assert_allclose(tokens[1, frame * 6:(frame + 1) * 6], expected, rtol=1e-4, atol=1e-4)


def test_tubelet_from_central_frame_kernel_equals_its_central_frame():
  video = RNG.normal(size=(1, 4, 32, 32, 3)).astype(np.float32)
  per_frame = RgbTokenizer(hidden_size=8)
  frame_variables = per_frame.init(jax.random.key(0), video)
  tubelet = RgbTokenizer(hidden_size=8, tubelet_frames=2)
  tubelet_params = {"projection": {
      "kernel": central_frame_kernel(frame_variables["params"]["projection"]["kernel"], 2),
      "bias": frame_variables["params"]["projection"]["bias"],
  }}
  tubelet_tokens = np.asarray(tubelet.apply({"params": tubelet_params}, video)).reshape(1, 2, 4, 8)
  frame_tokens = np.asarray(per_frame.apply(frame_variables, video)).reshape(1, 4, 4, 8)
  # Central slice of a 2-frame tubelet is index 1 (Scenic: t // 2).
  np.testing.assert_allclose(tubelet_tokens, frame_tokens[:, 1::2], rtol=1e-5, atol=1e-5)
  assert central_frame_kernel(np.ones((16, 16, 3, 8)), 3)[[0, 2]].sum() == 0


def test_spectrogram_tokens_are_time_major_single_channel_patches():
  spectrogram = RNG.normal(size=(2, 48, 128)).astype(np.float32)
  tokenizer = SpectrogramTokenizer(hidden_size=8)
  variables = tokenizer.init(jax.random.key(0), spectrogram)
  assert variables["params"]["projection"]["kernel"].shape == (16, 16, 1, 8)
  tokens = np.asarray(tokenizer.apply(variables, spectrogram))
  assert tokens.shape == (2, 3 * 8, 8)
  kernel = np.asarray(variables["params"]["projection"]["kernel"]).reshape(-1, 8)
  expected = patches(spectrogram[0, :, :, None], 16) @ kernel + np.asarray(variables["params"]["projection"]["bias"])
  np.testing.assert_allclose(tokens[0], expected, rtol=1e-4, atol=1e-4)


def test_cls_token_starts_at_zero_and_is_prepended():
  tokens = RNG.normal(size=(2, 5, 8)).astype(np.float32)
  module = ClsToken()
  variables = module.init(jax.random.key(0), tokens)
  np.testing.assert_array_equal(variables["params"]["cls"], np.zeros((1, 1, 8)))
  out = np.asarray(module.apply({"params": {"cls": np.full((1, 1, 8), 3.0, np.float32)}}, tokens))
  np.testing.assert_array_equal(out[:, 0], np.full((2, 8), 3.0))
  np.testing.assert_array_equal(out[:, 1:], tokens)


def test_positional_embedding_is_normal_002_and_added():
  tokens = np.zeros((2, 201, 64), np.float32)
  module = PositionalEmbedding()
  variables = module.init(jax.random.key(0), tokens)
  table = np.asarray(variables["params"]["pos_embedding"])
  assert table.shape == (1, 201, 64)
  assert 0.019 < table.std() < 0.021 and abs(table.mean()) < 0.002
  np.testing.assert_array_equal(module.apply(variables, tokens + 1.0), np.broadcast_to(table + 1.0, tokens.shape))


def test_fusion_tokens_start_normal_002():
  tokens = {"rgb": jnp.zeros((1, 3, 64)), "spectrogram": jnp.zeros((1, 3, 64))}
  encoder = Encoder(
      ("rgb", "spectrogram"), num_layers=1, num_heads=1, mlp_dim=8, fusion_type="bottleneck", fusion_layer=0,
      num_bottleneck_tokens=64,
  )
  init = jax.jit(lambda: encoder.init(jax.random.key(0), tokens, deterministic=True))
  fusion = np.asarray(init()["params"]["fusion_tokens"])
  assert fusion.shape == (1, 64, 64)
  assert 0.019 < fusion.std() < 0.021


def block_and_params(hidden=16, heads=2):
  block = EncoderBlock(num_heads=heads, mlp_dim=32)
  tokens = RNG.normal(size=(2, 5, hidden)).astype(np.float32)
  return block, block.init(jax.random.key(0), tokens, deterministic=True), tokens


def test_cross_block_with_its_own_tokens_as_context_is_the_self_attention_block():
  block, variables, tokens = block_and_params()
  alone, alone_weights = block.apply(variables, tokens, deterministic=True, return_attention=True)
  crossed, crossed_weights = block.apply(variables, tokens, tokens, deterministic=True, return_attention=True)
  np.testing.assert_allclose(alone, crossed, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(alone_weights, crossed_weights, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(alone_weights).sum(-1), 1.0, rtol=1e-5)


def test_queries_only_block_updates_just_its_tokens_and_reads_the_context():
  block, variables, tokens = block_and_params()
  context = np.concatenate([tokens, RNG.normal(size=(2, 7, 16)).astype(np.float32)], axis=1)
  out, weights = block.apply(variables, tokens, context, deterministic=True, return_attention=True)
  assert out.shape == tokens.shape and weights.shape == (2, 2, 5, 12)
  full, _ = block.apply(variables, context, deterministic=True)
  np.testing.assert_allclose(out, np.asarray(full)[:, :5], rtol=1e-5, atol=1e-5)


def test_attention_mask_gives_exactly_zero_weight():
  block, variables, tokens = block_and_params()
  mask = np.ones((5, 5), bool)
  mask[:, 3:] = False
  mask[3:, 3:] = True
  out, weights = block.apply(variables, tokens, attention_mask=mask[None, None], deterministic=True,
                             return_attention=True)
  assert np.all(np.asarray(weights)[:, :, :3, 3:] == 0)
  unmasked_rows, _ = block.apply(variables, tokens[:, :3], deterministic=True)
  np.testing.assert_allclose(np.asarray(out)[:, :3], unmasked_rows, rtol=1e-5, atol=1e-5)
