"""Losses against hand-computed values."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from trainer import losses


def test_softmax_cross_entropy_by_hand():
  logits = jnp.array([[0.0, math.log(3.0)], [0.0, 0.0]])
  targets = jnp.array([[0.0, 1.0], [1.0, 0.0]])
  # Example 0: p(class 1) = 3/4; example 1: p(class 0) = 1/2.
  expected = (-math.log(0.75) - math.log(0.5)) / 2
  assert float(losses.softmax_cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)
  # The mask drops example 1.
  assert float(losses.softmax_cross_entropy(logits, targets, jnp.array([1.0, 0.0]))) == pytest.approx(
      -math.log(0.75), rel=1e-6)
  # Label smoothing 0.2 on two classes: targets (0.1, 0.9).
  smoothed = -(0.1 * math.log(0.25) + 0.9 * math.log(0.75))
  assert float(losses.softmax_cross_entropy(logits[:1], targets[:1], label_smoothing=0.2)) == pytest.approx(
      smoothed, rel=1e-6)


def test_sigmoid_cross_entropy_sums_classes_and_averages_examples():
  logits = jnp.array([[0.0, math.log(3.0)]])
  targets = jnp.array([[1.0, 0.0]])
  # Class 0: -log(1/2); class 1: p = 3/4 for a negative: -log(1/4).
  expected = math.log(2.0) + math.log(4.0)
  assert float(losses.sigmoid_cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)


def test_epic_loss_is_the_mean_of_both_heads():
  logits = {"verb": jnp.array([[0.0, math.log(3.0)]]), "noun": jnp.array([[0.0, 0.0, 0.0]])}
  targets = {"verb": jnp.array([[0.0, 1.0]]), "noun": jnp.array([[1.0, 0.0, 0.0]])}
  expected = (-math.log(0.75) + math.log(3.0)) / 2
  assert float(losses.task_loss("verb_noun", logits, targets)) == pytest.approx(expected, rel=1e-6)


def test_per_modality_loss_averages_each_modality_against_its_own_targets():
  logits = {"rgb": jnp.array([[0.0, 0.0]]), "spectrogram": jnp.array([[0.0, math.log(3.0)]])}
  targets = {"rgb": jnp.array([[1.0, 0.0]]), "spectrogram": jnp.array([[0.0, 1.0]])}
  expected = (math.log(2.0) - math.log(0.75)) / 2
  assert float(losses.per_modality_loss("one_hot", logits, targets)) == pytest.approx(expected, rel=1e-6)
  with pytest.raises(ValueError):
    losses.task_loss("unknown", logits["rgb"], targets["rgb"])
  np.testing.assert_allclose(float(losses.per_modality_loss("multi_hot", {"rgb": logits["rgb"]},
                                                            {"rgb": targets["rgb"]})), 2 * math.log(2.0), rtol=1e-6)
