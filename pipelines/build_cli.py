"""The command line every build_* entry point shares: its options, Beam's options, its exit status.

Our options are parsed into argparse; everything else goes to Beam. A build
that cannot start (a user error) exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from typing import Callable, Optional, Sequence

import apache_beam as beam

from pipelines import fetch, local_files
from pipelines.build import DEFAULT_MAX_SPAN_S, BuildError, BuildOptions
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


# --sources: where the YouTube builds take clips from, tried in this order.
YOUTUBE_SOURCE = "youtube"
SOURCES = (local_files.SOURCE_NAME, YOUTUBE_SOURCE)


def add_local_source_arguments(parser: argparse.ArgumentParser) -> None:
  """The YouTube builds' options for clips the user already has (pipelines.local_files)."""
  group = parser.add_argument_group("clips you have already (see WORKSPACE.md, \"Have the clips already?\")")
  group.add_argument("--videos_dir", default=None,
                     help="directory (local or gs://) holding clips or videos named by --video_pattern; "
                     "they are decoded where they lie, nothing is copied")
  group.add_argument("--video_pattern", action="append", default=[], metavar="KIND:NAME",
                     help=f"where a clip's file lies under --videos_dir and its time base (repeatable, tried in "
                     f"order): clip:NAME for files cut at the span's start (their time 0 is the span's start), "
                     f"video:NAME for whole videos (their time 0 is the video's); NAME uses "
                     f"{', '.join('{' + f + '}' for f in local_files.FIELDS)}, e.g. video:{{ytid}}.{{ext}} "
                     f"(default {local_files.DEFAULT_PATTERN.replace('%', '%%')}, VGGSound's release)")
  group.add_argument("--sources", default=None,
                     help="where clips come from, tried in order: local, youtube or local,youtube (default "
                     "local,youtube with --videos_dir, else youtube)")
  group.add_argument("--require_video", action="store_true",
                     help="pass over local files without a video stream (the download is tried next, else the "
                     "clip fails as invalid_media/missing_stream) instead of storing them with has_video=0 and "
                     "black frames; downloads always need video")


def _resolve_sources(args: argparse.Namespace) -> None:
  """--sources in order, and whether video is required, from what the command line says.

  Raises:
    LocalSourceError: unknown or repeated sources, downloads before local
      files, local files without --videos_dir, or --videos_dir unused.
  """
  if not hasattr(args, "sources"):
    return  # a build without these options (EPIC-KITCHENS' videos are its only source)
  given = args.sources
  if given is None:
    sources = SOURCES if args.videos_dir else (YOUTUBE_SOURCE,)
  else:
    sources = tuple(name.strip() for name in given.split(",") if name.strip())
    unknown = [name for name in sources if name not in SOURCES]
    if unknown or not sources or len(set(sources)) != len(sources):
      raise local_files.LocalSourceError(f"--sources {given!r}: name each of {', '.join(SOURCES)} at most once")
    if list(sources) != [name for name in SOURCES if name in sources]:
      raise local_files.LocalSourceError(f"--sources {given!r}: local files come before downloads "
                                         "(a download's failure is final)")
  if local_files.SOURCE_NAME in sources and not args.videos_dir:
    raise local_files.LocalSourceError(f"--sources {','.join(sources)} takes local files from --videos_dir: give it")
  if args.videos_dir and local_files.SOURCE_NAME not in sources:
    raise local_files.LocalSourceError(f"--videos_dir is given but --sources {','.join(sources)} does not use it")
  if args.video_pattern and not args.videos_dir:
    raise local_files.LocalSourceError("--video_pattern names files under --videos_dir: give it")
  args.sources = sources
  # Downloads are verified to have video: only local files may be audio-only.
  args.require_video = args.require_video or local_files.SOURCE_NAME not in sources


def clip_sources(args: argparse.Namespace) -> tuple[Optional[local_files.RecordsFromLocalFiles],
                                                    Optional[beam.PTransform]]:
  """(the local files step, the fetch step) of a YouTube build, as --sources says; either may be None.

  Raises:
    LocalSourceError: a --video_pattern that cannot be read.
  """
  ledger_dir = layout.BuildLayout(args.output_dir).ledger_dir
  downloads = YOUTUBE_SOURCE in args.sources
  local = None
  if local_files.SOURCE_NAME in args.sources:
    finder = local_files.LocalFileFinder(args.videos_dir, local_files.parse_patterns(args.video_pattern))
    local = local_files.RecordsFromLocalFiles(
        finder, BuildOptions.from_args(args).decode, ledger_dir, require_audio=args.require_audio,
        require_video=args.require_video, hand_on=downloads)
  return local, youtube_fetch(args) if downloads else None


# Beam's --labels (a Dataflow job's labels) takes KEY=VALUE; a class-label file name never has that form.
_JOB_LABEL = re.compile(r"^[a-z][a-z0-9_-]*=")


def add_class_labels_argument(group, *, required: bool, help: str) -> None:
  """--class_labels FILE; --labels FILE, the name the docs used, still works without hiding Beam's --labels."""
  group.add_argument("--class_labels", required=False, default=None, help=help + (" (required)" if required else ""))
  group.add_argument("--labels", dest="class_labels_or_job_labels", action="append", default=[],
                     help="the same as --class_labels (a KEY=VALUE value is Beam's Dataflow job label)")
  group.set_defaults(class_labels_required=required)


def _route_labels(parser: argparse.ArgumentParser, args: argparse.Namespace, beam_args: list[str]) -> None:
  values = getattr(args, "class_labels_or_job_labels", None)
  if values is None:
    return
  for value in values:
    if _JOB_LABEL.match(value):
      beam_args.append(f"--labels={value}")  # Beam's own, not ours
    elif args.class_labels is None:
      args.class_labels = value
    elif args.class_labels != value:
      parser.error(f"--labels {value} and --class_labels {args.class_labels} name two class-label files")
  if args.class_labels_required and args.class_labels is None:
    parser.error("the following arguments are required: --class_labels (or --labels)")


def unknown_beam_flags(beam_args: Sequence[str]) -> list[str]:
  """The arguments that neither our parser nor any of Beam's PipelineOptions knows (no prefix matching)."""
  from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

  parser = _BeamArgumentParser(allow_abbrev=False)
  for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
    options_class._add_argparse_args(parser)  # pylint: disable=protected-access
  _, unknown = parser.parse_known_args(list(beam_args))
  return unknown


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]):
  """Our options, and everything else for Beam; an argument neither knows is an error naming it."""
  parser.epilog = BEAM_PASSTHROUGH_HELP
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.allow_abbrev = False  # --label must not become our --labels, nor --clip our --clip_seconds
  args, beam_args = parser.parse_known_args(argv)
  _route_labels(parser, args, beam_args)
  _resolve_sources(args)
  unknown = unknown_beam_flags(beam_args)
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)} (neither a build option nor a Beam pipeline option)")
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
  except (BuildError, AnnotationError, local_files.LocalSourceError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0
