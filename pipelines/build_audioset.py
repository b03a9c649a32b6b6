"""Build AudioSet shards: download the segments still on YouTube, extract features, write shards.

    python -m pipelines.build_audioset --split eval --segments eval_segments.csv \\
        --class_labels class_labels_indices.csv --output_dir builds/audioset/eval

    # AS-500K, the paper's balanced 500k subset of unbalanced_train (see WORKSPACE.md):
    python -m pipelines.build_audioset --split as500k --segments unbalanced_train_segments.csv \\
        --class_labels class_labels_indices.csv --output_dir gs://BUCKET/audioset/as500k \\
        --runner=DataflowRunner --project=PROJECT --region=REGION \\
        --temp_location=gs://BUCKET/tmp --sdk_container_image=IMAGE

From clips or videos you have already (see WORKSPACE.md, "Have the clips
already?"), e.g. whole videos named by id; the others are downloaded:

    python -m pipelines.build_audioset --split eval --segments eval_segments.csv \\
        --class_labels class_labels_indices.csv --output_dir builds/audioset/eval \\
        --videos_dir /data/audioset/videos --video_pattern 'video:{ytid}.{ext}'

--segments is the split's segment CSV (three "#" lines, then
``YTID, start, end, "labels"``); for as500k it is unbalanced_train's, and the
build writes the subset's per-class report (as500k_report.json) beside the
shards. Label indices follow class_labels_indices.csv.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from pipelines import build, build_cli
from pipelines.sources import as500k, audioset, rows
from shared import files, layout
from shared.manifest import Manifest

SPLITS = ("balanced_train", "eval", "unbalanced_train", "as500k")


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pipelines.build_audioset", description=__doc__.split("\n")[0])
  source = parser.add_argument_group("annotations")
  source.add_argument("--split", required=True, choices=SPLITS)
  source.add_argument("--segments", required=True,
                      help="the split's segment CSV (for as500k: unbalanced_train_segments.csv)")
  build_cli.add_class_labels_argument(source, required=True, help="class_labels_indices.csv")
  source.add_argument("--as500k_size", type=int, default=as500k.AS500K_SIZE,
                      help=f"size of the balanced subset for --split as500k (default {as500k.AS500K_SIZE})")
  build_cli.add_build_arguments(parser)
  build_cli.add_local_source_arguments(parser)
  build_cli.add_download_arguments(parser)
  return parser


def load_split(args: argparse.Namespace) -> tuple[build.SplitToBuild, Optional[as500k.SubsetReport]]:
  label_map = audioset.load_audioset_label_map(args.class_labels)
  source_split = "unbalanced_train" if args.split == "as500k" else args.split
  parsed = audioset.parse_audioset_segments(args.segments, label_map, split=source_split,
                                            skip_bad_rows=args.skip_bad_rows)
  split = build.SplitToBuild.from_parse(rows.AUDIOSET, args.split, parsed, label_map)
  if args.split != "as500k":
    return split, None
  subset = as500k.select_balanced_subset(split.requests, label_map, target=args.as500k_size)
  print(subset.report.summary())
  return build.SplitToBuild(dataset=split.dataset, split=split.split, label_map=label_map,
                            requests=subset.rows, rejected=split.rejected), subset.report


def write_subset_report(output_dir: str, report: as500k.SubsetReport) -> None:
  """Writes as500k_report.json beside the shards, unless it already holds this report.

  Written after the build, when the output directory exists, and left alone
  when unchanged, so that re-running a finished build changes nothing.
  """
  path = layout.BuildLayout(output_dir).as500k_report
  payload = json.loads(json.dumps(report.to_json_dict()))
  if files.exists(path):
    try:
      if files.read_json(path) == payload:
        return
    except ValueError:  # unreadable: write it anew
      pass
  files.write_json(path, payload)


def run(argv: Optional[Sequence[str]] = None) -> Manifest:
  """Parses the command line and runs the build; returns its manifest."""
  args, beam_args = build_cli.parse_args(make_parser(), argv)
  split, report = load_split(args)
  local, fetch_step = build_cli.clip_sources(args)
  manifest = build.run_build(split, fetch_step, args, beam_args, local_files=local)
  if report is not None:
    write_subset_report(args.output_dir, report)
  return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
  return build_cli.main_of(run, argv)


if __name__ == "__main__":
  sys.exit(main())
