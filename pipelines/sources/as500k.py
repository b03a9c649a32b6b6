"""AS-500K: a deterministic, slightly more balanced 500k subset of AudioSet.

The paper trains on "AS-500K", a "slightly more balanced" subset of about 500k
clips of AudioSet's unbalanced_train (~2.04M segments); its recipe is
unpublished. This is ours, recipe version ``as500k-v1``.

Input: the segments of unbalanced_train_segments.csv, each with its clip id
(``yt_{ytid}_{start_ms:09d}``, see clip_id.py) and its positive classes (indices
of class_labels_indices.csv); the target size N = 500,000.

1. Priority. Each clip gets p = the first 8 bytes, read as a big-endian
   unsigned integer, of SHA-256 of the UTF-8 text ``"as500k-v1:" + clip_id``.
   All clips are ordered by (p, clip_id) (the clip id, in code point order,
   only breaks ties of p, which almost never happen); a clip's position in
   that order is its global rank g.
2. Rank within class. For every class, the clips carrying it are ordered by g;
   a clip's rank in that class is its 0-based position in that list.
3. Key. A clip's key k is its smallest rank over all of its classes.
4. Selection. Clips are ordered by (k, g) and the first N are the subset.

Equivalently: a per-class quota q is raised step by step; at quota q every
class nominates its first q clips (by g) and the subset is the union of the
nominations; at the first quota where the union would pass N, the last step
is filled in g order up to exactly N. Calling K the key of the first clip
left out (reported as ``quota``), every clip of key < K is in, so every class
keeps at least min(its size, K) clips: a class of at most K clips keeps all
of them, and a bigger class keeps its first K clips plus those of its other
clips that other classes nominate (AudioSet is multi-label). That is why
the head classes (Speech, Music) stay large: the subset is slightly more
balanced, not balanced.

Properties:
* exact size N (if the input has at least N clips);
* deterministic, and independent of the input's row order: nothing depends on
  a row's position, only on clip ids and labels;
* uniform within a class: the hash does not prefer clips with few or many
  labels;
* nested: the subset is a prefix of one fixed order, so the subset of size
  N' < N is the first N' clips of the subset of size N (its ``rows`` order).

The balance figure is the count of the largest class over the median class
count (all classes, numpy's median), before and after.

    python -m pipelines.sources.as500k --segments unbalanced_train_segments.csv \\
        --labels class_labels_indices.csv --out as500k_segments.csv
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import itertools
import sys
import time
from typing import Any, Sequence

import numpy as np

from pipelines.sources import audioset
from pipelines.sources.rows import AnnotationError, ClipRequest
from shared import contract

AS500K_SIZE = 500_000
AS500K_SEED = "as500k-v1"


def clip_priority(clip_id: str, seed: str = AS500K_SEED) -> int:
  """p of step 1: the first 8 bytes of SHA-256("{seed}:{clip_id}"), big-endian."""
  return int.from_bytes(hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()[:8], "big")


def balance_ratio(counts: np.ndarray) -> float:
  """Largest class count over the median class count (inf if the median is 0)."""
  counts = np.asarray(counts, dtype=np.float64)
  median = float(np.median(counts))
  return float(counts.max()) / median if median > 0 else float("inf")


@dataclasses.dataclass(frozen=True)
class SubsetReport:
  """What a subset selection did, per class and overall.

  Attributes:
    seed: the recipe seed (version), e.g. "as500k-v1".
    source_size: clips in the input.
    target: the size asked for.
    size: clips selected (= target).
    quota: K: every class keeps at least min(its size, K) clips.
    class_names: the label map's names, index order.
    counts_before: clips per class in the input, index order.
    counts_after: clips per class in the subset, index order.
  """

  seed: str
  source_size: int
  target: int
  size: int
  quota: int
  class_names: tuple[str, ...]
  counts_before: tuple[int, ...]
  counts_after: tuple[int, ...]

  @property
  def balance_before(self) -> float:
    return balance_ratio(np.array(self.counts_before))

  @property
  def balance_after(self) -> float:
    return balance_ratio(np.array(self.counts_after))

  @property
  def classes_kept_whole(self) -> int:
    """Classes that kept every clip (empty classes not counted)."""
    return sum(1 for before, after in zip(self.counts_before, self.counts_after) if before == after > 0)

  def per_class(self) -> dict[str, tuple[int, int]]:
    """Class name -> (clips before, clips after)."""
    return {
        name: (before, after)
        for name, before, after in zip(self.class_names, self.counts_before, self.counts_after)
    }

  def to_json_dict(self) -> dict[str, Any]:
    """The report as plain JSON types, for a build manifest."""
    return {
        "seed": self.seed,
        "source_size": self.source_size,
        "target": self.target,
        "size": self.size,
        "quota": self.quota,
        "classes_kept_whole": self.classes_kept_whole,
        # A median class count of 0 makes the ratio infinite; JSON has no infinity.
        "balance_before": self.balance_before if np.isfinite(self.balance_before) else None,
        "balance_after": self.balance_after if np.isfinite(self.balance_after) else None,
        "classes": [
            {"index": i, "name": name, "before": before, "after": after}
            for i, (name, before, after) in enumerate(zip(self.class_names, self.counts_before, self.counts_after))
        ],
    }

  def summary(self) -> str:
    """Two lines: sizes and quota, then the balance figures."""
    return (
        f"{self.seed}: {self.source_size:,} -> {self.size:,} clips (target {self.target:,}), quota {self.quota:,}, "
        f"{self.classes_kept_whole}/{len(self.class_names)} classes kept whole\n"
        f"balance (largest / median class count): {self.balance_before:.1f} -> {self.balance_after:.1f}"
    )

  def table(self, limit: int | None = None) -> str:
    """The summary and a per-class table, largest class (before) first.

    Args:
      limit: show only the first and last `limit` classes.
    """
    order = sorted(range(len(self.class_names)), key=lambda i: (-self.counts_before[i], i))
    if limit is not None and len(order) > 2 * limit:
      order = order[:limit] + [-1] + order[-limit:]
    width = max(len(name) for name in self.class_names)
    lines = [self.summary(), f"{'index':>5}  {'class':<{width}}  {'before':>10}  {'after':>9}  {'kept':>6}"]
    for i in order:
      if i < 0:
        lines.append(f"{'...':>5}")
        continue
      before, after = self.counts_before[i], self.counts_after[i]
      kept = f"{100 * after / before:5.1f}%" if before else "    -"
      lines.append(f"{i:>5}  {self.class_names[i]:<{width}}  {before:>10,}  {after:>9,}  {kept:>6}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class BalancedSubset:
  """A selected subset and its report.

  Attributes:
    rows: the selected clips in selection order ((k, g) of the recipe), so
      rows[:n] is the subset of size n.
    report: per-class counts and balance figures.
  """

  rows: tuple[ClipRequest, ...]
  report: SubsetReport

  @property
  def clip_ids(self) -> frozenset[str]:
    return frozenset(row.clip_id for row in self.rows)


def select_balanced_subset(
    rows: Sequence[ClipRequest], label_map: contract.LabelMap, target: int = AS500K_SIZE, seed: str = AS500K_SEED
) -> BalancedSubset:
  """The recipe of this module's docstring, applied to rows.

  Args:
    rows: the candidate clips (unique clip ids, each with at least one label).
    label_map: the label map that the rows' label_indices index into.
    target: the subset size N.
    seed: the recipe version mixed into the hash.

  Raises:
    ValueError: target out of [1, len(rows)], a repeated clip id, a clip
      without labels, a label index outside the label map.
  """
  num_clips, num_classes = len(rows), len(label_map)
  if not 1 <= target <= num_clips:
    raise ValueError(f"target {target} is not in [1, {num_clips}] (the number of clips)")
  clip_ids = [row.clip_id for row in rows]
  if len(set(clip_ids)) != num_clips:
    repeated = next(clip_id for clip_id, count in collections.Counter(clip_ids).items() if count > 1)
    raise ValueError(f"clip id {repeated!r} appears more than once")
  labels_per_clip = np.fromiter((len(row.label_indices) for row in rows), dtype=np.int64, count=num_clips)
  if (labels_per_clip == 0).any():
    raise ValueError(f"clip {clip_ids[int(np.argmin(labels_per_clip))]!r} has no labels")
  num_pairs = int(labels_per_clip.sum())
  pair_label = np.fromiter(
      itertools.chain.from_iterable(row.label_indices for row in rows), dtype=np.int64, count=num_pairs
  )
  if pair_label.min() < 0 or pair_label.max() >= num_classes:
    raise ValueError(f"label index outside [0, {num_classes}) of label map {label_map.name!r}")
  pair_clip = np.repeat(np.arange(num_clips), labels_per_clip)

  # Step 1: global rank g, by (priority, clip id).
  priority = np.fromiter((clip_priority(clip_id, seed) for clip_id in clip_ids), dtype=np.uint64, count=num_clips)
  by_clip_id = np.argsort(np.array(clip_ids), kind="stable")
  global_order = by_clip_id[np.argsort(priority[by_clip_id], kind="stable")]
  global_rank = np.empty(num_clips, dtype=np.int64)
  global_rank[global_order] = np.arange(num_clips)

  # Step 2: rank within class, by g.
  pair_order = np.lexsort((global_rank[pair_clip], pair_label))
  sorted_label = pair_label[pair_order]
  class_start = np.searchsorted(sorted_label, sorted_label, side="left")
  pair_rank = np.empty(num_pairs, dtype=np.int64)
  pair_rank[pair_order] = np.arange(num_pairs) - class_start

  # Step 3: key = smallest rank over the clip's classes (pairs are grouped by clip).
  first_pair = np.concatenate(([0], np.cumsum(labels_per_clip)[:-1]))
  key = np.minimum.reduceat(pair_rank, first_pair)

  # Step 4: the first N by (k, g).
  selection_order = np.lexsort((global_rank, key))
  chosen = selection_order[:target]
  quota = int(key[selection_order[target]]) if target < num_clips else int(key.max()) + 1

  selected = np.zeros(num_clips, dtype=bool)
  selected[chosen] = True
  counts_before = np.bincount(pair_label, minlength=num_classes)
  counts_after = np.bincount(pair_label[selected[pair_clip]], minlength=num_classes)
  report = SubsetReport(
      seed=seed,
      source_size=num_clips,
      target=target,
      size=len(chosen),
      quota=quota,
      class_names=label_map.names,
      counts_before=tuple(int(c) for c in counts_before),
      counts_after=tuple(int(c) for c in counts_after),
  )
  return BalancedSubset(rows=tuple(rows[i] for i in chosen), report=report)


def select_as500k(rows: Sequence[ClipRequest], label_map: contract.LabelMap) -> BalancedSubset:
  """AS-500K (recipe as500k-v1) from the unbalanced_train rows."""
  return select_balanced_subset(rows, label_map, AS500K_SIZE, AS500K_SEED)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description="Select AS-500K from AudioSet's unbalanced_train segments.")
  parser.add_argument("--segments", required=True, help="unbalanced_train_segments.csv")
  parser.add_argument("--labels", required=True, help="class_labels_indices.csv")
  parser.add_argument("--out", required=True, help="the subset, written as an AudioSet segment CSV")
  parser.add_argument("--target", type=int, default=AS500K_SIZE)
  parser.add_argument("--seed", default=AS500K_SEED)
  parser.add_argument("--report", help="also write the per-class table here")
  parser.add_argument("--skip-bad-rows", action="store_true", help="leave out bad rows (listed on stderr)")
  args = parser.parse_args(argv)

  started = time.perf_counter()
  try:
    label_map = audioset.load_audioset_label_map(args.labels)
    parsed = audioset.parse_audioset_segments(
        args.segments, label_map, split="unbalanced_train", skip_bad_rows=args.skip_bad_rows
    )
  except AnnotationError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  for rejected in parsed.rejected:
    print(f"rejected {rejected.file}:{rejected.line}: {rejected.reason}", file=sys.stderr)
  subset = select_balanced_subset(parsed.rows, label_map, args.target, args.seed)
  audioset.write_audioset_segments(
      args.out, sorted(subset.rows, key=lambda row: row.clip_id), label_map, title=f"AS-500K subset ({args.seed})"
  )
  table = subset.report.table()
  if args.report:
    with open(args.report, "w", encoding="utf-8") as handle:
      handle.write(table + "\n")
  print(subset.report.table(limit=10))
  print(f"{len(parsed.rejected)} rows rejected; {time.perf_counter() - started:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
