"""Evaluation metrics over a whole test pass (numpy, on the host).

* AudioSet: mean average precision. A class's AP is the area under its
  precision-recall curve as a step function,
  AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds (the
  definition of scikit-learn's average_precision_score; tied scores form one
  threshold). mAP is the mean over classes with at least one positive; classes
  without positives have no AP and are reported, not counted.
* VGGSound: top-1 and top-5 accuracy.
* EPIC-KITCHENS: verb and noun top-1 (and top-5) accuracy; action top-1 is
  correct when the top verb AND the top noun are both right.

Scores are the logits averaged over a clip's test crops; only examples with
mask 1 (and, for EPIC, a label) are counted.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
  """AP of one class; NaN when it has no positives."""
  scores = np.asarray(scores, np.float64)
  positives = np.asarray(positives, bool)
  if scores.shape != positives.shape or scores.ndim != 1:
    raise ValueError(f"scores {scores.shape} and positives {positives.shape} must be equal 1-D shapes")
  total = int(positives.sum())
  if total == 0:
    return float("nan")
  order = np.argsort(-scores, kind="stable")
  sorted_scores, hits = scores[order], positives[order]
  true_positives = np.cumsum(hits)
  # The last position of each run of equal scores is one threshold.
  thresholds = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
  tp = true_positives[thresholds]
  precision = tp / (thresholds + 1)
  recall = tp / total
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
  """mAP over classes with positives.

  Args:
    scores: [N, C] scores (logits or probabilities: AP only ranks them).
    targets: [N, C] multi-hot targets (> 0.5 counts as positive).

  Returns:
    {'mAP': float, 'per_class_ap': [C] floats (NaN without positives),
     'classes_without_positives': [indices]}.
  """
  scores, positives = np.asarray(scores), np.asarray(targets) > 0.5
  per_class = np.array([average_precision(scores[:, c], positives[:, c]) for c in range(scores.shape[1])])
  missing = np.flatnonzero(np.isnan(per_class))
  valid = per_class[~np.isnan(per_class)]
  return {"mAP": float(valid.mean()) if valid.size else float("nan"), "per_class_ap": per_class,
          "classes_without_positives": missing.tolist()}


def top_k_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """[N] bool: whether each example's label is among its k highest scores.

  Ties are broken towards the lower class index (a stable sort), so results
  do not depend on the platform.
  """
  scores, labels = np.asarray(scores), np.asarray(labels)
  top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.any(top == labels[:, None], axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of examples whose label is among the top k scores."""
  return float(np.mean(top_k_correct(scores, labels, k))) if len(labels) else float("nan")


def single_label_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
  """VGGSound: top-1 and top-5 accuracy from one-hot targets."""
  labels = np.argmax(targets, axis=1)
  return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, min(5, scores.shape[1]))}


def epic_metrics(verb_scores: np.ndarray, noun_scores: np.ndarray, verb_labels: np.ndarray,
                 noun_labels: np.ndarray) -> dict[str, float]:
  """EPIC-KITCHENS verb, noun and action accuracies (labels are class indices)."""
  names = ("verb_top1", "noun_top1", "action_top1", "verb_top5", "noun_top5")
  if not len(verb_labels):
    return {name: float("nan") for name in names}
  verb_top1 = top_k_correct(verb_scores, verb_labels, 1)
  noun_top1 = top_k_correct(noun_scores, noun_labels, 1)
  return {
      "verb_top1": float(np.mean(verb_top1)),
      "noun_top1": float(np.mean(noun_top1)),
      "action_top1": float(np.mean(verb_top1 & noun_top1)),
      "verb_top5": top_k_accuracy(verb_scores, verb_labels, min(5, verb_scores.shape[1])),
      "noun_top5": top_k_accuracy(noun_scores, noun_labels, min(5, noun_scores.shape[1])),
  }


def task_metrics(label_kind: str, scores: Any, targets: Any, mask: np.ndarray,
                 class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
  """The dataset's metrics over one test pass.

  Args:
    label_kind: 'multi_hot', 'one_hot' or 'verb_noun' (trainer.data.preprocess).
    scores: [N, C] or {'verb': [N, V], 'noun': [N, M]} crop-averaged logits.
    targets: the matching targets.
    mask: [N], 1 for real examples.
    class_names: names for the per-class AP report (multi-hot only).
  """
  keep = np.asarray(mask) > 0.5
  if label_kind == "multi_hot":
    result = mean_average_precision(np.asarray(scores)[keep], np.asarray(targets)[keep])
    per_class = result.pop("per_class_ap")
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(per_class))]
    result["per_class_ap"] = {names[c]: (None if np.isnan(ap) else float(ap)) for c, ap in enumerate(per_class)}
    result["classes_without_positives"] = [names[c] for c in result["classes_without_positives"]]
    result["num_examples"] = int(keep.sum())
    return result
  if label_kind == "one_hot":
    result = single_label_metrics(np.asarray(scores)[keep], np.asarray(targets)[keep])
    result["num_examples"] = int(keep.sum())
    return result
  if label_kind == "verb_noun":
    verb_targets, noun_targets = np.asarray(targets["verb"]), np.asarray(targets["noun"])
    labelled = keep & (verb_targets.sum(axis=1) > 0) & (noun_targets.sum(axis=1) > 0)
    result = epic_metrics(np.asarray(scores["verb"])[labelled], np.asarray(scores["noun"])[labelled],
                          np.argmax(verb_targets[labelled], axis=1), np.argmax(noun_targets[labelled], axis=1))
    result["num_examples"] = int(labelled.sum())
    result["num_unlabelled"] = int((keep & ~labelled).sum())
    return result
  raise ValueError(f"unknown label kind {label_kind!r}")


def headline(label_kind: str, result: Mapping[str, Any]) -> tuple[str, float]:
  """The paper's headline metric of a result: mAP, top-1 or action top-1."""
  key = {"multi_hot": "mAP", "one_hot": "top1", "verb_noun": "action_top1"}[label_kind]
  return key, float(result[key])
