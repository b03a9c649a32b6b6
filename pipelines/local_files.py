"""Clips from files the user already has: --videos_dir and --video_pattern.

Many researchers hold the clips as files already: VGGSound's release of 10 s
clips (``YTID_000300.mp4``), copies of AudioSet's, full source videos
downloaded before. A pattern names where a clip's file lies under the videos
directory and, before the colon, what the file's time 0 is:

    clip:{ytid}_{start:06d}.{ext}     a pre-cut clip (VGGSound's release; the default)
    video:{ytid}.{ext}                the whole source video

* ``clip:`` the file is the clip itself, cut at the span's start: its time 0
  (its first timestamp) is source second s, so the span [s, e) is decoded as
  [0, e - s) of the file. ``YTID_000300.mp4`` holds source seconds 300-310.
* ``video:`` the file is the whole source: its time 0 is the video's, so the
  span is decoded as [s, e) of it, as a download and EPIC's videos are.

Either way the span lands on the same source seconds (the contract's clock:
seconds from the media's first timestamp). Taking one kind for the other
would shift every clip by its start without a word, so a pattern must say
which it is.

Fields: ``{ytid}`` (the YouTube id), ``{clip_id}``, ``{start}`` and ``{end}``
(the span's seconds; a number format as Python's: ``{start:06d}`` needs whole
seconds and does not match clips starting elsewhere, ``{start:.3f}``),
``{start_ms}`` and ``{end_ms}`` (whole milliseconds), and ``{ext}``: any of
MEDIA_EXTENSIONS, videos before audio-only files, in that order. Patterns
are tried in the order given, and every file found is tried in turn until one
gives the clip. A name may hold directories (``video:{ytid}/{ytid}.mp4``).

Per clip, :class:`RecordsFromLocalFiles` finds the files (one listing or
existence check per pattern), decodes the span where the file lies (a local
path, or gs:// read through a seekable file object: nothing is copied) and
makes the record, as feature extraction does after a download. A file that
does not decode or does not cover the span is passed over for the next file,
then for the next source (the download), and the ledger says why
(``passed_over``); with no source left the clip fails with that reason, or
``permanent/missing_video`` when no file was there. An audio-only file gives
a record with has_video 0 and black frames, unless the build requires video.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import string
from typing import Optional, Sequence

import apache_beam as beam

from pipelines import features, shards
from pipelines.download import ledger as ledger_lib
from pipelines.features import FAILED, FallThrough, FetchedClip
from pipelines.ledger_sink import BundleLedger
from pipelines.sources.rows import ClipRequest
from shared import files, records
from shared.failures import Reason
from shared.manifest import ClipOrigin
from shared.media import decode, errors

# The source name in --sources and in the ledger's passed_over entries.
SOURCE_NAME = "local"
# What {ext} may be, in the order tried: video containers, then audio-only files.
VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "mov", "m4v", "avi", "flv", "3gp", "mpg", "mpeg", "ts")
AUDIO_EXTENSIONS = ("flac", "wav", "m4a", "mp3", "ogg", "opus", "aac")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
# VGGSound's release: 10 s clips named by id and zero-padded start second.
DEFAULT_PATTERN = "clip:{ytid}_{start:06d}.{ext}"
# How much of the span a local file may fail to cover: what a download's
# verification allows (sources often end a fraction of a second early).
MAX_MISSING_S = 0.5

_NUMBER_FIELDS = ("start", "end", "start_ms", "end_ms")
_TEXT_FIELDS = ("ytid", "clip_id")
_EXT_FIELD = "ext"
FIELDS = _TEXT_FIELDS + _NUMBER_FIELDS + (_EXT_FIELD,)
# A field's value becomes part of a file name only if it is one plain name segment.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_GLOB_CHARACTERS = "*?[]"


class LocalSourceError(ValueError):
  """A local source that cannot be used as given: a bad --video_pattern, a --videos_dir that is not there."""


class TimeBase(str, enum.Enum):
  """What a file's time 0 is: the kind before a pattern's colon.

  Attributes:
    meaning: what the kind says about its files.
  """

  def __new__(cls, value: str, meaning: str):
    member = str.__new__(cls, value)
    member._value_ = value
    member.meaning = meaning
    return member

  CLIP = ("clip", "the file is the clip, cut at the span's start: its time 0 is source second s")
  VIDEO = ("video", "the file is the whole source video: its time 0 is the video's")


@dataclasses.dataclass(frozen=True)
class VideoPattern:
  """Where a clip's file lies under the videos directory, and its time base.

  Attributes:
    text: the pattern as given, e.g. "clip:{ytid}_{start:06d}.{ext}".
    time_base: what the file's time 0 is.
    template: the file name template, relative to the videos directory.
  """

  text: str
  time_base: TimeBase
  template: str

  @classmethod
  def parse(cls, text: str) -> "VideoPattern":
    """Reads KIND:TEMPLATE.

    Raises:
      LocalSourceError: no or an unknown kind, an unknown field, a field
        format that does not fit, no field naming the clip's source, or a
        name that is not a plain relative path.
    """
    kinds = ", ".join(f"{kind.value}: ({kind.meaning})" for kind in TimeBase)
    kind, colon, template = text.partition(":")
    if not colon or kind not in {k.value for k in TimeBase}:
      raise LocalSourceError(f"--video_pattern {text!r} must start with its kind, one of {kinds}")
    pattern = cls(text=text, time_base=TimeBase(kind), template=template)
    pattern._check()
    return pattern

  def _check(self) -> None:
    def refuse(problem: str):
      raise LocalSourceError(f"--video_pattern {self.text!r}: {problem}")

    try:
      parts = list(string.Formatter().parse(self.template))
    except ValueError as error:
      refuse(f"not a pattern ({error}); write a literal brace as {{{{ or }}}}")
    named = []
    for literal, field, spec, conversion in parts:
      if any(character in literal for character in _GLOB_CHARACTERS):
        refuse(f"{literal!r} holds one of {_GLOB_CHARACTERS!r}, which file matching would read as wildcards")
      if field is None:
        continue
      if field not in FIELDS:
        refuse(f"unknown field {{{field}}}; the fields are {', '.join('{' + f + '}' for f in FIELDS)}")
      if conversion:
        refuse(f"{{{field}!{conversion}}}: no conversions, only a number format such as {{start:06d}}")
      if spec and field not in _NUMBER_FIELDS:
        refuse(f"{{{field}:{spec}}}: only {', '.join(_NUMBER_FIELDS)} take a format")
      if spec:
        try:
          format(1.5, spec) if _is_float_format(spec) else format(1, spec)
        except ValueError as error:
          refuse(f"{{{field}:{spec}}} is not a number format ({error})")
      named.append(field)
    if not set(named) & set(_TEXT_FIELDS):
      refuse("names no clip: it needs {ytid} or {clip_id}")
    if named.count(_EXT_FIELD) > 1:
      refuse("{ext} appears more than once")
    segments = self.template.split("/")
    if any(segment in ("", ".", "..") for segment in segments) or "\\" in self.template:  # "" also: a leading "/"
      refuse("a file name relative to --videos_dir, without empty, '.' or '..' parts")

  @property
  def has_ext(self) -> bool:
    return any(field == _EXT_FIELD for _, field, _, _ in string.Formatter().parse(self.template))

  def name_for(self, request: ClipRequest) -> Optional[tuple[str, str]]:
    """(the name before {ext}, the name after it) for this clip; None when the pattern cannot name it.

    Without {ext} the second part is "" and the first is the whole name. A
    pattern cannot name a clip whose start is not whole seconds under an
    integer format, or whose id would not be one plain name segment.
    """
    values = {"ytid": request.source_id, "clip_id": request.clip_id}
    if not all(_SAFE_VALUE.fullmatch(value or "") for value in values.values()):
      return None
    numbers = {"start": request.start_s, "end": request.end_s, "start_ms": round(request.start_s * 1000),
               "end_ms": round(request.end_s * 1000)}
    before, after, seen_ext = [], [], False
    for literal, field, spec, _ in string.Formatter().parse(self.template):
      out = after if seen_ext else before
      out.append(literal)
      if field is None:
        continue
      if field == _EXT_FIELD:
        seen_ext = True
        continue
      if field in values:
        out.append(values[field])
        continue
      value = numbers[field]
      if _is_float_format(spec):
        out.append(format(float(value), spec))
      elif float(value).is_integer():
        out.append(format(int(value), spec))
      else:
        return None  # an integer name for a start in the middle of a second: not this clip's file
    return "".join(before), "".join(after)

  def file_start_s(self, request: ClipRequest) -> float:
    """Where the span starts on the file's own clock (from its first timestamp)."""
    return 0.0 if self.time_base is TimeBase.CLIP else float(request.start_s)


def _is_float_format(spec: str) -> bool:
  return bool(spec) and spec[-1] in "eEfFgG%"


def parse_patterns(texts: Sequence[str]) -> tuple[VideoPattern, ...]:
  """--video_pattern values in order (the default when none is given)."""
  return tuple(VideoPattern.parse(text) for text in (texts or [DEFAULT_PATTERN]))


def check_videos_dir(videos_dir: str) -> str:
  """The videos directory, or LocalSourceError when it is not there (on gs://: when nothing lies under it)."""
  if not files.is_directory(videos_dir):
    raise LocalSourceError(f"--videos_dir {videos_dir} is not a directory"
                           + (" holding any file" if files.is_remote(videos_dir) else ""))
  return videos_dir


@dataclasses.dataclass(frozen=True)
class LocalFile:
  """A file under the videos directory that may hold a clip.

  Attributes:
    path: the file (local path or gs://).
    num_bytes: its size.
    pattern: the pattern that named it (and so its time base).
  """

  path: str
  num_bytes: int
  pattern: VideoPattern

  def fetched(self, request: ClipRequest, passed_over=()) -> FetchedClip:
    """The clip on this file's clock: its own first timestamp, the span where the time base puts it."""
    return FetchedClip(request=request, media_path=self.path, media_start_s=self.pattern.file_start_s(request),
                       media_clock_origin_s=None, origin=ClipOrigin.LOCAL.value, passed_over=tuple(passed_over))


@dataclasses.dataclass(frozen=True)
class LocalFileFinder:
  """Finds the files that may hold a clip, in the order they are tried.

  Attributes:
    videos_dir: the directory the patterns are relative to (local or gs://).
    patterns: tried in order.
  """

  videos_dir: str
  patterns: tuple[VideoPattern, ...]

  def find(self, request: ClipRequest) -> list[LocalFile]:
    found = []
    for pattern in self.patterns:
      name = pattern.name_for(request)
      if name is None:
        continue
      before, after = name
      if not pattern.has_ext:
        found += [LocalFile(path, size, pattern) for path, size in files.match_sizes(files.join(self.videos_dir,
                                                                                               before))]
        continue
      # One listing for every extension; the order is MEDIA_EXTENSIONS', whatever the listing's.
      base = files.join(self.videos_dir, before)
      exact = re.compile(re.escape(base) + r"([A-Za-z0-9]+)" + re.escape(after))
      by_extension = []
      for path, size in files.match_sizes(base + "*" + after):
        matched = exact.fullmatch(path)
        if matched and matched.group(1).lower() in MEDIA_EXTENSIONS:
          by_extension.append((MEDIA_EXTENSIONS.index(matched.group(1).lower()), path, size))
      found += [LocalFile(path, size, pattern) for _, path, size in sorted(by_extension)]
    return found


HANDED_ON = "handed_on"  # the tag of requests no local file gave, for the next source


class _SpanNotCovered(errors.MediaError):
  """A local file decodes but holds too little of the span."""


class _RecordFromLocalFileFn(beam.DoFn):
  """A request -> its record from the first local file that gives it, or the request handed on (or failed)."""

  def __init__(self, finder: LocalFileFinder, decode_options: decode.DecodeOptions, ledger_dir: str, *,
               require_audio: bool, require_video: bool, hand_on: bool, staging_dir: Optional[str]):
    self._finder = finder
    self._decode_options = decode_options
    self._ledger_dir = ledger_dir
    self._require_audio = require_audio
    self._require_video = require_video
    self._hand_on = hand_on
    self._staging_dir = staging_dir
    self._decoder: Optional[decode.ClipDecoder] = None
    self._ledger: Optional[BundleLedger] = None

  def setup(self):
    self._decoder = decode.ClipDecoder(self._decode_options)
    self._ledger = BundleLedger(self._ledger_dir)
    if self._staging_dir is not None:
      files.makedirs(self._staging_dir)

  def finish_bundle(self):
    self._ledger.close()

  def _count(self, name: str) -> None:
    counters = self.__dict__.setdefault("_counters", {})
    if name not in counters:
      counters[name] = beam.metrics.Metrics.counter(SOURCE_NAME, name)
    counters[name].inc()

  def process(self, request: ClipRequest):
    passed_over, last_rejection = [], None
    candidates = self._finder.find(request)
    for local in candidates:
      try:
        encoded = self._make(local.fetched(request))
      except (errors.MediaError, errors.InvalidSpanError, records.RecordError) as error:
        reason = Reason.SPAN_NOT_COVERED if isinstance(error, _SpanNotCovered) else features.reason_for(error)
        message = str(error) if isinstance(error, errors.MediaError) else f"{local.path}: {error}"
        last_rejection = reason, message
        self._count(f"passed_over_{reason.failure_class.value}_{reason.value}")
        logging.info("clip %s: local file passed over: %s", request.clip_id, message)
        passed_over.append(ledger_lib.passed_over_entry(SOURCE_NAME, reason.failure_class.value, reason.value, message))
        continue
      if self._staging_dir is not None:  # staged before the ledger says it is made
        encoded = shards.stage_clip(self._staging_dir, encoded)
      self._ledger.writer.append(ledger_lib.LedgerRecord(
          clip_id=request.clip_id, source_id=request.source_id, status=ledger_lib.STATUS_OK, reason_class=None,
          reason=None, message="", attempts=0, checked_at=ledger_lib.utc_now_iso(), num_bytes=local.num_bytes,
          start_s=float(request.start_s), end_s=float(request.end_s), origin=ClipOrigin.LOCAL.value,
          media_file=local.path, passed_over=tuple(passed_over)))
      self._count("made_from_local_file")
      yield encoded
      return
    if not candidates:
      self._count("no_local_file")
    if self._hand_on:
      yield beam.pvalue.TaggedOutput(HANDED_ON, FallThrough(request, tuple(passed_over)))
      return
    if last_rejection is None:
      names = ", ".join(p.text for p in self._finder.patterns)
      last_rejection = Reason.MISSING_VIDEO, f"no file under {self._finder.videos_dir} matches {names}"
    else:
      passed_over.pop()  # the last file's rejection is the failure itself
    reason, message = last_rejection
    self._count(f"failed_{reason.failure_class.value}_{reason.value}")
    record = features.failure_record(request, reason, message, passed_over=tuple(passed_over))
    self._ledger.writer.append(record)
    yield beam.pvalue.TaggedOutput(FAILED, record)

  def _make(self, fetched: FetchedClip):
    encoded, decoded = features.encode_fetched(self._decoder, fetched, require_audio=self._require_audio,
                                               require_video=self._require_video)
    missing = fetched.request.duration_s - decoded.decoded_duration_s
    if missing > MAX_MISSING_S:
      raise _SpanNotCovered(fetched.media_path, f"covers {decoded.decoded_duration_s:.3f} s of the "
                            f"{fetched.request.duration_s:.3f} s span (allowed short by {MAX_MISSING_S} s)")
    return encoded


class RecordsFromLocalFiles(beam.PTransform):
  """ClipRequests -> (EncodedClips, requests for the next source, failure LedgerRecords).

  Every result is in the ledger when it leaves (writes_ledger): records made
  from local files (origin local, the file, its size, what was passed over)
  and, when no source follows (hand_on False), the failures.

  Args:
    finder: where to look.
    decode_options: how clips are decoded (as feature extraction's).
    ledger_dir: the build's ledger.
    require_audio: a file without audio is passed over (missing_stream).
    require_video: an audio-only file is passed over instead of giving a
      has_video 0 record.
    hand_on: a clip no local file gives goes to the next source (as a
      pipelines.features.FallThrough) instead of failing.
    staging_dir: where each record is staged the moment it is made (as
      features.ExtractFeatures does; see staging_in); None: the EncodedClips
      hold the bytes.
  """

  writes_ledger = True
  origin = ClipOrigin.LOCAL.value

  def __init__(self, finder: LocalFileFinder, decode_options: decode.DecodeOptions, ledger_dir: str, *,
               require_audio: bool = False, require_video: bool = False, hand_on: bool = True,
               staging_dir: Optional[str] = None):
    super().__init__()
    self._finder = finder
    self._settings = dict(decode_options=decode_options, ledger_dir=ledger_dir, require_audio=require_audio,
                          require_video=require_video, hand_on=hand_on)
    self._fn = _RecordFromLocalFileFn(finder, staging_dir=staging_dir, **self._settings)

  def staging_in(self, staging_dir: str) -> "RecordsFromLocalFiles":
    """The same step, staging each record under `staging_dir` (a build's) where it is made."""
    return RecordsFromLocalFiles(self._finder, staging_dir=staging_dir, **self._settings)

  def check_videos_dir(self) -> None:
    """Raises LocalSourceError when the videos directory is not there (before a build starts)."""
    check_videos_dir(self._finder.videos_dir)

  def expand(self, requests):
    outputs = (requests
               | "SpreadOverWorkers" >> beam.Reshuffle()
               | "DecodeLocalFile" >> beam.ParDo(self._fn).with_outputs(HANDED_ON, FAILED, main="encoded"))
    return outputs.encoded, outputs[HANDED_ON], outputs[FAILED]
