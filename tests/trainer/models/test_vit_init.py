"""ViT ImageNet-21k initialisation from the vision_transformer `.npz` format."""

from __future__ import annotations

import flax
import numpy as np
import pytest
import scipy.ndimage

from trainer.models.vit_init import VitInitOptions, init_from_vit, load_vit_checkpoint, resize_grid_bilinear

HIDDEN, HEADS, MLP = 32, 2, 64  # The 'tiny' size.


def write_checkpoint(path, num_blocks: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
  """A ViT-B/16-format checkpoint with tiny sizes, saved with np.savez."""
  rng = np.random.default_rng(seed)

  def normal(*shape, scale=None):
    scale = 1 / np.sqrt(shape[0]) if scale is None else scale
    return (scale * rng.normal(size=shape)).astype(np.float32)

  head_dim = HIDDEN // HEADS
  arrays = {
      "embedding/kernel": normal(16, 16, 3, HIDDEN, scale=0.03),
      "embedding/bias": normal(HIDDEN, scale=0.1),
      "cls": normal(1, 1, HIDDEN, scale=0.5),
      "Transformer/encoder_norm/scale": 1 + normal(HIDDEN, scale=0.1),
      "Transformer/encoder_norm/bias": normal(HIDDEN, scale=0.1),
      "head/kernel": normal(HIDDEN, 21843),
      "head/bias": normal(21843, scale=0.1),
      "pre_logits/kernel": normal(HIDDEN, HIDDEN),
      "pre_logits/bias": normal(HIDDEN, scale=0.1),
  }
  # A grid that is linear in (row, column): bilinear resizing keeps it exact.
  rows, cols = np.meshgrid(np.arange(14), np.arange(14), indexing="ij")
  slope_r, slope_c, offset = normal(3, HIDDEN, scale=0.1)
  grid = rows[..., None] * slope_r + cols[..., None] * slope_c + offset
  posemb = np.concatenate([normal(1, HIDDEN), grid.reshape(196, HIDDEN)])[None]
  arrays["Transformer/posembed_input/pos_embedding"] = posemb.astype(np.float32)
  for block in range(num_blocks):
    prefix = f"Transformer/encoderblock_{block}"
    for norm in ("LayerNorm_0", "LayerNorm_2"):
      arrays[f"{prefix}/{norm}/scale"] = 1 + normal(HIDDEN, scale=0.1)
      arrays[f"{prefix}/{norm}/bias"] = normal(HIDDEN, scale=0.1)
    for name in ("query", "key", "value"):
      arrays[f"{prefix}/MultiHeadDotProductAttention_1/{name}/kernel"] = normal(HIDDEN, HEADS, head_dim)
      arrays[f"{prefix}/MultiHeadDotProductAttention_1/{name}/bias"] = normal(HEADS, head_dim, scale=0.1)
    out_kernel = normal(HEADS, head_dim, HIDDEN, scale=1 / np.sqrt(HIDDEN))
    arrays[f"{prefix}/MultiHeadDotProductAttention_1/out/kernel"] = out_kernel
    arrays[f"{prefix}/MultiHeadDotProductAttention_1/out/bias"] = normal(HIDDEN, scale=0.1)
    arrays[f"{prefix}/MlpBlock_3/Dense_0/kernel"] = normal(HIDDEN, MLP)
    arrays[f"{prefix}/MlpBlock_3/Dense_0/bias"] = normal(MLP, scale=0.1)
    arrays[f"{prefix}/MlpBlock_3/Dense_1/kernel"] = normal(MLP, HIDDEN)
    arrays[f"{prefix}/MlpBlock_3/Dense_1/bias"] = normal(HIDDEN, scale=0.1)
  np.savez(path, **arrays)
  return arrays


def flat(params) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/").items()}


def test_every_block_goes_into_every_stream_and_the_report_says_what_stayed(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  config = tiny_config(num_layers=3, fusion_layer=1)  # One layer more than the checkpoint has.
  _, variables = init_model(config)
  params, report = init_from_vit(variables["params"], str(tmp_path / "vit.npz"), config)
  loaded = flat(params)

  for layer in (0, 1):
    block = f"Transformer/encoderblock_{layer}"
    attention = f"{block}/MultiHeadDotProductAttention_1"
    for stream in ("rgb", "spectrogram"):
      ours = f"encoder/layer_{layer}/{stream}"
      np.testing.assert_array_equal(loaded[f"{ours}/attention/query/kernel"], arrays[f"{attention}/query/kernel"])
      np.testing.assert_array_equal(loaded[f"{ours}/attention/key/bias"], arrays[f"{attention}/key/bias"])
      np.testing.assert_array_equal(loaded[f"{ours}/attention/out/kernel"], arrays[f"{attention}/out/kernel"])
      np.testing.assert_array_equal(loaded[f"{ours}/attention_norm/scale"], arrays[f"{block}/LayerNorm_0/scale"])
      np.testing.assert_array_equal(loaded[f"{ours}/mlp_norm/bias"], arrays[f"{block}/LayerNorm_2/bias"])
      np.testing.assert_array_equal(loaded[f"{ours}/mlp/hidden/kernel"], arrays[f"{block}/MlpBlock_3/Dense_0/kernel"])
      np.testing.assert_array_equal(loaded[f"{ours}/mlp/output/kernel"], arrays[f"{block}/MlpBlock_3/Dense_1/kernel"])
  for modality in ("rgb", "spectrogram"):
    np.testing.assert_array_equal(loaded[f"encoder/norm_{modality}/scale"], arrays["Transformer/encoder_norm/scale"])
    np.testing.assert_array_equal(loaded[f"cls_{modality}/cls"], arrays["cls"])
  np.testing.assert_array_equal(loaded["tokenizer_rgb/projection/kernel"], arrays["embedding/kernel"])
  summed = arrays["embedding/kernel"].sum(2, keepdims=True)
  np.testing.assert_allclose(loaded["tokenizer_spectrogram/projection/kernel"], summed, rtol=1e-6)
  np.testing.assert_array_equal(loaded["tokenizer_spectrogram/projection/bias"], arrays["embedding/bias"])

  at_init = set(report.kept_at_init)
  assert "encoder/fusion_tokens" in at_init and "head/classifier/kernel" in at_init
  layer_2 = {name for name in flat(variables["params"]) if name.startswith("encoder/layer_2/")}
  assert {name for name in at_init if name.startswith("encoder/layer_")} == layer_2
  assert all(not name.startswith("encoder/layer_2") for name, _, _ in report.loaded)
  assert set(report.unused) == {"head/kernel", "head/bias", "pre_logits/kernel", "pre_logits/bias"}
  for name in at_init:
    np.testing.assert_array_equal(loaded[name], flat(variables["params"])[name])
  text = str(report)
  for line in ("at init encoder/fusion_tokens", "unused  head/kernel", "summed over RGB channels"):
    assert line in text


def test_positional_embeddings_are_resized_to_each_grid(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=1)
  config = tiny_config(num_layers=1, fusion_type="late")  # rgb grid (2, 2, 2), spectrogram (1, 2, 8)
  _, variables = init_model(config)
  params, _ = init_from_vit(variables["params"], arrays, config)
  source = arrays["Transformer/posembed_input/pos_embedding"][0]
  grid = source[1:].reshape(14, 14, HIDDEN)

  def linear_grid(height, width):  # The source grid is linear, so resizing is exact.
    rows = np.arange(height) * 13 / (height - 1)
    cols = np.arange(width) * 13 / (width - 1)
    slope_r, slope_c = grid[1, 0] - grid[0, 0], grid[0, 1] - grid[0, 0]
    return (rows[:, None, None] * slope_r + cols[None, :, None] * slope_c + grid[0, 0]).reshape(-1, HIDDEN)

  rgb = np.asarray(params["posembed_rgb"]["pos_embedding"])[0]
  np.testing.assert_array_equal(rgb[0], source[0])
  np.testing.assert_allclose(rgb[1:], np.tile(linear_grid(2, 2), (2, 1)), rtol=1e-5, atol=1e-5)
  spectrogram = np.asarray(params["posembed_spectrogram"]["pos_embedding"])[0]
  np.testing.assert_allclose(spectrogram[1:], linear_grid(2, 8), rtol=1e-5, atol=1e-5)


def test_bilinear_resize_matches_scipy_zoom():
  grid = np.random.default_rng(0).normal(size=(14, 14, 3))
  for height, width in ((50, 8), (7, 20), (14, 14), (2, 2), (1, 3), (1, 1)):
    expected = scipy.ndimage.zoom(grid, (height / 14, width / 14, 1), order=1)
    np.testing.assert_allclose(resize_grid_bilinear(grid, height, width), expected, rtol=1e-6, atol=1e-6)


def test_shared_self_attention_block_and_tubelet_kernel_are_loaded(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  config = tiny_config(fusion_type="self_attention", fusion_layer=1, num_frames=4, rgb_tubelet_frames=2)
  _, variables = init_model(config)
  loaded = flat(init_from_vit(variables["params"], arrays, config)[0])
  np.testing.assert_array_equal(
      loaded["encoder/layer_1/shared/mlp/hidden/bias"], arrays["Transformer/encoderblock_1/MlpBlock_3/Dense_0/bias"]
  )
  kernel = loaded["tokenizer_rgb/projection/kernel"]
  np.testing.assert_array_equal(kernel[1], arrays["embedding/kernel"])
  assert np.all(kernel[0] == 0)


def test_mismatched_checkpoint_is_refused(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=1)
  arrays["cls"] = np.zeros((1, 1, 48), np.float32)
  config = tiny_config(num_layers=1, fusion_type="late")
  with pytest.raises(ValueError, match="cls"):
    init_from_vit(init_model(config)[1]["params"], arrays, config)


def numpy_vit_cls(arrays: dict[str, np.ndarray], image: np.ndarray, posemb: np.ndarray, num_blocks: int) -> np.ndarray:
  """An independent ViT forward pass in numpy: the final normalised CLS."""

  def layer_norm(x, prefix):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * arrays[f"{prefix}/scale"] + arrays[f"{prefix}/bias"]

  def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

  h, w, _ = image.shape
  patches = image.reshape(h // 16, 16, w // 16, 16, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 16 * 16 * 3)
  x = patches @ arrays["embedding/kernel"].reshape(-1, HIDDEN) + arrays["embedding/bias"]
  x = np.concatenate([arrays["cls"][0], x]) + posemb
  for block in range(num_blocks):
    prefix = f"Transformer/encoderblock_{block}"
    attention = f"{prefix}/MultiHeadDotProductAttention_1"
    y = layer_norm(x, f"{prefix}/LayerNorm_0")
    q, k, v = (
        np.einsum("nd,dhc->nhc", y, arrays[f"{attention}/{n}/kernel"]) + arrays[f"{attention}/{n}/bias"]
        for n in ("query", "key", "value")
    )
    logits = np.einsum("qhc,khc->hqk", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = np.einsum("hqk,khc->qhc", weights, v)
    x = x + np.einsum("qhc,hcd->qd", attended, arrays[f"{attention}/out/kernel"]) + arrays[f"{attention}/out/bias"]
    y = layer_norm(x, f"{prefix}/LayerNorm_2")
    hidden = gelu(y @ arrays[f"{prefix}/MlpBlock_3/Dense_0/kernel"] + arrays[f"{prefix}/MlpBlock_3/Dense_0/bias"])
    x = x + hidden @ arrays[f"{prefix}/MlpBlock_3/Dense_1/kernel"] + arrays[f"{prefix}/MlpBlock_3/Dense_1/bias"]
  return layer_norm(x, "Transformer/encoder_norm")[0]


def test_loaded_rgb_stream_computes_the_vit(tmp_path, tiny_config, init_model, run_model):
  arrays = {k: v.astype(np.float64) for k, v in write_checkpoint(tmp_path / "vit.npz", num_blocks=2).items()}
  assert load_vit_checkpoint(str(tmp_path / "vit.npz")).keys() == arrays.keys()
  config = tiny_config(modalities=("rgb",), fusion_type="late", num_frames=1, image_size=48)
  model, variables = init_model(config)
  params, _ = init_from_vit(variables["params"], str(tmp_path / "vit.npz"), config)
  image = np.random.default_rng(1).normal(size=(1, 1, 48, 48, 3)).astype(np.float32)
  cls = np.asarray(run_model(model, {"params": params}, {"rgb": image})[1]["cls_embeddings"]["rgb"][0])
  source = arrays["Transformer/posembed_input/pos_embedding"][0]
  # Reference resizing by scipy, as ViT and Scenic do it.
  grid = scipy.ndimage.zoom(source[1:].reshape(14, 14, HIDDEN), (3 / 14, 3 / 14, 1), order=1).reshape(9, HIDDEN)
  expected = numpy_vit_cls(arrays, image[0, 0].astype(np.float64), np.concatenate([source[:1], grid]), num_blocks=2)
  np.testing.assert_allclose(cls, expected, rtol=1e-4, atol=1e-4)


def zoomed(grid: np.ndarray, height: int, width: int) -> np.ndarray:
  """Scenic's resizing of a [14, 14, d] grid, flattened to [height * width, d]."""
  return scipy.ndimage.zoom(grid, (height / 14, width / 14, 1), order=1).reshape(height * width, -1)


def test_default_init_keeps_fusion_tokens_and_copies_the_spectrogram_cls(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  config = tiny_config()
  _, variables = init_model(config)
  params, report = init_from_vit(variables["params"], arrays, config, VitInitOptions())
  loaded = flat(params)
  np.testing.assert_array_equal(loaded["encoder/fusion_tokens"], flat(variables["params"])["encoder/fusion_tokens"])
  np.testing.assert_array_equal(loaded["cls_spectrogram/cls"], arrays["cls"])
  assert "encoder/fusion_tokens" in report.kept_at_init


def test_scenic_init_fills_fusion_tokens_from_the_positional_table(tmp_path, tiny_config, init_model):
  """Scenic's 'token' models have n + 1 fusion tokens: the CLS entry, then the grid at 2 x 2 for n = 4."""
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  posemb = arrays["Transformer/posembed_input/pos_embedding"][0]
  grid = posemb[1:].reshape(14, 14, HIDDEN)
  config = tiny_config(num_bottleneck_tokens=5)
  _, variables = init_model(config)
  params, report = init_from_vit(variables["params"], arrays, config, {"fusion_tokens": "posemb"})
  tokens = flat(params)["encoder/fusion_tokens"][0]
  np.testing.assert_array_equal(tokens[0], posemb[0])
  np.testing.assert_allclose(tokens[1:], zoomed(grid, 2, 2), rtol=1e-5, atol=1e-6)
  assert ("encoder/fusion_tokens", "Transformer/posembed_input/pos_embedding",
          "CLS entry + grid resized to 2x2 (Scenic)") in report.loaded
  # Without CLS tokens ('gap', Scenic's MBT-B/16x2) the 4 tokens are the 2 x 2 grid alone.
  gap_config = tiny_config(classifier="gap")
  _, gap_variables = init_model(gap_config)
  gap_params, _ = init_from_vit(gap_variables["params"], arrays, gap_config, VitInitOptions.scenic())
  np.testing.assert_allclose(flat(gap_params)["encoder/fusion_tokens"][0], zoomed(grid, 2, 2), rtol=1e-5, atol=1e-6)
  rgb_table = flat(gap_params)["posembed_rgb/pos_embedding"][0]
  assert rgb_table.shape == (8, HIDDEN)  # no CLS entry: (2 frames) x (2 x 2) patches
  np.testing.assert_allclose(rgb_table, np.tile(zoomed(grid, 2, 2), (2, 1)), rtol=1e-5, atol=1e-6)


def test_scenic_init_leaves_the_spectrogram_cls_at_zero(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  config = tiny_config()
  _, variables = init_model(config)  # random values everywhere, the CLS tokens too
  params, report = init_from_vit(variables["params"], arrays, config, VitInitOptions.scenic())
  loaded = flat(params)
  assert np.all(loaded["cls_spectrogram/cls"] == 0)
  np.testing.assert_array_equal(loaded["cls_rgb/cls"], arrays["cls"])
  assert "zeros, as Scenic leaves it" in str(report)


def test_fusion_tokens_that_form_no_scenic_grid_are_refused(tmp_path, tiny_config, init_model):
  arrays = write_checkpoint(tmp_path / "vit.npz", num_blocks=2)
  config = tiny_config(num_bottleneck_tokens=6)  # CLS + 5: no h x w grid with h = floor(sqrt(5))
  with pytest.raises(ValueError, match="grid"):
    init_from_vit(init_model(config)[1]["params"], arrays, config, {"fusion_tokens": "posemb"})


def test_unknown_init_choices_are_refused():
  with pytest.raises(ValueError, match="fusion_tokens"):
    VitInitOptions(fusion_tokens="uniform")
  with pytest.raises(ValueError, match="spectrogram_cls"):
    VitInitOptions(spectrogram_cls="ones")
