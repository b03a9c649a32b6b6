"""Mixed precision: bfloat16 activations and matrix products, float32 parameters, logits and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from trainer.models import build_model
from trainer.models import config as model_config

# bfloat16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%); through the
# tiny model's layers the logits move by about 1% of their largest magnitude
# (measured: 0.7-0.9%). The bound leaves 3x headroom.
LOGIT_TOLERANCE = 0.03
# Gradients (all float32) point the same way: cosine similarity measured >= 0.9999.
GRADIENT_MIN_COSINE = 0.999


def _pair(tiny_config, init_model, **overrides):
  """(float32 model, bfloat16 model, shared float32 parameters)."""
  single, variables = init_model(tiny_config(compute_dtype="float32", **overrides))
  return single, build_model(tiny_config(compute_dtype="bfloat16", **overrides)), variables


@pytest.mark.parametrize("fusion_type", ["bottleneck", "cross_attention", "late"])
def test_bfloat16_logits_agree_with_float32_within_tolerance(fusion_type, tiny_config, init_model, random_inputs,
                                                             run_model):
  single, mixed, variables = _pair(tiny_config, init_model, fusion_type=fusion_type)
  inputs = random_inputs(tiny_config(fusion_type=fusion_type), batch_size=4)
  reference, _ = run_model(single, variables, inputs)
  logits, intermediates = run_model(mixed, variables, inputs)
  assert logits.dtype == jnp.float32
  assert all(cls.dtype == jnp.float32 for cls in intermediates["cls_embeddings"].values())
  error = np.abs(np.asarray(logits) - np.asarray(reference)).max()
  scale = np.abs(np.asarray(reference)).max()
  assert error <= LOGIT_TOLERANCE * scale, (error, scale)
  assert error > 0  # the bfloat16 model really computed in bfloat16


def test_parameters_optimiser_state_and_gradients_stay_float32(tiny_config, init_model, random_inputs):
  single, mixed, variables = _pair(tiny_config, init_model)
  inputs = random_inputs(tiny_config())
  shapes = jax.eval_shape(lambda x: mixed.init(jax.random.key(0), x, train=False), inputs)
  assert {leaf.dtype for leaf in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  optimizer = optax.sgd(0.1, momentum=0.9)
  assert {leaf.dtype for leaf in jax.tree.leaves(jax.eval_shape(optimizer.init, shapes["params"]))} == {
      jnp.dtype(jnp.float32)}

  def gradients(model):
    loss = lambda p: jnp.mean(model.apply({"params": p}, inputs, train=False)[0] ** 2)  # noqa: E731
    return jax.jit(jax.grad(loss), compiler_options={"xla_backend_optimization_level": 0})(variables["params"])

  mixed_grads, reference = gradients(mixed), gradients(single)
  assert {leaf.dtype for leaf in jax.tree.leaves(mixed_grads)} == {jnp.dtype(jnp.float32)}
  a, b = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]) for g in (mixed_grads, reference))
  assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) >= GRADIENT_MIN_COSINE


def _matmul_input_dtypes(jaxpr) -> list[str]:
  """Operand dtype of every dot_general and convolution, sub-jaxprs included."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      found.append(str(eqn.invars[0].aval.dtype))
    for param in eqn.params.values():
      inner = getattr(param, "jaxpr", param)
      if hasattr(inner, "eqns"):
        found += _matmul_input_dtypes(inner)
  return found


def test_matrix_products_run_in_the_compute_dtype(tiny_config, init_model, random_inputs):
  single, mixed, variables = _pair(tiny_config, init_model)
  inputs = random_inputs(tiny_config())
  trace = lambda model: jax.make_jaxpr(  # noqa: E731
      lambda v: model.apply(v, inputs, train=False))(variables).jaxpr
  mixed_dtypes, single_dtypes = _matmul_input_dtypes(trace(mixed)), _matmul_input_dtypes(trace(single))
  assert set(single_dtypes) == {"float32"}
  # Everything but the shared float32 classifier, applied to each modality's CLS.
  assert mixed_dtypes.count("float32") == 2 and mixed_dtypes.count("bfloat16") == len(mixed_dtypes) - 2


def test_auto_means_bfloat16_on_accelerators_and_float32_on_cpu(tiny_config):
  config = tiny_config()
  assert config.compute_dtype == "auto"
  assert model_config.compute_dtype(config, backend="gpu") == jnp.bfloat16
  assert model_config.compute_dtype(config, backend="tpu") == jnp.bfloat16
  assert model_config.compute_dtype(config, backend="cpu") == jnp.float32
  assert model_config.compute_dtype(tiny_config(compute_dtype="float32"), backend="tpu") == jnp.float32
  with pytest.raises(ValueError, match="compute_dtype"):
    tiny_config(compute_dtype="float16")
