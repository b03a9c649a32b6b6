"""Metrics against hand-computed values."""

import numpy as np
import pytest

from trainer import metrics


def test_average_precision_by_hand():
  # Ranked: + - + -: precision 1 at the first hit, 2/3 at the second.
  assert metrics.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
  # Ranked: - + +: 1/2 and 2/3.
  assert metrics.average_precision([0.9, 0.8, 0.7], [0, 1, 1]) == pytest.approx((1 / 2 + 2 / 3) / 2)
  assert metrics.average_precision([0.1, 0.2], [1, 1]) == pytest.approx(1.0)
  assert np.isnan(metrics.average_precision([0.1, 0.2], [0, 0]))


def test_tied_scores_are_one_threshold():
  # All three tied: one threshold with precision 1/3 at recall 1.
  assert metrics.average_precision([0.5, 0.5, 0.5], [0, 1, 0]) == pytest.approx(1 / 3)
  # 0.9 (+), then 0.5 tied (+, -): recall 1/2 at precision 1, recall 1 at precision 2/3.
  assert metrics.average_precision([0.9, 0.5, 0.5], [1, 0, 1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_average_precision_matches_a_brute_force_definition():
  rng = np.random.default_rng(0)
  for _ in range(20):
    scores = rng.integers(0, 5, size=12).astype(float)  # many ties
    positives = rng.random(12) < 0.4
    if not positives.any():
      continue
    # Step-wise PR curve over distinct thresholds, highest first.
    total, ap, last_recall = positives.sum(), 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
      chosen = scores >= threshold
      recall = (chosen & positives).sum() / total
      ap += (recall - last_recall) * (chosen & positives).sum() / chosen.sum()
      last_recall = recall
    assert metrics.average_precision(scores, positives) == pytest.approx(ap)


def test_map_excludes_and_reports_classes_without_positives():
  scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.1, 0.6, 0.9]])
  targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
  result = metrics.mean_average_precision(scores, targets)
  # Class 0: its positive ranks first. Class 1: 0.7 (+), 0.6 (+), then 0.1 (-). Class 2: no positive.
  assert result["per_class_ap"][0] == pytest.approx(1.0)
  assert result["per_class_ap"][1] == pytest.approx(1.0)
  assert np.isnan(result["per_class_ap"][2]) and result["classes_without_positives"] == [2]
  assert result["mAP"] == pytest.approx(1.0)
  # One positive ranked third of three: AP = precision 1/3.
  worse = metrics.mean_average_precision(np.array([[0.1], [0.9], [0.5]]), np.array([[1], [0], [0]]))
  assert worse["mAP"] == pytest.approx(1 / 3)


def test_top_k_by_hand():
  scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.2, 0.5], [0.2, 0.2, 0.6]])
  labels = np.array([1, 0, 1])
  assert metrics.top_k_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
  assert metrics.top_k_accuracy(scores, labels, 2) == pytest.approx(2 / 3)  # third: tie 0.2/0.2 -> class 0 first
  assert metrics.top_k_accuracy(scores, labels, 3) == pytest.approx(1.0)
  result = metrics.single_label_metrics(scores, np.eye(3)[labels])
  assert result == {"top1": pytest.approx(1 / 3), "top5": pytest.approx(1.0)}


def test_epic_action_needs_verb_and_noun_right():
  verb_scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  noun_scores = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
  verbs, nouns = np.array([0, 1, 1, 1]), np.array([1, 1, 2, 0])
  # Verb right: 0, 1, 3. Noun right: 0, 2, 3. Both: 0 and 3.
  result = metrics.epic_metrics(verb_scores, noun_scores, verbs, nouns)
  assert result["verb_top1"] == pytest.approx(0.75) and result["noun_top1"] == pytest.approx(0.75)
  assert result["action_top1"] == pytest.approx(0.5)


def test_task_metrics_apply_the_mask_and_skip_unlabelled_epic_clips():
  scores = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
  targets = np.eye(2)[[0, 0, 1]]
  result = metrics.task_metrics("one_hot", scores, targets, np.array([1, 1, 0]))
  assert result["top1"] == pytest.approx(0.5) and result["num_examples"] == 2
  multi = metrics.task_metrics("multi_hot", scores, targets, np.ones(3), class_names=["dog", "cat"])
  assert set(multi["per_class_ap"]) == {"dog", "cat"} and multi["classes_without_positives"] == []
  epic = metrics.task_metrics(
      "verb_noun", {"verb": scores, "noun": scores}, {"verb": targets * [[1], [1], [0]], "noun": targets},
      np.ones(3))
  assert epic["num_examples"] == 2 and epic["num_unlabelled"] == 1 and epic["action_top1"] == pytest.approx(0.5)
  assert metrics.headline("verb_noun", epic) == ("action_top1", pytest.approx(0.5))
