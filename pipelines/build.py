"""What every dataset build shares: its options, its story as one composite transform, its run.

A build turns one split's ClipRequests into shards:

    requests -> Fetch (download, or open the local EPIC video)
             -> ExtractFeatures (frames, audio, log-mel, serialize)
             -> (+ clips carried over from a previous build)
             -> WriteShards (TFRecord, ArrayRecord) -> WriteManifest

and every requested clip not in a shard ends in the failure ledger with a
reason. The dataset entry points (build_vggsound, build_audioset,
build_epic_kitchens) only parse their annotations and pick the fetch step.

Output directory layout (local path or gs://):

    OUTPUT_DIR/SPLIT-00000-of-000NN                 TFRecord shards (Scenic's reader)
    OUTPUT_DIR/SPLIT-00000-of-000NN.array_record    ArrayRecord shards, same bytes (grain)
    OUTPUT_DIR/manifest.json                        written last: the build is complete
    OUTPUT_DIR/label_map.json
    OUTPUT_DIR/ledger/*.jsonl                       one record per clip checked
    OUTPUT_DIR/refresh_report.json                  with --previous_build
    OUTPUT_DIR/media/                               downloaded sections (local builds), reused by re-runs
    OUTPUT_DIR/staging/                             records waiting for their shard (empty when done)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import features, fetch, manifest as manifest_lib, refresh as refresh_lib, shards
from pipelines.download import ledger as ledger_lib
from pipelines.download.backoff import RetryPolicy
from pipelines.download.downloader import DownloadConfig
from pipelines.download.identifiers import DEFAULT_URL_TEMPLATE
from pipelines.sources.rows import ClipRequest, ParseResult, RejectedRow
from shared import contract
from shared.media import decode

LEDGER_DIR_NAME = refresh_lib.LEDGER_DIR_NAME
REFRESH_REPORT_NAME = "refresh_report.json"
STAGING_DIR_NAME = "staging"  # records between feature extraction and their shard
BAD_ROW = "bad_row"

BEAM_PASSTHROUGH_HELP = """
Any Apache Beam pipeline option passes through, e.g. --runner=DataflowRunner
--project=P --region=R --temp_location=gs://B/tmp --num_workers=N
--sdk_container_image=IMAGE --setup_file=./setup.py. Without --runner the
build runs on the DirectRunner using every local core.
"""


class BuildError(RuntimeError):
  """A build that cannot start or did not finish as it must."""


# ---------------------------------------------------------------------------
# Options.
# ---------------------------------------------------------------------------
def add_build_arguments(parser: argparse.ArgumentParser) -> None:
  """Options every build takes."""
  group = parser.add_argument_group("build")
  group.add_argument("--output_dir", required=True, help="the split's output directory (local or gs://)")
  group.add_argument("--formats", default=",".join(shards.FORMATS),
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
  group.add_argument("--decode_deadline", type=float, default=300.0,
                     help="seconds one clip's decode may take before it fails (default 300)")
  group.add_argument("--progress_interval", type=float, default=15.0,
                     help="seconds between progress lines on local runs (0: none)")


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
  """Options of the YouTube builds' downloader."""
  group = parser.add_argument_group("download")
  group.add_argument("--url_template", default=DEFAULT_URL_TEMPLATE,
                     help="where videos come from; {ytid} is replaced (a mirror, e.g. "
                     "http://127.0.0.1:8000/{ytid}.mp4)")
  group.add_argument("--media_dir", default=None,
                     help="local directory for downloaded sections, reused by re-runs "
                     "(default OUTPUT_DIR/media for a local OUTPUT_DIR, else a temporary directory)")
  group.add_argument("--max_height", type=int, default=360, help="video height cap (default 360)")
  group.add_argument("--margin", type=float, default=1.0, help="seconds fetched around each span (default 1)")
  group.add_argument("--cookies", default=None, help="Netscape cookies file for yt-dlp (never logged)")
  group.add_argument("--proxy", default=None, help="proxy URL for yt-dlp (never logged)")
  group.add_argument("--concurrency", type=int, default=2, help="downloads at once per worker (default 2)")
  group.add_argument("--sleep_interval", type=float, default=0.0,
                     help="least seconds between two downloads starting, per worker")
  group.add_argument("--sleep_requests", type=float, default=0.0, help="seconds between yt-dlp's requests")
  group.add_argument("--rate_limit", type=int, default=None, help="download rate cap, bytes/s")
  group.add_argument("--max_attempts", type=int, default=3, help="attempts per clip for transient failures")
  group.add_argument("--retry_base_delay", type=float, default=2.0, help="first backoff delay, seconds")
  group.add_argument("--socket_timeout", type=float, default=20.0, help="network timeout, seconds")
  group.add_argument("--verify_by_decoding", action="store_true",
                     help="verify each download by decoding it (default: from its packets; feature extraction "
                     "decodes every clip right after anyway)")


def ledger_dir(args: argparse.Namespace) -> str:
  return args.output_dir.rstrip("/") + "/" + LEDGER_DIR_NAME


def youtube_fetch(args: argparse.Namespace) -> beam.PTransform:
  """The fetch step of the YouTube builds, as the command line configures it."""
  return fetch.FetchFromYouTube(download_config(args), ledger_dir(args), verify_by_decoding=args.verify_by_decoding)


def download_config(args: argparse.Namespace) -> DownloadConfig:
  media_dir = args.media_dir
  if media_dir is None:
    media_dir = (tempfile.mkdtemp(prefix="mbt-media-") if "://" in args.output_dir
                 else os.path.join(args.output_dir, "media"))
  return DownloadConfig(
      output_dir=media_dir, url_template=args.url_template, max_height=args.max_height, margin_s=args.margin,
      cookies_file=args.cookies, proxy=args.proxy, socket_timeout_s=args.socket_timeout,
      concurrency=args.concurrency, sleep_between_clips_s=args.sleep_interval,
      sleep_between_requests_s=args.sleep_requests, rate_limit_bytes_per_s=args.rate_limit,
      retry=RetryPolicy(max_attempts=args.max_attempts, base_delay_s=args.retry_base_delay))


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
  """Beam options as given; without --runner, a local run on every core.

  The local default is Beam's FnApiRunner, the engine the DirectRunner runs
  batch pipelines on, named directly: the DirectRunner first tries to fetch
  the Prism runner binary from the network, which a local build must not need.
  """
  args = list(beam_args)
  if PipelineOptions(args).view_as(StandardOptions).runner is None:
    args.append("--runner=FnApiRunner")
    if not any(a.startswith("--direct_running_mode") for a in args):
      args.append("--direct_running_mode=multi_processing")
    in_memory = any(a == "--direct_running_mode=in_memory" for a in args)
    if not in_memory and not any(a.startswith("--direct_num_workers") for a in args):
      args.append(f"--direct_num_workers={os.cpu_count() or 1}")
  return PipelineOptions(args)


def is_local(options: PipelineOptions) -> bool:
  return options.view_as(StandardOptions).runner in ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")


def feature_options(args: argparse.Namespace) -> dict:
  return {"frame_short_side": args.frame_short_side, "jpeg_quality": args.jpeg_quality}


# ---------------------------------------------------------------------------
# The story.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SplitToBuild:
  """One split's clips and what the build needs to know about them.

  Attributes:
    dataset: dataset name (written into every record).
    split: split name; also the shard file prefix.
    label_map: the label map the requests' label indices index into.
    requests: the clips asked for, in any order.
    rejected: annotation rows that could not be parsed (skip_bad_rows).
    other_label_maps: further label maps the records index into (EPIC's
      verbs and nouns), written into the manifest under "label_maps".
  """

  dataset: str
  split: str
  label_map: contract.LabelMap
  requests: tuple[ClipRequest, ...]
  rejected: tuple[RejectedRow, ...] = ()
  other_label_maps: tuple[contract.LabelMap, ...] = ()

  @classmethod
  def from_parse(cls, dataset: str, split: str, parsed: ParseResult, label_map: contract.LabelMap,
                 keep: Callable[[ClipRequest], bool] = lambda _: True) -> "SplitToBuild":
    return cls(dataset=dataset, split=split, label_map=label_map,
               requests=tuple(r for r in parsed.rows if keep(r)), rejected=tuple(parsed.rejected))

  @property
  def num_requested(self) -> int:
    return len(self.requests) + len(self.rejected)


def bad_row_record(row: RejectedRow) -> ledger_lib.LedgerRecord:
  """A rejected annotation row, as a failed ledger entry named by its file and line."""
  name = os.path.basename(row.file).replace(".", "_")
  return ledger_lib.LedgerRecord(
      clip_id=f"bad_row_{name}_L{row.line}", source_id="", status=ledger_lib.STATUS_FAILED,
      reason_class=BAD_ROW, reason="malformed", message=f"{row.file}:{row.line}: {row.reason}", attempts=0,
      checked_at=ledger_lib.utc_now_iso())


class _WriteLedgerFn(beam.DoFn):
  """Appends ledger records; one ledger file per bundle."""

  def __init__(self, ledger_dir: str):
    self._ledger_dir = ledger_dir
    self._writer = None

  def start_bundle(self):
    self._writer = None

  def process(self, record: ledger_lib.LedgerRecord):
    if self._writer is None:  # no empty files for empty bundles
      self._writer = ledger_lib.LedgerWriter(self._ledger_dir)
    self._writer.append(record)

  def finish_bundle(self):
    if self._writer is not None:
      self._writer.close()


class BuildSplit(beam.PTransform):
  """ClipRequests -> shards, ledger and manifest of one split. Outputs the manifest."""

  def __init__(self, split: SplitToBuild, fetch: beam.PTransform, output_dir: str, *,
               formats: Sequence[str], clips_per_shard: int, decode_options: decode.DecodeOptions,
               build_options: Mapping, plan: Optional[refresh_lib.RefreshPlan] = None):
    super().__init__()
    self._split = split
    self._fetch = fetch
    self._output_dir = output_dir
    self._formats = tuple(formats)
    self._num_shards = shards.num_shards_for(len(split.requests), clips_per_shard)
    self._decode_options = decode_options
    self._build_options = dict(build_options, num_shards=self._num_shards)
    self._plan = plan

  def expand(self, pipeline):
    split, plan = self._split, self._plan
    ledger_dir = self._output_dir.rstrip("/") + "/" + LEDGER_DIR_NAME
    to_fetch = plan.to_fetch if plan else split.requests
    known_failures = [bad_row_record(row) for row in split.rejected]
    known_failures += list(plan.carried_failures) if plan else []

    requests = pipeline | "ReadClipRequests" >> beam.Create(sorted(to_fetch, key=lambda r: r.clip_id))
    fetched, fetch_failures = requests | "Fetch" >> self._fetch
    encoded, feature_failures = fetched | "ExtractFeatures" >> features.ExtractFeatures(self._decode_options)
    staging_dir = self._output_dir.rstrip("/") + "/" + STAGING_DIR_NAME
    encoded = encoded | "StageRecords" >> shards.StageClips(staging_dir)
    if plan and plan.carry_over:
      requests_by_id = {r.clip_id: r for r in split.requests}
      carried = (pipeline
                 | "CarryOverPreviousClips" >> refresh_lib.CarryOverPreviousClips(plan, requests_by_id)
                 | "StageCarriedRecords" >> shards.StageClips(staging_dir))
      encoded = (encoded, carried) | "WithCarriedOver" >> beam.Flatten()

    shard_infos = encoded | "WriteShards" >> shards.WriteShards(
        self._output_dir, split.split, self._num_shards, self._formats)

    known = pipeline | "KnownFailures" >> beam.Create(known_failures).with_output_types(ledger_lib.LedgerRecord)
    not_yet_in_ledger = [feature_failures, known]
    if not getattr(self._fetch, "writes_ledger", False):  # e.g. EPIC's missing videos
      not_yet_in_ledger.append(fetch_failures)
    _ = (tuple(not_yet_in_ledger)
         | "FailuresNotYetInLedger" >> beam.Flatten()
         | "RecordFailuresInLedger" >> beam.ParDo(_WriteLedgerFn(ledger_dir)))
    failures = ((fetch_failures, feature_failures, known)
                | "AllFailures" >> beam.Flatten()
                | "ClipAndReason" >> beam.Map(lambda r: (r.clip_id, f"{r.reason_class}/{r.reason}")))
    moments = encoded | "LogMelMoments" >> beam.Map(
        lambda c: (c.melspec_sum, c.melspec_sum_squares, c.melspec_count))
    extra = {"previous_build": plan.previous_dir} if plan else {}
    if split.other_label_maps:
      extra["label_maps"] = {m.name: m.to_json_dict() for m in split.other_label_maps}
    return ({"shards": shard_infos, "failures": failures, "moments": moments}
            | "WriteManifest" >> manifest_lib.WriteManifest(
                self._output_dir, dataset=split.dataset, split=split.split, label_map=split.label_map,
                requested=split.num_requested, build_options=self._build_options, extra=extra))


# ---------------------------------------------------------------------------
# Running a build.
# ---------------------------------------------------------------------------
class ProgressMonitor:
  """Prints a progress line from the ledger every `interval` seconds (local runs).

  The ledger is written as clips are fetched, by every worker process, so the
  launcher can follow a multi-process DirectRunner build without talking to it.
  """

  def __init__(self, ledger_dir: str, total: int, interval: float, stream=sys.stderr):
    self._ledger_dir = ledger_dir
    self._total = total
    self._interval = interval
    self._stream = stream
    self._stop = threading.Event()
    self._started = time.monotonic()
    self._initial = None
    self._thread = threading.Thread(target=self._run, name="build-progress", daemon=True)

  def __enter__(self):
    if self._interval > 0 and self._total > 0:
      self._initial = self._count()[0]
      self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    if self._thread.is_alive():
      self._thread.join(timeout=5)

  def _count(self):
    ledger = ledger_lib.read_ledger(self._ledger_dir, missing_ok=True)
    # Bad annotation rows are in the ledger too, but were never fetched.
    fetched = [r for r in ledger.records.values() if r.reason_class != BAD_ROW]
    failed = collections.Counter(f"{r.reason_class}/{r.reason}" for r in fetched
                                 if r.status == ledger_lib.STATUS_FAILED)
    return len(fetched), failed

  def line(self) -> str:
    checked, failed = self._count()
    done = checked - (self._initial or 0)
    elapsed = time.monotonic() - self._started
    rate = done / elapsed if elapsed > 0 else 0.0
    remaining = max(self._total - done, 0)
    eta = f"{remaining / rate / 60:.1f} min" if rate > 0 else "?"
    reasons = ", ".join(f"{reason} {n}" for reason, n in failed.most_common(4)) or "none"
    return (f"[progress] {done}/{self._total} clips fetched ({rate:.2f}/s, ETA {eta}); "
            f"failures so far: {sum(failed.values())} ({reasons})")

  def _run(self):
    while not self._stop.wait(self._interval):
      try:
        print(self.line(), file=self._stream, flush=True)
      except Exception as error:  # progress must never break a build
        logging.debug("progress line failed: %s", error)


def _existing_manifest(output_dir: str) -> Optional[dict]:
  try:
    return manifest_lib.read_manifest(output_dir)
  except Exception:
    return None


def _same_build(previous: Mapping, split: SplitToBuild, build_options: Mapping) -> bool:
  written = {clip_id for ids in previous.get("shard_clip_ids", {}).values() for clip_id in ids}
  failed = {entry["clip_id"] for entry in previous.get("failed_clips", [])}
  wanted = {r.clip_id for r in split.requests} | {bad_row_record(r).clip_id for r in split.rejected}
  recorded = {k: v for k, v in previous.get("build_options", {}).items() if k in build_options}
  return written | failed == wanted and recorded == dict(build_options)


def run_build(split: SplitToBuild, fetch: beam.PTransform, args: argparse.Namespace,
              beam_args: Sequence[str], progress: bool = True) -> dict:
  """Runs one split's build end to end and returns its manifest.

  A finished build of the same clips and options in OUTPUT_DIR is left as it
  is (re-running changes nothing); an unfinished one is completed, reusing
  every download already made.
  """
  if args.max_clips is not None:
    split = dataclasses.replace(split, requests=tuple(sorted(split.requests, key=lambda r: r.clip_id)[:args.max_clips]))
  build_options = {**feature_options(args), "formats": args.formats, "clips_per_shard": args.clips_per_shard}
  formats = [f.strip() for f in args.formats.split(",") if f.strip()]

  finished = _existing_manifest(args.output_dir)
  if finished is not None:
    if _same_build(finished, split, build_options):
      logging.info("%s already holds this finished build; nothing to do", args.output_dir)
      print(manifest_lib.summary_line(finished) + " (already complete, unchanged)")
      return finished
    raise BuildError(f"{args.output_dir} holds a finished build of other clips or options; build into a new "
                     f"directory with --previous_build={args.output_dir} to refresh it")

  plan = None
  if args.previous_build:
    if os.path.normpath(args.previous_build) == os.path.normpath(args.output_dir):
      raise BuildError("--previous_build must differ from --output_dir (a refresh writes a new build)")
    try:
      plan = refresh_lib.plan_refresh(split.requests, args.previous_build, feature_options(args),
                                      recheck_unavailable=args.recheck_unavailable)
    except refresh_lib.RefreshError as error:  # a user error: the entry points print it, no traceback
      raise BuildError(str(error)) from error
    ledger_lib.write_records(args.output_dir.rstrip("/") + "/" + LEDGER_DIR_NAME,
                             refresh_lib.carried_ledger_records(plan))
    logging.info("refresh from %s: %d to fetch, %d carried over, %d permanent failures kept", args.previous_build,
                 len(plan.to_fetch), len(plan.carry_over), len(plan.carried_failures))

  if "://" not in args.output_dir:
    # Shards are written straight into it; nothing else may have created it (EPIC builds write no downloads).
    os.makedirs(args.output_dir, exist_ok=True)
  decode_options = decode.DecodeOptions(short_side=args.frame_short_side, jpeg_quality=args.jpeg_quality,
                                        deadline_s=args.decode_deadline)
  options = pipeline_options(beam_args)
  pipeline = beam.Pipeline(options=options)
  _ = pipeline | f"Build_{split.dataset}_{split.split}" >> BuildSplit(
      split, fetch, args.output_dir, formats=formats, clips_per_shard=args.clips_per_shard,
      decode_options=decode_options, build_options=build_options, plan=plan)

  to_fetch = len(plan.to_fetch) if plan else len(split.requests)
  logging.info("building %s/%s: %d clips requested, %d to fetch, into %s", split.dataset, split.split,
               split.num_requested, to_fetch, args.output_dir)
  interval = args.progress_interval if (progress and is_local(options)) else 0
  with ProgressMonitor(args.output_dir.rstrip("/") + "/" + LEDGER_DIR_NAME, to_fetch, interval):
    result = pipeline.run()
    result.wait_until_finish()

  manifest = manifest_lib.read_manifest(args.output_dir)
  print(manifest_lib.summary_line(manifest))
  if plan is not None:
    report = refresh_lib.refresh_report(plan.previous_manifest, manifest)
    manifest_lib.write_json_atomically(args.output_dir.rstrip("/") + "/" + REFRESH_REPORT_NAME, report)
    print(refresh_lib.format_refresh_report(report))
  return manifest


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


def main_of(run: Callable[[Optional[Sequence[str]]], dict], argv: Optional[Sequence[str]]) -> int:
  """An entry point's exit status: 0 when the build finished, 2 with a one-line error otherwise."""
  from pipelines.sources.rows import AnnotationError

  try:
    run(argv)
  except (BuildError, AnnotationError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0
