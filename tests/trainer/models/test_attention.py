"""The fused attention path (jax.nn.dot_product_attention) against the explicit one kept for rollout."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.models import build_model
from trainer.models.attention import EXPLICIT_SCOPE, FUSED_SCOPE, MultiHeadAttention, fused_implementation

# Tiny models run in milliseconds either way: skip XLA's backend optimisations (half the compile time).
FAST_COMPILE = {"xla_backend_optimization_level": 0}
# Same maths, other order of float32 operations: differences stay at rounding level.
ATOL = RTOL = 2e-5

# One fusing layer keeps compilation short. Between them the variants call the
# block with queries = keys, with fewer queries than keys (Eq. 6) and with a mask.
VARIANTS = {
    "bottleneck": dict(fusion_type="bottleneck"),
    # A cut bottleneck: modality queries masked off the fusion keys.
    "bottleneck_masked": dict(fusion_type="bottleneck"),
    "self_attention": dict(fusion_type="self_attention"),
    "cross_attention_eq6": dict(fusion_type="cross_attention", cross_attention_impl="eq6"),
}


def _config(tiny_config, variant, **overrides):
  config = tiny_config(num_layers=1, fusion_layer=0, **VARIANTS[variant], **overrides)
  if variant == "bottleneck_masked":
    config.bottleneck_exchange = False
  return config


@functools.partial(jax.jit, static_argnames=("model",), compiler_options=FAST_COMPILE)
def _logits_and_grads(model, params, inputs):
  def loss(p):
    logits, intermediates = model.apply({"params": p}, inputs, train=False)
    cls = intermediates["cls_embeddings"]
    return jnp.sum(logits ** 2) + sum(jnp.sum(jnp.sin(c)) for c in cls.values()), logits

  (_, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
  return logits, grads


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_and_explicit_attention_give_the_same_outputs_and_gradients(
    variant, tiny_config, init_model, random_inputs, trees_close):
  fused_config = _config(tiny_config, variant)
  fused, variables = init_model(fused_config)
  explicit = build_model(_config(tiny_config, variant, fused_attention=False))
  inputs = random_inputs(fused_config, batch_size=3)
  fused_logits, fused_grads = _logits_and_grads(fused, variables["params"], inputs)
  explicit_logits, explicit_grads = _logits_and_grads(explicit, variables["params"], inputs)
  trees_close(fused_logits, explicit_logits, atol=ATOL, rtol=RTOL)
  trees_close(fused_grads, explicit_grads, atol=ATOL, rtol=RTOL)


def test_returning_attention_keeps_the_logits(tiny_config, init_model, random_inputs, run_model, trees_close):
  """Rollout's explicit path and training's fused path are one model."""
  config = tiny_config()
  model, variables = init_model(config)
  inputs = random_inputs(config)
  plain, _ = run_model(model, variables, inputs)
  with_attention, intermediates = run_model(model, variables, inputs, return_attention=True)
  trees_close(plain, with_attention, atol=ATOL, rtol=RTOL)
  assert "attention" in intermediates


def _lowered_text(module, variables, *args, **kwargs) -> str:
  return jax.jit(lambda v: module.apply(v, *args, **kwargs)).lower(variables).as_text(debug_info=True)


def test_the_fused_path_runs_unless_weights_or_attention_dropout_are_needed():
  rng = np.random.default_rng(0)
  queries, context = rng.normal(size=(2, 5, 16)).astype(np.float32), rng.normal(size=(2, 7, 16)).astype(np.float32)
  attention = MultiHeadAttention(num_heads=2)
  variables = attention.init(jax.random.key(0), queries, context, deterministic=True)
  default = _lowered_text(attention, variables, queries, context, deterministic=True)
  assert FUSED_SCOPE in default and EXPLICIT_SCOPE not in default
  for text in (_lowered_text(attention, variables, queries, context, deterministic=True, return_weights=True),
               _lowered_text(MultiHeadAttention(num_heads=2, fused=False), variables, queries, context,
                             deterministic=True)):
    assert EXPLICIT_SCOPE in text and FUSED_SCOPE not in text
  dropping = MultiHeadAttention(num_heads=2, dropout_rate=0.1)
  text = jax.jit(lambda v: dropping.apply(v, queries, context, deterministic=False, rngs={"dropout": jax.random.key(1)})
                 ).lower(variables).as_text(debug_info=True)
  assert EXPLICIT_SCOPE in text  # the fused kernel has no dropout on the weights
  # Without weights asked for, none are returned.
  _, weights = attention.apply(variables, queries, context, deterministic=True)
  assert weights is None


def test_cudnn_is_chosen_only_where_it_applies():
  assert fused_implementation(jnp.bfloat16, 64, has_mask=False, backend="gpu") == "cudnn"
  assert fused_implementation(jnp.float16, 128, has_mask=False, backend="gpu") == "cudnn"
  assert fused_implementation(jnp.float32, 64, has_mask=False, backend="gpu") is None  # cuDNN: half precision only
  assert fused_implementation(jnp.bfloat16, 64, has_mask=True, backend="gpu") is None  # masks need even lengths
  assert fused_implementation(jnp.bfloat16, 12, has_mask=False, backend="gpu") is None  # head size % 8
  assert fused_implementation(jnp.bfloat16, 64, has_mask=False, backend="tpu") is None  # XLA
  assert fused_implementation(jnp.bfloat16, 64, has_mask=False, backend="cpu") is None
