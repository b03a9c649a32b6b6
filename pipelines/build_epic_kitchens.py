"""Build EPIC-KITCHENS-100 shards from local videos: one clip per narration.

    python -m pipelines.build_epic_kitchens --videos_dir /data/EPIC-KITCHENS \\
        --annotations EPIC_100_validation.csv --train_annotations EPIC_100_train.csv \\
        --verb_classes EPIC_100_verb_classes.csv --noun_classes EPIC_100_noun_classes.csv \\
        --split validation --output_dir builds/epic/validation

Videos lie at VIDEOS_DIR/PXX/videos/PXX_YY.MP4 (50 or 59.94 fps, 1080p; a
local path or gs://). A clip is one narration_id from start_timestamp to
stop_timestamp (the timestamps, never the frame columns), sampled at 25 fps
with the audio of the same file. Records carry verb_class, noun_class and the
action index (the (verb, noun) pair's index among the training pairs, -1 when
the pair never occurs in training); clip/label/index holds the action.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from pipelines import build, build_cli, fetch
from pipelines.sources import epic_kitchens, rows
from shared.manifest import Manifest


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pipelines.build_epic_kitchens",
                                   description=__doc__.split("\n")[0])
  source = parser.add_argument_group("annotations and videos")
  source.add_argument("--videos_dir", required=True, help="directory holding PXX/videos/PXX_YY.MP4")
  source.add_argument("--annotations", required=True, help="the split's CSV, e.g. EPIC_100_validation.csv")
  source.add_argument("--train_annotations", default=None,
                      help="EPIC_100_train.csv, whose (verb, noun) pairs index the actions "
                      "(default: --annotations itself)")
  source.add_argument("--verb_classes", required=True, help="EPIC_100_verb_classes.csv")
  source.add_argument("--noun_classes", required=True, help="EPIC_100_noun_classes.csv")
  source.add_argument("--split", default="validation", help="split name, also the shard prefix")
  build_cli.add_build_arguments(parser)
  parser.set_defaults(require_video=True)  # EPIC's videos are videos: one without a video stream fails, as ever
  return parser


def load_split(args: argparse.Namespace) -> build.SplitToBuild:
  verbs = epic_kitchens.load_epic_verb_classes(args.verb_classes)
  nouns = epic_kitchens.load_epic_noun_classes(args.noun_classes)
  train_file = args.train_annotations or args.annotations
  if args.train_annotations is None:
    logging.warning("no --train_annotations: actions are indexed by the pairs of %s itself", args.annotations)
  # With --skip_bad_rows the training file's bad rows stay out of the action
  # map too: otherwise the annotation file standing in for it, or one bad
  # training row, would stop the build that the option asks to go on.
  training = epic_kitchens.parse_epic_training_annotations(train_file, verbs, nouns, skip_bad_rows=args.skip_bad_rows)
  if training.rejected and args.train_annotations is not None:  # else they are this split's, in its ledger
    first = training.rejected[0]
    logging.warning("%d bad rows of %s left out of the action map, the first %s:%d: %s", len(training.rejected),
                    train_file, first.file, first.line, first.reason)
  actions = training.label_map
  parsed = epic_kitchens.parse_epic_annotations(args.annotations, verbs, nouns, action_map=actions,
                                                split=args.split, skip_bad_rows=args.skip_bad_rows)
  split = build.SplitToBuild.from_parse(rows.EPIC_KITCHENS, args.split, parsed, actions)
  return build.SplitToBuild(dataset=split.dataset, split=split.split, label_map=actions, requests=split.requests,
                            rejected=split.rejected, other_label_maps=(verbs, nouns))


def run(argv: Optional[Sequence[str]] = None) -> Manifest:
  """Parses the command line and runs the build; returns its manifest."""
  args, beam_args = build_cli.parse_args(make_parser(), argv)
  return build.run_build(load_split(args), fetch.OpenLocalVideos(args.videos_dir), args, beam_args)


def main(argv: Optional[Sequence[str]] = None) -> int:
  return build_cli.main_of(run, argv)


if __name__ == "__main__":
  sys.exit(main())
