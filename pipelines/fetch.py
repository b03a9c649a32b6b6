"""Fetching: a ClipRequest -> a local media file holding its span, or a failure.

Two sources, one output shape (:class:`pipelines.features.FetchedClip`):

* :class:`FetchFromYouTube` downloads each clip's section with yt-dlp
  (pipelines.download); a clip already downloaded and verified in the media
  directory is reused, so a re-run never fetches it twice. Every result goes
  to the availability ledger as soon as it is known. Its input may also be
  requests a local source handed on (pipelines.features.FallThrough): their
  ledger records say why the local files were passed over.
* :class:`OpenLocalVideos` points each EPIC-KITCHENS narration at its local
  ``PXX/videos/PXX_YY.MP4``; nothing is copied.

(The YouTube builds' own local files, --videos_dir, are pipelines.local_files:
decoded where they lie, before anything is downloaded.)

Failures leave on the FAILED output as ledger records; one bad clip never
stops its bundle. A fetch transform's ``writes_ledger`` says whether those
records are in the ledger already; where not, the build writes them; its
``origin`` is the shared.manifest.ClipOrigin of the clips it fetches.
"""

from __future__ import annotations

import logging
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.download import verify
from pipelines.download import breaker
from pipelines.download.downloader import ClipDownloader, DownloadConfig, remove_partial_downloads
from pipelines.download.ledger import LedgerRecord
from pipelines.features import FAILED, FallThrough, FetchedClip, as_fall_through, failure_record
from pipelines.ledger_sink import BundleLedger
from pipelines.sources import epic_kitchens
from pipelines.sources.rows import ClipRequest
from shared.failures import Reason
from shared.manifest import ClipOrigin


class _CountingDoFn(beam.DoFn):
  """A DoFn with one Beam counter per outcome, created on first use."""

  namespace = "fetch"

  def _count(self, name: str) -> None:
    counters = self.__dict__.setdefault("_counters", {})
    if name not in counters:
      counters[name] = beam.metrics.Metrics.counter(self.namespace, name)
    counters[name].inc()


class _DownloadFn(_CountingDoFn):
  """Downloads one clip's section; writes the result to the ledger at once."""

  def __init__(self, config: DownloadConfig, ledger_dir: str, verify_by_decoding: bool):
    self._config = config
    self._ledger_dir = ledger_dir
    self._verify_by_decoding = verify_by_decoding
    self._downloader: Optional[ClipDownloader] = None
    self._ledger: Optional[BundleLedger] = None

  def setup(self):
    verifier = verify.check_media if self._verify_by_decoding else verify.check_packets
    self._downloader = ClipDownloader(self._config, verifier=verifier)
    self._ledger = BundleLedger(self._ledger_dir)

  def finish_bundle(self):
    self._ledger.close()

  def process(self, element: ClipRequest | FallThrough):
    request, passed_over = as_fall_through(element)
    result = self._downloader.download(request)
    record = LedgerRecord.from_result(result).with_passed_over(passed_over)
    self._ledger.writer.append(record)
    if not result.ok:
      self._count(f"failed_{result.failure_class.value}_{result.reason.value}")
      logging.info("clip %s not fetched: %s/%s", request.clip_id, record.reason_class, record.reason)
      yield beam.pvalue.TaggedOutput(FAILED, record)
      return
    self._count("reused_from_media_dir" if result.attempts == 0 else "downloaded")
    # The section keeps the source's clock: the span as asked, from presentation time 0.
    yield FetchedClip(request=request, media_path=result.path, media_start_s=request.start_s,
                      media_clock_origin_s=result.clock_origin_s, origin=ClipOrigin.DOWNLOADED.value,
                      passed_over=passed_over)


class FetchFromYouTube(beam.PTransform):
  """ClipRequests -> (FetchedClips, failure LedgerRecords), downloading with yt-dlp.

  Each download is verified before it counts. By default from its packets'
  timestamps (an empty, cut-short or non-media file, a missing stream, a span
  not covered): feature extraction decodes every clip right after and records
  data that does not decode, so decoding twice would only double the cost.
  `verify_by_decoding` decodes instead, as the stand-alone downloader does.
  """

  writes_ledger = True  # every result is in the ledger already; the build must not add its failures again
  origin = ClipOrigin.DOWNLOADED.value

  def __init__(self, config: DownloadConfig, ledger_dir: str, verify_by_decoding: bool = False):
    super().__init__()
    self._config = config
    self._ledger_dir = ledger_dir
    self._verify_by_decoding = verify_by_decoding

  def remove_partial_downloads(self, clip_ids) -> None:
    """After the build: what killed earlier runs left half-downloaded for these clips."""
    removed = remove_partial_downloads(self._config.output_dir, clip_ids)
    if removed:
      logging.info("removed %d partial downloads left by an earlier run", removed)

  def expand(self, requests):
    outputs = (requests
               # Downloads are slow and uneven: spread them over workers
               # instead of leaving them fused to the step that made them.
               | "SpreadOverWorkers" >> beam.Reshuffle()
               | "DownloadSection" >> beam.ParDo(
                   _DownloadFn(self._config, self._ledger_dir, self._verify_by_decoding)).with_outputs(
                       FAILED, main="fetched"))
    # Once any worker stopped, no suspect failure of this build is trusted as the clip's own.
    stopped = (outputs[FAILED]
               | "StoppedWorkersClips" >> beam.Filter(lambda r: r.reason == Reason.SYSTEMIC.value)
               | "CountStopped" >> beam.combiners.Count.Globally())
    failures = outputs[FAILED] | "DistrustSuspectFailures" >> beam.ParDo(
        _DistrustSuspectFailuresFn(self._ledger_dir), beam.pvalue.AsSingleton(stopped))
    return outputs.fetched, failures


class _DistrustSuspectFailuresFn(_CountingDoFn):
  """Re-records a suspect failure (pipelines.download.breaker) as transient/systemic when a worker stopped."""

  def __init__(self, ledger_dir: str):
    self._ledger_dir = ledger_dir
    self._ledger: Optional[BundleLedger] = None

  def setup(self):
    self._ledger = BundleLedger(self._ledger_dir)

  def finish_bundle(self):
    self._ledger.close()

  def process(self, record: LedgerRecord, stopped: int):
    if not stopped or not breaker.is_suspect(record.reason):
      yield record
      return
    self._count(f"distrusted_{record.reason_class}_{record.reason}")
    record = breaker.distrusted(record, stopped)
    self._ledger.writer.append(record)
    yield record


class _OpenLocalVideoFn(_CountingDoFn):
  """Points an EPIC-KITCHENS narration at its video, or fails it if the video is missing."""

  def __init__(self, videos_dir: str):
    self._videos_dir = videos_dir

  def process(self, request: ClipRequest):
    path = epic_kitchens.epic_video_path(self._videos_dir, request.source_id)
    if not FileSystems.exists(path):
      self._count(f"failed_{Reason.MISSING_VIDEO.value}")
      yield beam.pvalue.TaggedOutput(FAILED, failure_record(
          request, Reason.MISSING_VIDEO, f"video {request.source_id} not found at {path}"))
      return
    self._count("opened")
    yield FetchedClip(request=request, media_path=path, media_start_s=request.start_s, origin=ClipOrigin.LOCAL.value)


class OpenLocalVideos(beam.PTransform):
  """ClipRequests -> (FetchedClips, failure LedgerRecords) from a local videos directory."""

  writes_ledger = False  # the build records its failures (missing videos) in the ledger
  origin = ClipOrigin.LOCAL.value

  def __init__(self, videos_dir: str):
    super().__init__()
    self._videos_dir = videos_dir

  def expand(self, requests):
    outputs = (requests
               | "SpreadOverWorkers" >> beam.Reshuffle()
               | "LocateVideo" >> beam.ParDo(_OpenLocalVideoFn(self._videos_dir)).with_outputs(
                   FAILED, main="fetched"))
    return outputs.fetched, outputs[FAILED]
