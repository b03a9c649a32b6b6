"""What every dataset build shares: plan, run, report.

A build turns one split's ClipRequests into shards:

    requests -> FromLocalFiles (--videos_dir: records made from files the user has; the rest handed on)
             -> Fetch (download, or open the local EPIC video)
             -> ExtractFeatures (frames, audio, log-mel, serialize)
             -> (+ clips carried over from a previous build)
             -> WriteShards (TFRecord, ArrayRecord) -> WriteManifest

and every requested clip not in a shard ends in the failure ledger with a
reason. :func:`run_build` is the whole story: :func:`plan_build` decides what
to do (nothing, if the same build is finished already; what to carry over on a
refresh), :func:`run_plan` runs the Beam pipeline, :func:`report` says what
came of it. The dataset entry points (build_vggsound, build_audioset,
build_epic_kitchens) only parse their annotations and pick the sources: the
local files step, the fetch step, or both. Every written clip's origin
(downloaded, local, carried over) goes into the manifest.

The output directory's layout is shared.layout; its manifest, shared.manifest;
the command line the entry points share, pipelines.build_cli.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
import os
from typing import Callable, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import clip_requests, features, local_files as local_files_lib, manifest as manifest_lib
from pipelines import refresh as refresh_lib, resume, shards, work_list
from pipelines.download import breaker, ledger as ledger_lib
from pipelines.ledger_sink import WriteToLedger
from pipelines.progress import ProgressMonitor
from pipelines.sources.rows import ClipRequest, ParseResult, RejectedRow
from shared import contract, files, layout
from shared.failures import FailureClass, Reason
from shared.manifest import ClipOrigin, Manifest, ManifestError, read_manifest
from shared.media import decode


class BuildError(RuntimeError):
  """A build that cannot start or did not finish as it must."""


# The longest span a build decodes (--max_span_seconds). A clip's record holds
# every frame, so its memory grows with its span (measured: 592 MB peak for
# 150 s of hard-to-compress 640x360 60 fps video); longer spans fail as
# permanent/invalid_span instead of exhausting a worker. 150 s keeps every
# annotated clip we know: EPIC-KITCHENS-100 validation's longest action is
# 146.98 s (P31_10_30; 3 of 9,668 are over 120 s), VGGSound's and AudioSet's
# clips are 10 s.
DEFAULT_MAX_SPAN_S = 150.0


# ---------------------------------------------------------------------------
# Options: the build's, and Beam's.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BuildOptions:
  """A build's own options, read once from the command line.

  Attributes:
    output_dir: the split's output directory (local or gs://).
    formats: shard formats to write.
    clips_per_shard: target clips per shard.
    decode: how clips are decoded (stored frame size, JPEG quality, deadline).
    max_clips: build only the first N requested clips by clip id.
    previous_build: a finished build to refresh from.
    recheck_unavailable: a refresh retries permanent failures too.
    require_audio: clips without an audio stream fail instead of being stored silent.
    require_video: clips without a video stream fail instead of being stored
      with black frames (has_video 0). False only where local files may be
      audio-only (a YouTube build's --videos_dir without --require_video):
      downloads and EPIC's videos always need video.
    progress_interval: seconds between progress lines on local runs (0: none).
    max_span_s: clips whose span is longer fail as permanent/invalid_span,
      unfetched.
  """

  output_dir: str
  formats: tuple[str, ...] = layout.FORMATS
  clips_per_shard: int = 64
  decode: decode.DecodeOptions = decode.DecodeOptions()
  max_clips: Optional[int] = None
  previous_build: Optional[str] = None
  recheck_unavailable: bool = False
  require_audio: bool = False
  require_video: bool = True
  progress_interval: float = 0.0
  max_span_s: float = DEFAULT_MAX_SPAN_S

  def __post_init__(self):
    unknown = set(self.formats) - set(layout.FORMATS)
    if unknown or not self.formats:
      raise BuildError(f"--formats must name some of {', '.join(layout.FORMATS)}, got {','.join(self.formats)!r}")
    if self.clips_per_shard <= 0:
      raise BuildError(f"--clips_per_shard must be positive, got {self.clips_per_shard}")
    if not (self.max_span_s > 0 and math.isfinite(self.max_span_s)):
      raise BuildError(f"--max_span_seconds must be a positive number of seconds, got {self.max_span_s}")

  @classmethod
  def from_args(cls, args: argparse.Namespace) -> "BuildOptions":
    """From the options pipelines.build_cli defines."""
    return cls(
        output_dir=args.output_dir, formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
        clips_per_shard=args.clips_per_shard, max_clips=args.max_clips, previous_build=args.previous_build,
        recheck_unavailable=args.recheck_unavailable, require_audio=args.require_audio,
        require_video=args.require_video, progress_interval=args.progress_interval, max_span_s=args.max_span_seconds,
        decode=decode.DecodeOptions(short_side=args.frame_short_side, jpeg_quality=args.jpeg_quality,
                                    deadline_s=args.decode_deadline))

  @property
  def record_options(self) -> dict:
    """The options that shape a record's bytes: another value means another record."""
    return {"frame_short_side": self.decode.short_side, "jpeg_quality": self.decode.jpeg_quality}

  @property
  def shard_options(self) -> dict:
    """The options that shape the records and the shard set (recorded in the manifest)."""
    return {**self.record_options, "formats": ",".join(self.formats), "clips_per_shard": self.clips_per_shard,
            "require_audio": self.require_audio, "require_video": self.require_video,
            "max_span_seconds": self.max_span_s}


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


# ---------------------------------------------------------------------------
# Plan: what the build will do, decided before anything runs.
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
      verbs and nouns), written into the manifest.
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
      reason_class=Reason.MALFORMED.failure_class.value, reason=Reason.MALFORMED.value,
      message=f"{row.file}:{row.line}: {row.reason}", attempts=0, checked_at=ledger_lib.utc_now_iso())


@dataclasses.dataclass(frozen=True)
class ResumeState:
  """What a run of this build that died left on the output filesystem (the checkpoint).

  Attributes:
    written_shards: the shards it finished (file names, one format).
    records_staged: whether records it made wait in staging.
    kept_failures: its permanent failures (from the ledger): not asked again.
    fetched_origins: (clip id, origin) of the clips it fetched (from the
      ledger): a recovered record keeps its origin.
  """

  written_shards: tuple[str, ...] = ()
  records_staged: bool = False
  kept_failures: tuple[ledger_lib.LedgerRecord, ...] = ()
  fetched_origins: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class BuildPlan:
  """What a build of one split does.

  Attributes:
    split: the clips to build (after --max_clips).
    options: the build's options.
    refresh: with --previous_build, what to carry over, fetch, or keep as failed.
    finished: the same build, already finished in the output directory: nothing to do.
    resume: what an earlier run of this unfinished build left to resume from.
    too_long: requested clips whose span is longer than options.max_span_s:
      failed, never fetched.
  """

  split: SplitToBuild
  options: BuildOptions
  refresh: Optional[refresh_lib.RefreshPlan] = None
  finished: Optional[Manifest] = None
  resume: Optional[ResumeState] = None
  too_long: tuple[ClipRequest, ...] = ()

  @property
  def layout(self) -> layout.BuildLayout:
    return layout.BuildLayout(self.options.output_dir)

  @property
  def num_shards(self) -> int:
    return shards.num_shards_for(len(self.split.requests), self.options.clips_per_shard)

  @property
  def to_fetch(self) -> tuple[ClipRequest, ...]:
    """The clips to fetch (or to recover from a dead run's checkpoint), by clip id."""
    requests = self.refresh.to_fetch if self.refresh else self.split.requests
    not_fetched = {r.clip_id for r in self.too_long}
    not_fetched |= {r.clip_id for r in self.resume.kept_failures} if self.resume else set()
    return tuple(sorted((r for r in requests if r.clip_id not in not_fetched), key=lambda r: r.clip_id))

  @property
  def known_failures(self) -> list[ledger_lib.LedgerRecord]:
    """Failures known before anything is fetched: bad rows, spans too long, permanent failures kept from earlier."""
    known = {record.clip_id: record for record in map(bad_row_record, self.split.rejected)}
    known.update((r.clip_id, too_long_record(r, self.options.max_span_s)) for r in self.too_long)
    for record in [*(self.refresh.carried_failures if self.refresh else ()),
                   *(self.resume.kept_failures if self.resume else ())]:
      known.setdefault(record.clip_id, record)
    return [known[clip_id] for clip_id in sorted(known)]

  @property
  def carry_over(self) -> list[tuple[ClipRequest, str]]:
    """A refresh's (request, previous shard) pairs, by clip id."""
    if not self.refresh:
      return []
    by_id = {r.clip_id: r for r in self.split.requests}
    return [(by_id[clip_id], shard) for clip_id, shard in sorted(self.refresh.carry_over.items())]

  @functools.cached_property
  def requests(self) -> clip_requests.Requests:
    """What this build is asked for: the split's requests and its unreadable rows."""
    return clip_requests.Requests.of(
        self.split.requests, [clip_requests.BadRow(bad_row_record(r).clip_id, r.reason) for r in self.split.rejected])

  def differences_from(self, manifest: Manifest, asked_there: Optional[clip_requests.Requests]) -> list[str]:
    """How the build `manifest` describes differs from this plan's, in words; [] when it is this build.

    Args:
      manifest: a finished build's manifest.
      asked_there: that build's requests file, if it has one.
    """
    differences = []
    if manifest.request_fingerprint is not None:  # what was asked, clip by clip
      if manifest.request_fingerprint != self.requests.fingerprint():
        differences.append(clip_requests.describe_difference(asked_there, self.requests))
    else:  # a manifest from before request fingerprints: only the clip ids can be compared
      wanted = {r.clip_id for r in self.requests.clips} | {b.clip_id for b in self.requests.bad_rows}
      if manifest.written_clip_ids() | set(manifest.failure_reasons()) != wanted:
        differences.append("other clips")
    # Options a manifest does not record had their default value when it was written.
    defaults = BuildOptions(output_dir=self.options.output_dir).shard_options
    for name, value in self.options.shard_options.items():
      recorded = manifest.build_options.get(name, defaults[name])
      if recorded != value:
        differences.append(f"--{name} {recorded} there, {value} now")
    return differences


def too_long_record(request: ClipRequest, max_span_s: float) -> ledger_lib.LedgerRecord:
  """The failure of a clip whose span is longer than the build decodes."""
  return features.failure_record(
      request, Reason.INVALID_SPAN,
      f"span of {request.duration_s:.3f} s is longer than --max_span_seconds={max_span_s:g}")


def plan_build(split: SplitToBuild, options: BuildOptions) -> BuildPlan:
  """Decides what the build does, reading (never writing) the output and previous builds.

  Raises:
    BuildError: the output directory holds a finished build of other clips or
      options, or the previous build cannot be refreshed from.
  """
  if options.max_clips is not None:
    split = dataclasses.replace(split, requests=tuple(sorted(split.requests, key=lambda r: r.clip_id)[
        :options.max_clips]))
  too_long = tuple(r for r in split.requests if r.duration_s > options.max_span_s)
  plan = BuildPlan(split=split, options=options, too_long=too_long)
  try:
    finished = read_manifest(options.output_dir)
  except ManifestError:
    finished = None
  if finished is not None:
    asked_there = None
    if files.exists(plan.layout.requests):
      asked_there = clip_requests.read_requests(plan.layout.requests)
    differences = plan.differences_from(finished, asked_there)
    if differences:
      raise BuildError(f"{options.output_dir} holds a finished build of other requests or options "
                       f"({'; '.join(differences)}); build into a new directory with "
                       f"--previous_build={options.output_dir} to refresh it")
    return dataclasses.replace(plan, finished=finished)
  if files.exists(plan.layout.requests):  # an earlier run of an unfinished build: resume it
    asked_then = clip_requests.read_requests(plan.layout.requests)
    if asked_then.fingerprint() != plan.requests.fingerprint():
      raise BuildError(f"{options.output_dir} holds an unfinished build of other requests "
                       f"({clip_requests.describe_difference(asked_then, plan.requests)}); build into a new "
                       f"directory, or remove {options.output_dir} to start over")
    plan = dataclasses.replace(plan, resume=checkpoint_of(plan))
  if options.previous_build:
    if os.path.normpath(options.previous_build) == os.path.normpath(options.output_dir):
      raise BuildError("--previous_build must differ from --output_dir (a refresh writes a new build)")
    try:
      within = [r for r in split.requests if r.duration_s <= options.max_span_s]
      refresh = refresh_lib.plan_refresh(within, options.previous_build, options.record_options,
                                         recheck_unavailable=options.recheck_unavailable)
    except refresh_lib.RefreshError as error:  # a user error: the entry points print it, no traceback
      raise BuildError(str(error)) from error
    plan = dataclasses.replace(plan, refresh=refresh)
  return plan


def checkpoint_of(plan: BuildPlan) -> ResumeState:
  """What an earlier run of the plan's build left: finished shards, staged records, permanent failures."""
  build = plan.layout
  listed_format = plan.options.formats[0]
  # A shard is finished when every format of it is (they are written one after the other).
  written = tuple(
      build.path(layout.shard_file_name(plan.split.split, index, plan.num_shards, listed_format))
      for index in range(plan.num_shards)
      if all(files.exists(build.shard(plan.split.split, index, plan.num_shards, fmt)) for fmt in plan.options.formats))
  staged = bool(files.match(files.join(build.staging_dir, "*" + layout.STAGED_RECORD_SUFFIX)))
  ledger = ledger_lib.read_ledger(build.ledger_dir, missing_ok=True)
  wanted = {r.clip_id for r in plan.split.requests}
  kept = tuple(record for clip_id, record in sorted(ledger.records.items())
               if clip_id in wanted and record.status == ledger_lib.STATUS_FAILED
               and record.reason_class == FailureClass.PERMANENT.value)
  # Ledgers from before origins were recorded hold downloads only.
  origins = tuple((clip_id, record.origin or ClipOrigin.DOWNLOADED.value)
                  for clip_id, record in sorted(ledger.records.items())
                  if clip_id in wanted and record.status == ledger_lib.STATUS_OK)
  logging.info("resuming %s: %d shards finished, %s, %d permanent failures kept", build.root, len(written),
               "records staged" if staged else "no record staged", len(kept))
  return ResumeState(written_shards=tuple(os.path.basename(path) for path in written), records_staged=staged,
                     kept_failures=kept, fetched_origins=origins)


# ---------------------------------------------------------------------------
# The pipeline.
# ---------------------------------------------------------------------------
def single_origin(fetch_step: Optional[beam.PTransform],
                  local_files: Optional[local_files_lib.RecordsFromLocalFiles]) -> Optional[str]:
  """The origin of every clip a build fetches when it has one source; None when it has two."""
  if fetch_step is not None and local_files is not None:
    return None
  step = fetch_step if fetch_step is not None else local_files
  return getattr(step, "origin", ClipOrigin.DOWNLOADED.value)


class BuildSplit(beam.PTransform):
  """A plan's ClipRequests -> shards, ledger and manifest of one split. Outputs the manifest.

  Args:
    plan: what to build.
    fetch_step: ClipRequests -> (FetchedClips, failure LedgerRecords); None
      when local files are the only source.
    local_files: records made from local files first, the rest handed on to
      the fetch step (or failed, without one).
  """

  def __init__(self, plan: BuildPlan, fetch_step: Optional[beam.PTransform],
               local_files: Optional[local_files_lib.RecordsFromLocalFiles] = None):
    super().__init__()
    if fetch_step is None and local_files is None:
      raise BuildError("a build needs a source: local files, a fetch step, or both")
    self._plan = plan
    self._fetch = fetch_step
    self._local = local_files

  def expand(self, pipeline):
    plan, split, build = self._plan, self._plan.split, self._plan.layout

    # The clips travel in a file, never in the job's graph.
    work = pipeline | "ReadClipRequests" >> work_list.ReadWorkList(build.work_list)
    requests = work.fetch
    made, failures, not_yet_in_ledger = [], [work.known_failures], [work.known_failures]
    if plan.resume and (plan.resume.written_shards or plan.resume.records_staged):
      recovered, requests = ((requests, work.written_shards, work.origins)
                             | "ResumeFromCheckpoint" >> resume.ResumeFromCheckpoint(
                                 plan.options.output_dir, shards_written=bool(plan.resume.written_shards),
                                 records_staged=plan.resume.records_staged,
                                 origin=single_origin(self._fetch, self._local)))
      made.append(recovered)
    # Each new record is staged where it is made: its bytes never travel through the runner.
    if self._local is not None:
      made_locally, requests, local_failures = requests | "FromLocalFiles" >> self._local.staging_in(build.staging_dir)
      made.append(made_locally)
      failures.append(local_failures)  # in the ledger already
    if self._fetch is not None:
      fetched, fetch_failures = requests | "Fetch" >> self._fetch
      encoded, feature_failures = fetched | "ExtractFeatures" >> features.ExtractFeatures(
          plan.options.decode, require_audio=plan.options.require_audio, staging_dir=build.staging_dir)
      made.append(encoded)
      failures += [fetch_failures, feature_failures]
      not_yet_in_ledger.append(feature_failures)
      if not getattr(self._fetch, "writes_ledger", False):  # e.g. EPIC's missing videos
        not_yet_in_ledger.append(fetch_failures)
    if plan.refresh and plan.refresh.carry_over:
      made.append(work.carry_over
                  | "CarryOverPreviousClips" >> refresh_lib.CarryOverPreviousClips(plan.refresh.previous_dir)
                  | "StageCarriedRecords" >> shards.StageClips(build.staging_dir))
    encoded = made[0] if len(made) == 1 else tuple(made) | "AllRecords" >> beam.Flatten()

    shard_infos = encoded | "WriteShards" >> shards.WriteShards(
        plan.options.output_dir, split.split, plan.num_shards, plan.options.formats)

    _ = (tuple(not_yet_in_ledger)
         | "FailuresNotYetInLedger" >> beam.Flatten()
         | "RecordFailuresInLedger" >> WriteToLedger(build.ledger_dir))
    failures = (tuple(failures)
                | "AllFailures" >> beam.Flatten()
                | "ClipAndReason" >> beam.Map(lambda r: (r.clip_id, f"{r.reason_class}/{r.reason}")))
    origins = encoded | "ClipAndOrigin" >> beam.Map(lambda c: (c.clip_id, c.origin))
    # Silence's constant log-mel would drag the mean down and the std to zero: moments come from real audio.
    moments = (encoded
               | "ClipsWithAudio" >> beam.Filter(lambda c: c.has_audio)
               | "LogMelMoments" >> beam.Map(lambda c: (c.melspec_sum, c.melspec_sum_squares, c.melspec_count)))
    without_audio = (encoded
                     | "ClipsWithoutAudio" >> beam.Filter(lambda c: not c.has_audio)
                     | "ClipIdWithoutAudio" >> beam.Map(lambda c: c.clip_id))
    return ({"shards": shard_infos, "failures": failures, "moments": moments, "without_audio": without_audio,
             "origins": origins}
            | "WriteManifest" >> manifest_lib.WriteManifest(
                plan.options.output_dir, dataset=split.dataset, split=split.split, label_map=split.label_map,
                requested=split.num_requested,
                build_options={**plan.options.shard_options, "num_shards": plan.num_shards},
                request_fingerprint=plan.requests.fingerprint(),
                extra_label_maps={m.name: m for m in split.other_label_maps},
                previous_build=plan.refresh.previous_dir if plan.refresh else None))


# ---------------------------------------------------------------------------
# Run and report.
# ---------------------------------------------------------------------------
def run_plan(plan: BuildPlan, fetch_step: Optional[beam.PTransform], options: PipelineOptions,
             progress: bool = True, local_files: Optional[local_files_lib.RecordsFromLocalFiles] = None) -> Manifest:
  """Runs the plan's pipeline to the end; returns the manifest it wrote."""
  if plan.refresh is not None:
    # The availability of carried-over clips, as last checked, stays in the new ledger.
    ledger_lib.write_records(plan.layout.ledger_dir, refresh_lib.carried_ledger_records(plan.refresh))
  # Shards are written straight into it; nothing else may have created it (EPIC builds write no downloads).
  files.makedirs(plan.options.output_dir)
  clip_requests.write_requests(plan.layout.requests, plan.requests)
  # With two sources a recovered record's origin is the ledger's; with one, the build's.
  origins = plan.resume.fetched_origins if plan.resume and single_origin(fetch_step, local_files) is None else ()
  work_list.write_work_list(plan.layout.work_list, fetch=plan.to_fetch, carry_over=plan.carry_over,
                            known_failures=plan.known_failures,
                            written_shards=plan.resume.written_shards if plan.resume else (), origins=origins)
  pipeline = beam.Pipeline(options=options)
  split = plan.split
  _ = pipeline | f"Build_{split.dataset}_{split.split}" >> BuildSplit(plan, fetch_step, local_files)

  logging.info("building %s/%s: %d clips requested, %d to fetch, into %s", split.dataset, split.split,
               split.num_requested, len(plan.to_fetch), plan.options.output_dir)
  interval = plan.options.progress_interval if (progress and is_local(options)) else 0
  with ProgressMonitor(plan.layout.ledger_dir, len(plan.to_fetch), interval):
    pipeline.run().wait_until_finish()
  remove_leftovers(plan, fetch_step)
  return read_manifest(plan.options.output_dir)


def remove_leftovers(plan: BuildPlan, fetch_step: beam.PTransform) -> None:
  """What killed earlier runs left in a build that is now finished: temporaries, staged records, partial downloads."""
  build = plan.layout
  files.delete(build.work_list)  # done with
  leftovers = files.match(files.join(build.root, "*" + files.INCOMPLETE_MARKER + "*"))
  leftovers += files.match(files.join(build.staging_dir, "*"))  # every record staged now is in a shard
  for path in leftovers:
    files.delete(path)
  if leftovers:
    logging.info("removed %d files left by an earlier run", len(leftovers))
  remove_partial_downloads = getattr(fetch_step, "remove_partial_downloads", None)
  if remove_partial_downloads is not None:
    remove_partial_downloads([r.clip_id for r in plan.to_fetch])


def report(plan: BuildPlan, manifest: Manifest) -> None:
  """Says what the build holds; for a refresh, writes and prints what changed."""
  if plan.finished is not None:
    print(manifest.summary_line() + " (already complete, unchanged)")
    return
  print(manifest.summary_line())
  if plan.refresh is not None:
    changes = refresh_lib.refresh_report(plan.refresh.previous_manifest, manifest)
    files.write_json(plan.layout.refresh_report, changes)
    print(refresh_lib.format_refresh_report(changes))


def run_build(split: SplitToBuild, fetch_step: Optional[beam.PTransform], args: argparse.Namespace,
              beam_args: Sequence[str], progress: bool = True,
              local_files: Optional[local_files_lib.RecordsFromLocalFiles] = None) -> Manifest:
  """Plans, runs and reports one split's build; returns its manifest.

  A finished build of the same clips and options in OUTPUT_DIR is left as it
  is (re-running changes nothing); an unfinished one is completed, reusing
  every download already made.

  Raises:
    BuildError: the build cannot start, or its downloads stopped after runs of
      failures pointing at this machine (its manifest is written: every clip
      is accounted for, none of those as gone).
    pipelines.local_files.LocalSourceError: the videos directory is not there.
  """
  options = pipeline_options(beam_args)
  # The launcher reads and writes the build's files with the pipeline's own options (credentials, project).
  FileSystems.set_options(options)
  if local_files is not None:
    local_files.check_videos_dir()
  plan = plan_build(split, BuildOptions.from_args(args))
  if plan.finished is not None:
    logging.info("%s already holds this finished build; nothing to do", plan.options.output_dir)
    manifest = plan.finished
  else:
    if plan.refresh is not None:
      refresh = plan.refresh
      logging.info("refresh from %s: %d to fetch, %d carried over, %d permanent failures kept",
                   refresh.previous_dir, len(refresh.to_fetch), len(refresh.carry_over),
                   len(refresh.carried_failures))
    manifest = run_plan(plan, fetch_step, options, progress=progress, local_files=local_files)
  report(plan, manifest)
  stopped = stopped_downloads(plan, manifest)
  if stopped:
    raise BuildError(stopped)
  return manifest


def stopped_downloads(plan: BuildPlan, manifest: Manifest) -> Optional[str]:
  """The line to end with when workers stopped fetching (pipelines.download.breaker), else None."""
  stopped = manifest.counts.failed_by_reason.get(Reason.SYSTEMIC.qualified, 0)
  if not stopped:
    return None
  ledger = ledger_lib.read_ledger(plan.layout.ledger_dir, missing_ok=True)
  triggers = [breaker.trigger_of(r.message) for r in ledger.records.values() if r.reason == Reason.SYSTEMIC.value]
  return breaker.stop_line(triggers, stopped, f"refresh: the same command with --output_dir NEW --previous_build "
                                              f"{plan.options.output_dir} fetches them")
