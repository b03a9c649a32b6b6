"""The command line every build_* entry point shares: its options, Beam's options, its exit status.

Our options are parsed into argparse; everything else goes to Beam. A build
that cannot start (a user error) exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from typing import Callable, Optional, Sequence

import apache_beam as beam

from pipelines import fetch
from pipelines.build import DEFAULT_MAX_SPAN_S, BuildError
from pipelines.download import options as download_options
from pipelines.download.downloader import DownloadConfig
from shared import contract, files, layout
from shared.manifest import Manifest

BEAM_PASSTHROUGH_HELP = """
Any Apache Beam pipeline option passes through, e.g. --runner=DataflowRunner
--project=P --region=R --temp_location=gs://B/tmp --num_workers=N
--sdk_container_image=IMAGE --setup_file=./setup.py. Without --runner the
build runs on the DirectRunner using every local core.
"""


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
  """Options every build takes."""
  group = parser.add_argument_group("build")
  group.add_argument("--output_dir", required=True, help="the split's output directory (local or gs://)")
  group.add_argument("--formats", default=",".join(layout.FORMATS),
                     help="comma-separated shard formats: tfrecord, arrayrecord (default both)")
  group.add_argument("--clips_per_shard", type=int, default=64,
                     help="target clips per shard (a 10 s clip is about 3 MB); default 64")
  group.add_argument("--max_clips", type=int, default=None,
                     help="build only the first N requested clips by clip id (smoke runs)")
  group.add_argument("--skip_bad_rows", action="store_true",
                     help="record malformed annotation rows in the ledger instead of stopping")
  group.add_argument("--previous_build", default=None,
                     help="refresh: carry over the clips of this finished build instead of fetching them")
  group.add_argument("--recheck_unavailable", action="store_true",
                     help="refresh: also retry clips that failed permanently before")
  group.add_argument("--frame_short_side", type=int, default=contract.FRAME_SHORT_SIDE,
                     help=f"stored frames' short side in pixels (default {contract.FRAME_SHORT_SIDE})")
  group.add_argument("--jpeg_quality", type=int, default=contract.JPEG_QUALITY,
                     help=f"stored frames' JPEG quality (default {contract.JPEG_QUALITY})")
  group.add_argument("--require_audio", action="store_true",
                     help="fail clips without an audio stream (invalid_media/missing_stream) instead of storing "
                     "them with has_audio=0 and the log-mel of silence")
  group.add_argument("--decode_deadline", type=float, default=300.0,
                     help="seconds one clip's decode may take before it fails (default 300)")
  group.add_argument("--max_span_seconds", type=float, default=DEFAULT_MAX_SPAN_S,
                     help="clips longer than this fail as permanent/invalid_span, unfetched: a record holds "
                     f"every frame, so memory grows with the span (default {DEFAULT_MAX_SPAN_S:g}, above "
                     "EPIC-KITCHENS-100's longest action, 147 s)")
  group.add_argument("--progress_interval", type=float, default=15.0,
                     help="seconds between progress lines on local runs (0: none)")


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
  """Options of the YouTube builds' downloader: those of every download, and the build's own."""
  group = download_options.add_download_arguments(parser)
  group.add_argument("--media_dir", default=None,
                     help="local directory for downloaded sections, reused by re-runs "
                     "(default OUTPUT_DIR/media for a local OUTPUT_DIR, else a temporary directory)")
  group.add_argument("--verify_by_decoding", action="store_true",
                     help="verify each download by decoding it (default: from its packets; feature extraction "
                     "decodes every clip right after anyway)")


def download_config(args: argparse.Namespace) -> DownloadConfig:
  """The YouTube builds' DownloadConfig: sections go to --media_dir, kept for re-runs."""
  media_dir = args.media_dir
  if media_dir is None:
    media_dir = (tempfile.mkdtemp(prefix="mbt-media-") if files.is_remote(args.output_dir)
                 else layout.BuildLayout(args.output_dir).media_dir)
  try:
    return download_options.download_config(args, media_dir, require_audio=args.require_audio)
  except (ValueError, FileNotFoundError) as error:  # a bad option value: a user error, no traceback
    raise BuildError(str(error)) from error


def youtube_fetch(args: argparse.Namespace) -> beam.PTransform:
  """The fetch step of the YouTube builds, as the command line configures it."""
  return fetch.FetchFromYouTube(download_config(args), layout.BuildLayout(args.output_dir).ledger_dir,
                                verify_by_decoding=args.verify_by_decoding)


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]):
  """Our options, and everything else for Beam."""
  parser.epilog = BEAM_PASSTHROUGH_HELP
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  args, beam_args = parser.parse_known_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  # Beam's own INFO lines (worker start-up, state caches) drown the build's story.
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  # It relays every worker's start-up warnings (e.g. about a semi-persistent directory).
  logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
  return args, beam_args


def main_of(run: Callable[[Optional[Sequence[str]]], Manifest], argv: Optional[Sequence[str]]) -> int:
  """An entry point's exit status: 0 when the build finished, 2 with a one-line error otherwise."""
  from pipelines.sources.rows import AnnotationError

  try:
    run(argv)
  except (BuildError, AnnotationError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0
