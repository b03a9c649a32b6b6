"""Shared helpers for the model tests: tiny configs, random parameters, cached jitted calls.

Speed matters on a 2-core machine: `model.init` is never compiled (compiling
the random initialisers costs more than the model), parameters are random
numpy arrays of the shapes jax.eval_shape gives, and jitted calls are cached
on the (hashable) model so equal models compile once per input shape, with
XLA's backend optimisations off (half the compile time; tiny models run in
milliseconds either way).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from trainer.models import build_model, get_model_config, input_shapes


def make_tiny_config(**overrides):
  """A 2-layer d=32 model on 2 frames of 32x32 (8 patches) and 0.32 s (16 patches).

  Default fusion: bottleneck from layer 0, the shallowest model in which
  information crosses between modalities (it needs two fusion layers).
  """
  kwargs = dict(
      num_layers=2, fusion_type="bottleneck", fusion_layer=0, num_frames=2, image_size=32, audio_seconds=0.32,
      num_classes=5, zero_init_head=False, stochastic_depth_rate=0.0,
  )
  kwargs.update(overrides)
  return get_model_config("tiny", **kwargs)


def make_inputs(config, batch_size: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {name: rng.normal(size=shape).astype(np.float32) for name, shape in input_shapes(config, batch_size).items()}


def random_variables(model, config, seed: int = 0):
  """Random parameters of the model's shapes (no initialiser is run)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), make_inputs(config, 1))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == "scale":
      return (1 + 0.1 * rng.normal(size=leaf.shape)).astype(np.float32)
    fan_in = np.prod(leaf.shape[:-1]) if path[-1].key == "kernel" else 100
    return (rng.normal(size=leaf.shape) / np.sqrt(max(fan_in, 1))).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def make_model(config, seed: int = 0):
  model = build_model(config)
  return model, random_variables(model, config, seed)


# Scoped to the test helpers' own jits: nothing global changes.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.partial(jax.jit, static_argnames=("model", "train", "return_attention"), compiler_options=FAST_COMPILE)
def _apply(model, variables, inputs, rngs, train, return_attention):
  return model.apply(variables, inputs, train=train, return_attention=return_attention, rngs=rngs)


def apply_model(model, variables, inputs, *, train: bool = False, rng=None, return_attention: bool = False):
  """model.apply, jitted and cached per model; `rng` feeds 'dropout'."""
  rngs = {"dropout": rng} if rng is not None else {}
  return _apply(model, variables, inputs, rngs, train, return_attention)


def assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol), a, b)


@pytest.fixture
def fast_compile():
  return FAST_COMPILE


@pytest.fixture
def tiny_config():
  return make_tiny_config


@pytest.fixture
def random_inputs():
  return make_inputs


@pytest.fixture
def init_model():
  return make_model


@pytest.fixture
def run_model():
  return apply_model


@pytest.fixture
def trees_close():
  return assert_trees_close
