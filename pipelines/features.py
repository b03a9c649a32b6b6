"""Feature extraction: a fetched media file -> an encoded record of its clip.

One DoFn per clip: decode the span (25 fps JPEG frames, 16 kHz mono audio),
compute the log-mel, build the record and serialize it, and (in the builds)
stage it in a file. A clip whose media does not decode goes to the failure
output with its reason; it never stops the rest of the bundle.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, NamedTuple, Optional, Union

import apache_beam as beam

from pipelines import shards
from pipelines.download import ledger
from pipelines.sources.rows import ClipRequest
from shared import contract, files, records
from shared.failures import Reason
from shared.manifest import ClipOrigin
from shared.media import decode, errors

FAILED = "failed"  # the tag of every stage's failure output


@dataclasses.dataclass(frozen=True)
class FetchedClip:
  """A clip whose media is on a local (or mounted) path, ready to decode.

  The contract's clock counts from the source's first timestamp; the file's
  clock counts from media_clock_origin_s.

  Attributes:
    request: the clip asked for.
    media_path: the file holding it.
    media_start_s: where second `request.start_s` of the source lies on the
      file's clock (an EPIC video is the whole source and a downloaded
      section keeps the source's clock, so both give request.start_s).
    media_clock_origin_s: the presentation time in the file where its clock
      is 0; None: the file's first timestamp, right for a whole source (an
      EPIC video, a local full video), and for a local pre-cut clip, whose
      first timestamp is the span's start (media_start_s 0); 0 for a
      downloaded section, whose timestamps are the source's own.
    origin: where the media came from (shared.manifest.ClipOrigin), recorded
      in the manifest for the clip's record.
    passed_over: the ledger's passed_over entries of sources tried before
      this one (pipelines.download.ledger.passed_over_entry).
  """

  request: ClipRequest
  media_path: str
  media_start_s: float
  media_clock_origin_s: Optional[float] = None
  origin: str = ClipOrigin.DOWNLOADED.value
  passed_over: tuple[Mapping[str, str], ...] = ()


class FallThrough(NamedTuple):
  """A request an earlier source could not give, handed to the next one with why.

  Attributes:
    request: the clip.
    passed_over: the ledger's passed_over entries so far (may be empty: no
      local file was there at all).
  """

  request: ClipRequest
  passed_over: tuple[Mapping[str, str], ...] = ()


def as_fall_through(element: Union[ClipRequest, FallThrough]) -> FallThrough:
  """A fetch step's input, a bare request or one an earlier source handed on, as a FallThrough."""
  return element if isinstance(element, FallThrough) else FallThrough(element)


def failure_record(request: ClipRequest, reason: Reason, message: str, attempts: int = 0,
                   passed_over: tuple[Mapping[str, str], ...] = ()) -> ledger.LedgerRecord:
  """The ledger record of a requested clip that will not be in the shards.

  Failures travel through the pipeline as ledger records, the same type the
  downloader writes, so every drop reason lands in one ledger.
  """
  return ledger.LedgerRecord(
      clip_id=request.clip_id, source_id=request.source_id, status=ledger.STATUS_FAILED,
      reason_class=reason.failure_class.value, reason=reason.value, message=message, attempts=attempts,
      checked_at=ledger.utc_now_iso(), start_s=float(request.start_s), end_s=float(request.end_s),
      passed_over=tuple(passed_over))


def reason_for(error: Exception) -> Reason:
  """Why a clip whose decode raised `error` is not in the build."""
  if isinstance(error, (errors.NoVideoStreamError, errors.NoAudioStreamError)):
    return Reason.MISSING_STREAM
  if isinstance(error, errors.DecodeTimeoutError):
    return Reason.DECODE_TIMEOUT
  if isinstance(error, errors.UnreadableMediaError):
    return Reason.NOT_MEDIA
  if isinstance(error, errors.InvalidSpanError):
    return Reason.INVALID_SPAN
  return Reason.UNDECODABLE


def make_record(fetched: FetchedClip, decoded: decode.DecodedClip) -> records.ClipRecord:
  """The record of a decoded clip: features from the media, labels from the request."""
  request = fetched.request
  epic = request.epic
  return decoded.to_record(
      clip_id=request.clip_id, dataset=request.dataset, source_id=request.source_id, start_s=request.start_s,
      end_s=request.end_s, label_indices=request.label_indices, label_names=request.label_names,
      verb_index=epic.verb_class if epic else contract.NO_LABEL,
      noun_index=epic.noun_class if epic else contract.NO_LABEL,
      action_index=epic.action_index if epic else contract.NO_LABEL)


def encode_fetched(decoder: decode.ClipDecoder, fetched: FetchedClip, *, require_audio: bool = False,
                   require_video: bool = True):
  """Decodes a fetched clip's span and makes its record: (EncodedClip, DecodedClip).

  Raises:
    MediaError, InvalidSpanError, RecordError: the clip cannot be made from
      this media (reason_for says why).
  """
  file_start = fetched.media_start_s
  file_end = file_start + fetched.request.duration_s
  decoded = decoder.decode(fetched.media_path, file_start, file_end, fetched.media_clock_origin_s,
                           require_video=require_video)
  if require_audio and not decoded.has_audio:
    raise errors.NoAudioStreamError(fetched.media_path, "no audio stream, and the build requires audio")
  return shards.EncodedClip.from_record(make_record(fetched, decoded), origin=fetched.origin), decoded


class ExtractFeaturesFn(beam.DoFn):
  """FetchedClip -> EncodedClip (staged, with a staging_dir), or a failure LedgerRecord on the FAILED output."""

  def __init__(self, decode_options: decode.DecodeOptions, require_audio: bool = False,
               staging_dir: Optional[str] = None):
    self._decode_options = decode_options
    self._require_audio = require_audio
    self._staging_dir = staging_dir
    self._decoder: Optional[decode.ClipDecoder] = None
    self._counters = {}

  def setup(self):
    self._decoder = decode.ClipDecoder(self._decode_options)
    if self._staging_dir is not None:
      files.makedirs(self._staging_dir)

  def _count(self, name: str) -> None:
    if name not in self._counters:
      self._counters[name] = beam.metrics.Metrics.counter("features", name)
    self._counters[name].inc()

  def process(self, fetched: FetchedClip):
    request = fetched.request
    try:
      encoded, decoded = encode_fetched(self._decoder, fetched, require_audio=self._require_audio)
    except (errors.MediaError, errors.InvalidSpanError, records.RecordError) as error:
      reason = reason_for(error)
      self._count(f"failed_{reason.failure_class.value}_{reason.value}")
      logging.warning("clip %s: %s", request.clip_id, error)
      yield beam.pvalue.TaggedOutput(FAILED, failure_record(request, reason, str(error),
                                                            passed_over=fetched.passed_over))
      return
    if not decoded.has_audio:
      self._count("clips_without_audio")
    if decoded.padded_frames:
      self._count("clips_padded_past_media_end")
    self._count("clips_encoded")
    if self._staging_dir is not None:
      encoded = shards.stage_clip(self._staging_dir, encoded)
    yield encoded


class ExtractFeatures(beam.PTransform):
  """FetchedClips -> (EncodedClips, failure LedgerRecords).

  Args:
    decode_options: how clips are decoded.
    require_audio: a clip without an audio stream fails (invalid_media/missing_stream)
      instead of being stored with has_audio=0 and the log-mel of silence.
    staging_dir: where each record is written (as pipelines.shards.StageClips
      does) the moment it is made; the EncodedClips then name their files
      instead of holding the bytes. None: they hold them. Staged here, a
      record's megabytes never enter a PCollection: Beam pickles elements it
      samples for their size, and a step after this one might not be fused.
  """

  def __init__(self, decode_options: decode.DecodeOptions = decode.DecodeOptions(), require_audio: bool = False,
               staging_dir: Optional[str] = None):
    super().__init__()
    self._decode_options = decode_options
    self._require_audio = require_audio
    self._staging_dir = staging_dir

  def expand(self, fetched):
    outputs = fetched | "DecodeAndEncode" >> beam.ParDo(
        ExtractFeaturesFn(self._decode_options, self._require_audio, self._staging_dir)).with_outputs(
            FAILED, main="encoded")
    return outputs.encoded, outputs[FAILED]
