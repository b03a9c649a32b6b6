"""The paper's fusion semantics, pinned on a tiny model (paper sec. 3.2-3.3)."""

from __future__ import annotations

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.models import build_model
from trainer.models.stochastic_depth import StochasticDepth, stochastic_depth_rates


@functools.partial(jax.jit, static_argnames=("model",), compiler_options={"xla_backend_optimization_level": 0})
def _cross_modal_gradients(model, variables, inputs, projection):
  def projected_cls(rgb, spectrogram):
    _, intermediates = model.apply(variables, {"rgb": rgb, "spectrogram": spectrogram}, train=False)
    return {m: intermediates["cls_embeddings"][m] @ projection for m in ("rgb", "spectrogram")}

  outputs, pullback = jax.vjp(projected_cls, inputs["rgb"], inputs["spectrogram"])
  ones, zeros = (jax.tree.map(f, outputs) for f in (jnp.ones_like, jnp.zeros_like))
  _, spectrogram_to_rgb = pullback({"rgb": ones["rgb"], "spectrogram": zeros["spectrogram"]})
  rgb_to_spectrogram, _ = pullback({"rgb": zeros["rgb"], "spectrogram": ones["spectrogram"]})
  return {"spectrogram->rgb": spectrogram_to_rgb, "rgb->spectrogram": rgb_to_spectrogram}


def cross_modal_gradients(model, variables, inputs) -> dict[str, np.ndarray]:
  """d(one modality's final CLS)/d(the other modality's input), both ways.

  The CLS is projected on fixed random weights: a plain sum of a LayerNorm
  output has zero gradient whatever the network does.
  """
  projection = jnp.asarray(np.random.default_rng(7).normal(size=(model.hidden_size,)), jnp.float32)
  return {k: np.asarray(v) for k, v in _cross_modal_gradients(model, variables, inputs, projection).items()}


def assert_exactly_independent(model, variables, inputs):
  for direction, grad in cross_modal_gradients(model, variables, inputs).items():
    assert np.all(grad == 0), f"{direction}: information crossed, max |grad| {np.abs(grad).max()}"


def assert_information_crosses(model, variables, inputs):
  for direction, grad in cross_modal_gradients(model, variables, inputs).items():
    assert np.abs(grad).max() > 1e-6, f"{direction}: no information crossed"


def test_late_fusion_streams_are_exactly_independent(tiny_config, init_model, random_inputs):
  config = tiny_config(fusion_type="late")
  assert_exactly_independent(*init_model(config), random_inputs(config))


def test_bottleneck_with_no_tokens_streams_are_exactly_independent(tiny_config, init_model, random_inputs):
  config = tiny_config(num_bottleneck_tokens=0)
  assert_exactly_independent(*init_model(config), random_inputs(config))


def test_bottleneck_with_no_tokens_equals_late_fusion(tiny_config, init_model, random_inputs, run_model, trees_close):
  bottleneck_config = tiny_config(num_bottleneck_tokens=0)
  bottleneck, variables = init_model(bottleneck_config)
  late = build_model(tiny_config(fusion_type="late"))
  late_variables = flax.core.unfreeze(variables)
  del late_variables["params"]["encoder"]["fusion_tokens"]
  inputs = random_inputs(bottleneck_config)
  bottleneck_logits, bottleneck_intermediates = run_model(bottleneck, variables, inputs)
  late_logits, late_intermediates = run_model(late, late_variables, inputs)
  trees_close(bottleneck_logits, late_logits)
  trees_close(bottleneck_intermediates["cls_embeddings"], late_intermediates["cls_embeddings"])


def test_bottleneck_information_crosses_only_through_fusion_tokens(tiny_config, init_model, random_inputs):
  config = tiny_config(num_bottleneck_tokens=4, fusion_layer=0)
  model, variables = init_model(config)
  inputs = random_inputs(config)
  assert_information_crosses(model, variables, inputs)
  config.bottleneck_exchange = False  # Same parameters, fusion tokens unreadable.
  assert_exactly_independent(build_model(config), variables, inputs)


def cls_after_changing(model, variables, inputs, run_model, changed: str) -> dict[str, np.ndarray]:
  """Final CLS embeddings for `inputs` and for inputs with `changed` redrawn."""
  other = {**inputs, changed: np.random.default_rng(99).normal(size=inputs[changed].shape).astype(np.float32)}
  before = run_model(model, variables, inputs)[1]["cls_embeddings"]
  after = run_model(model, variables, other)[1]["cls_embeddings"]
  return {m: (np.asarray(before[m]), np.asarray(after[m])) for m in before}


def test_one_bottleneck_layer_cannot_carry_information_to_the_cls(tiny_config, init_model, random_inputs, run_model):
  """Eqs. 8-9 update the fusion tokens after the layer: a modality first reads
  the other's contribution one layer later, so L_f = L - 1 is still late fusion
  as far as the CLS outputs are concerned (and Scenic computes the same)."""
  config = tiny_config(fusion_layer=1)
  model, variables = init_model(config)
  inputs = random_inputs(config)
  before, after = cls_after_changing(model, variables, inputs, run_model, "spectrogram")["rgb"]
  np.testing.assert_array_equal(before, after)
  before, after = cls_after_changing(model, variables, inputs, run_model, "rgb")["spectrogram"]
  np.testing.assert_array_equal(before, after)


def test_self_attention_fusion_mixes_modalities(tiny_config, init_model, random_inputs, run_model):
  config = tiny_config(fusion_type="self_attention", fusion_layer=1)
  model, variables = init_model(config)
  before, after = cls_after_changing(model, variables, random_inputs(config), run_model, "spectrogram")["rgb"]
  assert np.abs(before - after).max() > 1e-4


def test_cross_attention_with_tied_weights_equals_self_attention(
    tiny_config, init_model, random_inputs, run_model, trees_close
):
  """Paper sec. 3.2.2: with theta_rgb = theta_spec, Eq. 5 is sec. 3.2.1."""
  self_config = tiny_config(fusion_type="self_attention", fusion_layer=1)
  self_model, self_variables = init_model(self_config)
  cross_config = tiny_config(fusion_type="cross_attention", fusion_layer=1)
  cross_model, untied = init_model(cross_config)
  tied = flax.core.unfreeze(self_variables)
  encoder = tied["params"]["encoder"]
  for layer in range(self_config.fusion_layer, self_config.num_layers):
    shared = encoder[f"layer_{layer}"].pop("shared")
    encoder[f"layer_{layer}"] = {"rgb": shared, "spectrogram": shared}
  inputs = random_inputs(self_config)
  self_logits, self_intermediates = run_model(self_model, self_variables, inputs)
  cross_logits, cross_intermediates = run_model(cross_model, tied, inputs)
  trees_close(self_logits, cross_logits)
  trees_close(self_intermediates["cls_embeddings"], cross_intermediates["cls_embeddings"])
  # Untied weights do differ, so the comparison above has power.
  untied_logits, _ = run_model(cross_model, untied, inputs)
  assert not np.allclose(np.asarray(untied_logits), np.asarray(self_logits), atol=1e-3)


def test_eq6_cross_attention_equals_scenic_way(tiny_config, init_model, random_inputs, run_model, trees_close):
  eq6_config = tiny_config(fusion_type="cross_attention", fusion_layer=1, cross_attention_impl="eq6")
  eq6_model, variables = init_model(eq6_config)
  scenic_model = build_model(tiny_config(fusion_type="cross_attention", fusion_layer=1, cross_attention_impl="scenic"))
  inputs = random_inputs(eq6_config)
  trees_close(run_model(eq6_model, variables, inputs), run_model(scenic_model, variables, inputs))


@pytest.mark.parametrize("fusion_type", ["bottleneck", "self_attention", "cross_attention"])
def test_outputs_do_not_depend_on_other_examples(
    fusion_type, tiny_config, init_model, random_inputs, run_model, trees_close
):
  config = tiny_config(fusion_type=fusion_type, fusion_layer=0)
  model, variables = init_model(config)
  first, second = random_inputs(config, seed=1), random_inputs(config, seed=2)
  # Example 0 of `first` beside another example, and alone-ish in another position.
  with_other_mate = {m: np.stack([first[m][0], second[m][1]]) for m in first}
  moved = {m: np.stack([second[m][0], first[m][0]]) for m in first}
  reference = jax.tree.map(lambda x: x[0], run_model(model, variables, first))
  trees_close(reference, jax.tree.map(lambda x: x[0], run_model(model, variables, with_other_mate)))
  trees_close(reference, jax.tree.map(lambda x: x[1], run_model(model, variables, moved)))


def test_dropout_and_stochastic_depth_are_seeded_and_off_at_evaluation(
    tiny_config, init_model, random_inputs, run_model, trees_close
):
  config = tiny_config(dropout_rate=0.3, attention_dropout_rate=0.3, stochastic_depth_rate=0.5)
  model, variables = init_model(config)
  inputs = random_inputs(config)
  first = run_model(model, variables, inputs, train=True, rng=jax.random.key(1))
  again = run_model(model, variables, inputs, train=True, rng=jax.random.key(1))
  other = run_model(model, variables, inputs, train=True, rng=jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, first, again)
  assert not np.allclose(np.asarray(first[0]), np.asarray(other[0]), atol=1e-4)
  # At evaluation the rates do not matter and neither does the rng.
  evaluated = run_model(model, variables, inputs, train=False, rng=jax.random.key(3))
  unregularised = run_model(build_model(tiny_config()), variables, inputs)
  trees_close(evaluated, unregularised)
  assert not np.allclose(np.asarray(first[0]), np.asarray(evaluated[0]), atol=1e-4)


def test_stochastic_depth_rate_grows_linearly_with_depth(tiny_config, init_model, random_inputs):
  assert stochastic_depth_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
  config = tiny_config(num_layers=4, fusion_layer=2, stochastic_depth_rate=0.3)
  model, variables = init_model(config)
  seen: dict[tuple[str, ...], float] = {}

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, StochasticDepth):
      seen[context.module.path] = context.module.rate
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):  # Tracing is enough to see every module.
    inputs, rngs = random_inputs(config), {"dropout": jax.random.key(0)}
    jax.eval_shape(lambda: model.apply(variables, inputs, train=True, rngs=rngs))
  # Two branches (attention, MLP) per block, two blocks (one per modality) per layer.
  for layer in range(config.num_layers):
    rates = [rate for path, rate in seen.items() if f"layer_{layer}" in path]
    assert rates == pytest.approx([0.3 * layer / 3] * 4), (layer, rates)


def test_stochastic_depth_drops_whole_examples_and_rescales_kept_ones():
  branch = jnp.ones((256, 5, 3))
  out = StochasticDepth(rate=0.25).apply({}, branch, deterministic=False, rngs={"dropout": jax.random.key(0)})
  per_example = np.asarray(out).reshape(256, -1)
  assert np.all(per_example == per_example[:, :1]), "an example was partly dropped"
  np.testing.assert_allclose(np.unique(per_example), [0.0, 1 / 0.75], rtol=1e-6)
  assert 0.15 < np.mean(per_example[:, 0] == 0) < 0.35
  np.testing.assert_array_equal(StochasticDepth(rate=0.25).apply({}, branch, deterministic=True), branch)
