"""Does a downloaded file decode, and does it cover the span?

yt-dlp reports success for files that are empty (a server that ignores Range),
cut short (a connection dropped and ffmpeg exited 0) or not media at all, so
every download is decoded before it counts. This module is the one place that
does it, with PyAV directly, so it can later be swapped for
``shared.media.decode`` without touching the downloader.

Times here are presentation times in the file, in seconds. The downloader has
ffmpeg keep the source's clock (see pipelines.download.downloader), so they
equal seconds of the source from its first timestamp: the span is checked as
given. The file's own first timestamp is reported as its origin.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Protocol

import av

from shared.failures import Reason


class InvalidMediaError(Exception):
  """A downloaded file is not usable media for its span.

  Attributes:
    path: the file.
    reason: NOT_MEDIA, UNDECODABLE, SPAN_NOT_COVERED or MISSING_STREAM.
    detail: what was found, in words.
  """

  def __init__(self, path: str, reason: Reason, detail: str):
    super().__init__(f"{os.path.basename(path)}: {detail}")
    self.path = path
    self.reason = reason
    self.detail = detail

  def __reduce__(self):
    return type(self), (self.path, self.reason, self.detail)


@dataclasses.dataclass(frozen=True)
class StreamCoverage:
  """The time a stream's decoded frames cover.

  Attributes:
    first_s: presentation time of the first decoded frame (file clock, seconds).
    end_s: presentation time where the last decoded frame ends.
    frames: decoded frames (video) or audio frames.
  """

  first_s: float
  end_s: float
  frames: int

  def missing_from(self, start_s: float, end_s: float) -> float:
    """Seconds of [start_s, end_s] this coverage does not reach."""
    covered = max(0.0, min(end_s, self.end_s) - max(start_s, self.first_s))
    return (end_s - start_s) - covered


@dataclasses.dataclass(frozen=True)
class MediaCheck:
  """What verification found in a downloaded file.

  Attributes:
    origin_s: the file's first timestamp: its container start time (the
      earliest presentation of any stream) in presentation seconds; for a
      section that keeps its source's clock, where the section starts in the
      source. Decoders that measure time from the container start find
      presentation time t at t - origin_s.
    video: coverage of the first video stream, None without one.
    audio: coverage of the first audio stream, None without one.
    width: video frame width, None without video.
    height: video frame height, None without video.
    decode_errors: packets that failed to decode (after the span is fine).
  """

  origin_s: float
  video: Optional[StreamCoverage]
  audio: Optional[StreamCoverage]
  width: Optional[int]
  height: Optional[int]
  decode_errors: int


class MediaVerifier(Protocol):
  """The verification step's signature (check_media's): the downloader's one swap point."""

  def __call__(self, path: str, span_start_s: float, span_end_s: float, require_video: bool = True,
               require_audio: bool = False, max_missing_s: float = 0.5) -> MediaCheck:
    ...


def check_media(path: str, span_start_s: float, span_end_s: float, require_video: bool = True,
                require_audio: bool = False, max_missing_s: float = 0.5, decode_frames: bool = True) -> MediaCheck:
  """Decodes `path` fully and checks that it covers [span_start_s, span_end_s].

  With decode_frames=False it reads the packets' timestamps without decoding
  them (see check_packets).

  Args:
    path: the downloaded file.
    span_start_s: span start, presentation seconds of the file.
    span_end_s: span end.
    require_video: a missing video stream is MISSING_STREAM.
    require_audio: a missing audio stream is MISSING_STREAM (many YouTube
      videos have none; the contract records has_audio instead).
    max_missing_s: how much of the span each present stream may fail to cover
      (sources often end a fraction of a second before the annotated end).

  Raises:
    InvalidMediaError: empty, unreadable, undecodable, a required stream
      missing, or the span not covered.
  """
  if not os.path.isfile(path) or os.path.getsize(path) == 0:
    raise InvalidMediaError(path, Reason.NOT_MEDIA, "the file is missing or empty")
  try:
    container = av.open(path)
  except (av.error.FFmpegError, OSError, ValueError) as error:
    raise InvalidMediaError(path, Reason.NOT_MEDIA, f"not readable media: {error}") from None
  with container:
    origin = (container.start_time or 0) / av.time_base
    video_stream = container.streams.video[0] if container.streams.video else None
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    if video_stream is None and require_video:
      raise InvalidMediaError(path, Reason.MISSING_STREAM, "no video stream")
    if audio_stream is None and require_audio:
      raise InvalidMediaError(path, Reason.MISSING_STREAM, "no audio stream")
    if video_stream is None and audio_stream is None:
      raise InvalidMediaError(path, Reason.MISSING_STREAM, "neither video nor audio")
    streams = [s for s in (video_stream, audio_stream) if s is not None]
    if decode_frames:
      for stream in streams:
        stream.thread_type = "AUTO"
    spans = {stream.index: [None, None, 0] for stream in streams}  # first, end, frames
    decode_errors = 0
    last_error = None
    try:
      # Seconds per tick and per video frame of each stream, as floats: exact
      # rationals made per packet cost a packets-only check two thirds of its time.
      ticks = {stream.index: _PacketClock(stream) for stream in streams}
      for packet in container.demux(streams):
        if decode_frames:
          try:
            timed = [(frame.time, _frame_duration(frame, packet.stream)) for frame in packet.decode()]
          except av.error.FFmpegError:
            decode_errors += 1
            continue
        elif packet.pts is not None and packet.size:  # the demuxer's flush packet has neither
          timed = [ticks[packet.stream.index].time_and_duration(packet)]
        else:
          timed = []
        for time, duration in timed:
          if time is None:
            continue
          span = spans[packet.stream.index]
          span[0] = time if span[0] is None else min(span[0], time)
          span[1] = max(span[1] or time, time + duration)
          span[2] += 1
    except av.error.FFmpegError as error:
      # Demuxing stops at the damage; what decoded so far is judged below.
      decode_errors += 1
      last_error = str(error)
    except Exception as error:  # noqa: BLE001 (media that breaks the decoder is this clip's problem)
      raise InvalidMediaError(path, Reason.UNDECODABLE, f"decoding failed: {type(error).__name__}: {error}") from None
    width = video_stream.codec_context.width if video_stream is not None else None
    height = video_stream.codec_context.height if video_stream is not None else None
    # Stream objects are unusable once the container closes: keep plain values.
    present = [(stream.type, spans[stream.index]) for stream in streams]

  coverages = {kind: (StreamCoverage(first_s=float(first), end_s=float(end), frames=count) if count else None)
               for kind, (first, end, count) in present}
  check = MediaCheck(origin_s=float(origin), video=coverages.get("video"), audio=coverages.get("audio"),
                     width=width, height=height, decode_errors=decode_errors)
  for kind, found in coverages.items():
    if found is None:
      reason = Reason.UNDECODABLE if decode_errors else Reason.SPAN_NOT_COVERED
      raise InvalidMediaError(path, reason, f"no {kind} frame decoded"
                              + (f" ({decode_errors} decode errors{': ' + last_error if last_error else ''})"
                                 if decode_errors else ""))
    missing = found.missing_from(span_start_s, span_end_s)
    if missing > max_missing_s:
      reason = Reason.UNDECODABLE if decode_errors else Reason.SPAN_NOT_COVERED
      raise InvalidMediaError(
          path, reason,
          f"{kind} covers {found.first_s:.3f}-{found.end_s:.3f} s, missing {missing:.3f} s of the span "
          f"{span_start_s:.3f}-{span_end_s:.3f} s (allowed {max_missing_s:.3f})"
          + (f"; {decode_errors} decode errors" if decode_errors else ""))
  return check


def check_packets(path: str, span_start_s: float, span_end_s: float, require_video: bool = True,
                  require_audio: bool = False, max_missing_s: float = 0.5) -> MediaCheck:
  """check_media from the packets' timestamps alone, without decoding.

  Catches what a download most often gets wrong (an empty, cut-short or
  non-media file, a missing stream, a span not covered) for a fraction of the
  cost. It does not catch data that is there but does not decode: use it where
  the next step decodes every clip anyway and records such failures, as the
  Beam builds' feature extraction does.
  """
  return check_media(path, span_start_s, span_end_s, require_video=require_video, require_audio=require_audio,
                     max_missing_s=max_missing_s, decode_frames=False)


class _PacketClock:
  """A demuxed stream's packets' times in seconds (a demuxer gives packets its stream's time base)."""

  def __init__(self, stream):
    self._seconds_per_tick = float(stream.time_base)
    # Where the container does not say how long a packet lasts: a video frame at the stream's rate, else 0.
    rate = (stream.average_rate or stream.guessed_rate) if stream.type == "video" else None
    self._default_duration = float(1 / rate) if rate else 0.0

  def time_and_duration(self, packet) -> tuple[float, float]:
    duration = packet.duration * self._seconds_per_tick if packet.duration else self._default_duration
    return packet.pts * self._seconds_per_tick, duration


def _frame_duration(frame, stream) -> float:
  """How long a decoded frame lasts, in seconds."""
  if isinstance(frame, av.AudioFrame):
    return frame.samples / frame.sample_rate if frame.sample_rate else 0.0
  duration = getattr(frame, "duration", None)
  if duration and frame.time_base is not None:
    return float(duration * frame.time_base)
  rate = stream.average_rate or stream.guessed_rate
  return float(1 / rate) if rate else 0.0
