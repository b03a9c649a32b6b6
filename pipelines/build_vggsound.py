"""Build VGGSound shards: download the clips still on YouTube, extract features, write shards.

Locally (DirectRunner, every core):

    python -m pipelines.build_vggsound --csv vggsound.csv --split test --output_dir builds/vggsound/test

On Dataflow:

    python -m pipelines.build_vggsound --csv vggsound.csv --split train \\
        --output_dir gs://BUCKET/vggsound/train --runner=DataflowRunner --project=PROJECT \\
        --region=REGION --temp_location=gs://BUCKET/tmp --sdk_container_image=IMAGE

A refresh of an earlier build (carries its clips over, fetches only new and
transiently failed ones):

    python -m pipelines.build_vggsound --csv vggsound.csv --split test \\
        --output_dir builds/vggsound/test-2026-12 --previous_build builds/vggsound/test

From clips you have already (VGGSound's release, YTID_000300.mp4: see
WORKSPACE.md, "Have the clips already?"); clips without a file are downloaded:

    python -m pipelines.build_vggsound --csv vggsound.csv --split test \\
        --output_dir builds/vggsound/test --videos_dir /data/vggsound/video

Annotations: ``vggsound.csv`` (``YTID,start_seconds,label,train|test``, no
header) with --csv, or a file list like the repo's ``test.csv``
(``YTID_000300.mp4,label``) with --file_list. Class indices are the sorted
list of the labels (stat.csv's with --class_labels, else the CSV's own), written
into every build as label_map.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Optional, Sequence

from pipelines import build, build_cli
from pipelines.sources import rows, vggsound
from shared.manifest import Manifest


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pipelines.build_vggsound", description=__doc__.split("\n")[0])
  source = parser.add_argument_group("annotations")
  given = source.add_mutually_exclusive_group(required=True)
  given.add_argument("--csv", help="vggsound.csv: YTID,start_seconds,label,train|test")
  given.add_argument("--file_list", help="a file list like the repo's test.csv: YTID_000300.mp4,label")
  source.add_argument("--split", default="test", help="train or test (default test)")
  source.add_argument("--clip_seconds", type=float, default=vggsound.CLIP_SECONDS,
                      help=f"length of each clip from its start (VGGSound's are {vggsound.CLIP_SECONDS} s)")
  build_cli.add_class_labels_argument(
      source, required=False, help="stat.csv, whose sorted labels give the class indices (default: the CSV's labels)")
  build_cli.add_build_arguments(parser)
  build_cli.add_local_source_arguments(parser)
  build_cli.add_download_arguments(parser)
  return parser


def load_split(args: argparse.Namespace) -> build.SplitToBuild:
  split = _parse_split(args)
  if args.clip_seconds != vggsound.CLIP_SECONDS:
    split = dataclasses.replace(split, requests=tuple(
        dataclasses.replace(r, end_s=r.start_s + args.clip_seconds) for r in split.requests))
  return split


def _parse_split(args: argparse.Namespace) -> build.SplitToBuild:
  annotations = args.csv or args.file_list
  if args.class_labels:
    label_map = vggsound.load_vggsound_label_map(args.class_labels)
  else:
    label_map = vggsound.vggsound_label_map_from_csv(annotations)
  if args.csv:
    parsed = vggsound.parse_vggsound_csv(args.csv, label_map, skip_bad_rows=args.skip_bad_rows)
    return build.SplitToBuild.from_parse(rows.VGGSOUND, args.split, parsed, label_map,
                                         keep=lambda r: r.split == args.split)
  parsed = vggsound.parse_vggsound_file_list(args.file_list, label_map, split=args.split,
                                             skip_bad_rows=args.skip_bad_rows)
  return build.SplitToBuild.from_parse(rows.VGGSOUND, args.split, parsed, label_map)


def run(argv: Optional[Sequence[str]] = None) -> Manifest:
  """Parses the command line and runs the build; returns its manifest."""
  args, beam_args = build_cli.parse_args(make_parser(), argv)
  split = load_split(args)
  local, fetch_step = build_cli.clip_sources(args)
  return build.run_build(split, fetch_step, args, beam_args, local_files=local)


def main(argv: Optional[Sequence[str]] = None) -> int:
  return build_cli.main_of(run, argv)


if __name__ == "__main__":
  sys.exit(main())
