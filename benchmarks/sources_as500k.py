"""AS-500K at full size: 2M generated AudioSet segments -> 500k, timed.

The real unbalanced_train list is not in the repository, so this writes a
generated one in its exact format (testsupport/synthetic_audioset.py:
real MIDs, Zipf-like classes), parses it as a file like the real one, selects
AS-500K and prints the times, the size against the 1% band, the balance
figures and the head and tail of the per-class table.

    python benchmarks/sources_as500k.py [--rows 2000000] [--target 500000] [--check-order]

Exit status 1 if the subset misses target +- 1%, or (--check-order) if a
shuffled input gives another subset.
"""

import argparse
import pathlib
import random
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipelines.sources import as500k, audioset  # noqa: E402
from testsupport import synthetic_audioset  # noqa: E402

LABELS = REPO_ROOT / "tests" / "data" / "annotations" / "audioset" / "class_labels_indices.csv"


class Clock:
  """Wall and CPU time between laps (CPU time too: the machine may be shared)."""

  def __init__(self):
    self._wall, self._cpu = time.perf_counter(), time.process_time()

  def lap(self) -> str:
    wall, cpu = time.perf_counter(), time.process_time()
    text = f"{wall - self._wall:.1f} s wall, {cpu - self._cpu:.1f} s CPU"
    self._wall, self._cpu = wall, cpu
    return text


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=2_000_000)
  parser.add_argument("--target", type=int, default=as500k.AS500K_SIZE)
  parser.add_argument("--seed", type=int, default=0, help="generator seed")
  parser.add_argument("--check-order", action="store_true", help="also select from a shuffled copy and compare")
  args = parser.parse_args()

  label_map = audioset.load_audioset_label_map(LABELS)
  with tempfile.TemporaryDirectory() as scratch:
    path = pathlib.Path(scratch) / "unbalanced_train_segments.csv"
    clock = Clock()
    synthetic_audioset.write_audioset_csv(path, args.rows, label_map.ids, seed=args.seed)
    generate_time = clock.lap()
    parsed = audioset.parse_audioset_segments(path, label_map, split="unbalanced_train")
    parse_time = clock.lap()
  subset = as500k.select_balanced_subset(parsed.rows, label_map, args.target)
  select_time = clock.lap()

  report = subset.report
  print(report.table(limit=8))
  print()
  print(f"generate {args.rows:,} rows: {generate_time}")
  print(f"parse:  {parse_time} ({len(parsed.rows):,} rows, {len(parsed.rejected)} rejected)")
  print(f"select: {select_time}")
  within = abs(report.size - args.target) <= 0.01 * args.target
  print(f"size {report.size:,} vs target {args.target:,}: {'within' if within else 'OUTSIDE'} 1%")
  print(f"balance (largest / median): {report.balance_before:.1f} -> {report.balance_after:.1f}")
  status = 0 if within else 1

  if args.check_order:
    shuffled = list(parsed.rows)
    random.Random(0).shuffle(shuffled)
    again = as500k.select_balanced_subset(shuffled, label_map, args.target)
    same = again.rows == subset.rows
    print(f"shuffled input gives the same subset: {same}")
    status |= 0 if same else 1
  return status


if __name__ == "__main__":
  sys.exit(main())
