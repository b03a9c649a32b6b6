"""Decodes one span of a media file into the contract's frames and audio.

:func:`decode_clip` (or :class:`ClipDecoder`, which holds the options) takes any
file FFmpeg reads and a span [start_s, end_s) in seconds on the span's clock,
and returns:

* video: one JPEG per contract.VIDEO_FPS sample time t_k = start_s + k / fps,
  k < contract.num_frames(end_s - start_s). Frame k is the source frame whose
  presentation interval [pts_n, pts_n+1) contains t_k, so variable frame rates
  and non-zero start times need no special case. Frames are resized so their
  short side is contract.FRAME_SHORT_SIDE (aspect kept, see
  contract.resized_frame_size) and JPEG-encoded at contract.JPEG_QUALITY;
* audio: contract.num_audio_samples(end_s - start_s) samples of 16 kHz mono
  float32, sample 0 at start_s, placed by the decoded frames' timestamps to
  within half a sample (so encoder priming, AAC end padding and late-starting
  streams land where they belong), silence where the source has none. Stereo
  and surround are averaged to mono.

The span's clock. Second 0 is, by default, the media's first timestamp: the
container's start_time, FFmpeg's earliest presentation of any stream, where
players and ``ffmpeg -ss`` count from too (an MPEG-PS file made by FFmpeg
starts at 0.54 s, an MP4 with an edit list wherever the edit says). That is
the contract's clock for a whole source file (an EPIC-KITCHENS video). A file
whose timestamps already count from another zero passes it as
``clock_origin_s``: a section downloaded by pipelines.download keeps its
source's clock in its timestamps, so its origin is presentation time 0, not
the section's own first timestamp.

Memory does not grow with the span beyond its output: each frame is resized
and JPEG-encoded as soon as its sample time is known and the decoded frame
dropped (at most one is held, 6 MB at 1080p), sample times are computed as
they are needed, and :meth:`ClipDecoder.stream` hands the JPEGs out one by one
as they are made, for callers that need not keep them all.

It seeks to the keyframe before the span and decodes only up to its end, so a
few seconds out of an hour of EPIC-KITCHENS costs a few seconds of decoding.
Time comparisons use exact rationals (the streams' own time bases), so a
sample time that falls exactly on a frame boundary (25 fps sampling of 50 fps)
picks the frame that starts there.

Failures are typed (:mod:`shared.media.errors`): a missing audio stream is not
one (silence, has_audio False); a span past either end of the media is padded
(the nearest frame repeated, zero audio) and says so in decoded_duration_s and
padded_frames. A missing video stream is one unless the caller allows audio
alone (``require_video=False``): then the frames are black squares
(contract.blank_frame_size), one per sample time as ever, and has_video is False.

Files on an object store (``gs://``) are read through shared.files, a seekable
file object that FFmpeg seeks in like a local file: only what the span needs
(and the container's index) is fetched, never the whole video. An http(s)
URL goes to FFmpeg as it is: FFmpeg reads it itself, seeking with Range
requests (Beam has no file system for it).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fractions
import functools
import io
import math
import numbers
import time
from typing import Callable, Iterator, Optional, Sequence

import av
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter
from PIL import Image

from shared import contract, files, records
from shared.media import errors, logmel

Fraction = fractions.Fraction

# Sample times and frame times are compared with this slack: it absorbs the
# float representation of the caller's start (ulp of 3600 s is ~5e-13) and is
# far below any container's tick (1/90000 s).
_TIME_EPSILON = Fraction(1, 10**9)
# FFmpeg expresses container start times in microseconds.
_AV_TIME_BASE = Fraction(1, av.time_base)
# A resampled audio frame whose timestamp disagrees with the running sample
# count by more than this is a real gap or overlap in the source: re-anchor to
# its timestamp. Smaller differences are timestamp rounding (Matroska stores
# milliseconds) and would only add clicks.
_AUDIO_RESYNC_SAMPLES = contract.AUDIO_SAMPLE_RATE // 50  # 20 ms
# MPEG-PS/TS carry a timestamp only every few packets and FFmpeg guesses the
# rest; right after a seek those guesses are off (measured: half a frame, for
# ten frames). The standard puts a timestamp at least every 0.7 s, so seeking
# this much earlier lets the timestamps resync before the span starts.
_AVFMT_TS_DISCONT = 0x0200  # libavformat's flag for such formats
_TIMESTAMP_RESYNC_MARGIN_S = 1.0
# Seeks retried this much earlier each time the demuxer lands after the span.
_SEEK_RETRY_BACKOFF_S = (1.0, 4.0, 16.0)
# After a seek, encoded frames are held back until the audio shows the seek
# did not land after the span; past this many (10 s) they go out regardless.
_MAX_UNCONFIRMED_FRAMES = 10 * contract.VIDEO_FPS
# URL schemes FFmpeg opens itself; every other scheme is an object store, read through shared.files.
_FFMPEG_URL_SCHEMES = ("http://", "https://")


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  """How to decode; the defaults are the contract's.

  Attributes:
    short_side: stored frames are resized so their short side is this many
      pixels (aspect ratio kept, long side even).
    jpeg_quality: JPEG quality of the stored frames (Pillow's scale, 1-100).
    deadline_s: wall-clock bound on one clip's decode; past it the decode
      raises DecodeTimeoutError instead of hanging a pipeline worker.
    io_timeout_s: bound on any single open or read inside FFmpeg (matters for
      network paths and stalled mounts).
    decoder_threads: FFmpeg decoder threads. 1 spends the least CPU per clip,
      which is what matters when the pipeline already runs a clip per core; 0
      lets FFmpeg choose (faster wall time for one big clip).
    audio_preroll_s: how far before the span to start decoding audio, so the
      codec's overlap (AAC, Opus pre-roll, MP2 filterbank) is warm at start_s.
    max_decode_errors: packets that may fail to decode in one clip (each costs
      a frame, as in FFmpeg's tools) before the file counts as corrupt.
  """

  short_side: int = contract.FRAME_SHORT_SIDE
  jpeg_quality: int = contract.JPEG_QUALITY
  deadline_s: float = 300.0
  io_timeout_s: float = 30.0
  decoder_threads: int = 1
  audio_preroll_s: float = 0.1
  max_decode_errors: int = 16

  def __post_init__(self):
    if self.short_side <= 0:
      raise ValueError(f"short_side must be positive, got {self.short_side}")
    if not 1 <= self.jpeg_quality <= 100:
      raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
    if self.deadline_s <= 0 or self.io_timeout_s <= 0:
      raise ValueError("deadline_s and io_timeout_s must be positive")
    if self.decoder_threads < 0:
      raise ValueError(f"decoder_threads must be >= 0, got {self.decoder_threads}")
    if self.audio_preroll_s < 0:
      raise ValueError(f"audio_preroll_s must be >= 0, got {self.audio_preroll_s}")
    if self.max_decode_errors < 0:
      raise ValueError(f"max_decode_errors must be >= 0, got {self.max_decode_errors}")


@dataclasses.dataclass(frozen=True)
class DecodedClip:
  """One span of a media file, decoded to the contract's rates.

  Attributes:
    path: the file decoded.
    start_s: span start, seconds on the span's clock (by default from the
      container's start_time, the media's first timestamp).
    end_s: span end (exclusive), same clock.
    jpeg_frames: one JPEG per contract.VIDEO_FPS sample time of the span;
      len == contract.num_frames(end_s - start_s) (empty from a FrameStream
      that did not keep them).
    frame_width: width of the stored frames.
    frame_height: height of the stored frames.
    audio: float32 [contract.num_audio_samples(end_s - start_s)] mono samples
      at contract.AUDIO_SAMPLE_RATE, sample 0 at start_s; zeros where the
      source has no audio.
    has_audio: whether the source has an audio stream at all.
    has_video: whether the source has a video stream; without one (allowed
      by require_video=False) the frames are black and the source_* fields 0.
    source_fps: the video stream's native (average) frame rate.
    source_width: the video stream's coded frame width.
    source_height: the video stream's coded frame height.
    decoded_duration_s: how much of the span real media covered: the overlap
      of the span with the video's presentation and, with audio, with the
      audio's (the smaller of the two). Equals end_s - start_s for a span
      fully inside the media.
    padded_frames: sample times outside the video's presentation (before its
      first frame or after its last); they repeat the nearest frame.
  """

  path: str
  start_s: float
  end_s: float
  jpeg_frames: list[bytes]
  frame_width: int
  frame_height: int
  audio: np.ndarray
  has_audio: bool
  source_fps: float
  source_width: int
  source_height: int
  decoded_duration_s: float
  padded_frames: int
  has_video: bool = True

  def to_record(self, *, clip_id: str, dataset: str, source_id: str, start_s: float, end_s: float,
                label_indices: Sequence[int] = (), label_names: Sequence[str] = (),
                verb_index: int = contract.NO_LABEL, noun_index: int = contract.NO_LABEL,
                action_index: int = contract.NO_LABEL) -> records.ClipRecord:
    """The record of this span: its features (frames, the log-mel of its audio, what the media held), with
    the identity and labels given. Every builder and trainer.predict make their records here."""
    return records.ClipRecord(
        clip_id=clip_id, dataset=dataset, source_id=source_id, start_s=start_s, end_s=end_s,
        jpeg_frames=self.jpeg_frames, frame_width=self.frame_width, frame_height=self.frame_height,
        melspec=logmel.log_mel(self.audio), num_audio_samples=int(self.audio.shape[0]),
        label_indices=list(label_indices), label_names=list(label_names), has_audio=self.has_audio,
        has_video=self.has_video, decoded_duration_s=self.decoded_duration_s, source_fps=self.source_fps,
        source_width=self.source_width, source_height=self.source_height, verb_index=verb_index,
        noun_index=noun_index, action_index=action_index)


def _check_span(start_s: float, end_s: float) -> tuple[float, float]:
  """The span as floats, or InvalidSpanError."""
  for name, value in (("start", start_s), ("end", end_s)):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
      raise errors.InvalidSpanError(f"span {name} must be a finite number of seconds, got {value!r}")
  start_s, end_s = float(start_s), float(end_s)
  if start_s < 0:
    raise errors.InvalidSpanError(f"span start must be >= 0, got {start_s}")
  if end_s <= start_s:
    raise errors.InvalidSpanError(f"span [{start_s}, {end_s}] is empty: end must be after start")
  return start_s, end_s


class _SeekOvershoot(Exception):
  """The demuxer landed after the span's start; seek earlier."""


class _FrameEncoder:
  """Resizes decoded frames and encodes them as JPEG, reusing the scalers.

  The output size is fixed by the first frame (display aspect ratio, i.e.
  with the sample aspect ratio applied); later frames of another size are
  scaled to it too. Scaling takes two swscale passes: resize in YUV 4:2:0,
  then convert the small frame to RGB. Converting while resizing takes
  swscale's slow generic path (measured 1.4 ms against 0.6 ms per 640x360 ->
  456x256 frame including the JPEG encode).
  """

  def __init__(self, short_side: int, jpeg_quality: int, sample_aspect_ratio: Optional[Fraction]):
    self._short_side = short_side
    self._quality = jpeg_quality
    self._sample_aspect_ratio = sample_aspect_ratio
    self.size: Optional[tuple[int, int]] = None
    self._resizer = VideoReformatter()
    self._to_rgb = VideoReformatter()

  def encode(self, frame: av.VideoFrame) -> bytes:
    if self.size is None:
      sar = self._sample_aspect_ratio
      display_width = round(frame.width * sar) if sar and sar > 0 else frame.width
      self.size = contract.resized_frame_size(max(1, display_width), frame.height, self._short_side)
    width, height = self.size
    # Unspecified range means limited ("MPEG") range video, as FFmpeg assumes.
    color_range = frame.color_range or ColorRange.MPEG
    small = self._resizer.reformat(frame, width, height, "yuv420p", interpolation="BILINEAR",
                                   src_color_range=color_range, dst_color_range=color_range, threads=1)
    rgb = self._to_rgb.reformat(small, format="rgb24", src_color_range=color_range,
                                dst_color_range=ColorRange.JPEG, threads=1)
    plane = rgb.planes[0]
    image = Image.frombuffer("RGB", (width, height), plane, "raw", "RGB", plane.line_size, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=self._quality)
    return buffer.getvalue()


@functools.lru_cache(maxsize=8)
def _blank_jpeg(width: int, height: int, quality: int) -> bytes:
  """The black frame a clip without video stores, encoded once per size and quality."""
  buffer = io.BytesIO()
  Image.new("RGB", (width, height)).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


class _AudioAssembler:
  """Places resampled audio frames into the span's sample buffer by timestamp."""

  def __init__(self, start_s: Fraction, num_samples: int, origin: Fraction):
    self.samples = np.zeros(num_samples, np.float32)
    self._start = start_s
    self._origin = origin
    self._next_position: Optional[int] = None  # buffer index of the next contiguous sample
    self._input_anchor: Optional[Fraction] = None
    self._span_start_s = float(origin + start_s)  # on the streams' clock
    self.covered_from: Optional[int] = None
    self.covered_to = 0
    # rematrix_maxval=1 makes the downmix an average of the channels; FFmpeg's
    # default for float output sums them at -3 dB each, 1.41x a channel.
    self._resampler = av.AudioResampler(format="flt", layout="mono", rate=contract.AUDIO_SAMPLE_RATE,
                                        options={"rematrix_maxval": "1.0"})

  @property
  def done(self) -> bool:
    return self._next_position is not None and self._next_position >= len(self.samples)

  def add(self, frame: Optional[av.AudioFrame]) -> None:
    """Resamples a decoded frame (None flushes) and writes what it yields."""
    if self._input_anchor is None and frame is not None and frame.pts is not None:
      # The resampler's output starts where its first input starts; its
      # output timestamps are rounded to whole 16 kHz samples, so the exact
      # input time gives the better (half a sample) anchor.
      self._input_anchor = self._buffer_position(frame)
    for resampled in self._resampler.resample(frame):
      self._place(resampled)

  def _buffer_position(self, frame: av.AudioFrame) -> Fraction:
    """Buffer index (fractional) of the frame's first sample, from its timestamp."""
    return (Fraction(frame.pts) * frame.time_base - self._origin - self._start) * contract.AUDIO_SAMPLE_RATE

  def _place(self, frame: av.AudioFrame) -> None:
    data = frame.to_ndarray().reshape(-1)
    if data.size == 0:
      return
    position = self._next_position
    if position is None:
      position = round(self._input_anchor) if self._input_anchor is not None else 0
    if frame.pts is not None and frame.time_base is not None:
      # Float is plenty for a 20 ms threshold, and exact rationals per frame cost.
      stamped = (frame.pts * float(frame.time_base) - self._span_start_s) * contract.AUDIO_SAMPLE_RATE
      if abs(stamped - position) > _AUDIO_RESYNC_SAMPLES:
        position = round(stamped)  # a real gap or overlap in the source
    self._next_position = position + data.size
    lo, hi = max(position, 0), min(position + data.size, len(self.samples))
    if lo >= hi:
      return
    self.samples[lo:hi] = data[lo - position:hi - position]
    if self.covered_from is None:
      self.covered_from = lo
    self.covered_to = max(self.covered_to, hi)


class ClipDecoder:
  """Decodes spans of media files with fixed options; holds no per-file state.

  Safe to share between threads and to pickle (it only holds its options).
  """

  def __init__(self, options: DecodeOptions = DecodeOptions()):
    self.options = options

  def decode(self, path: str, start_s: float, end_s: float, clock_origin_s: Optional[float] = None,
             require_video: bool = True) -> DecodedClip:
    """Decodes [start_s, end_s) of `path`; see the module docstring.

    Args:
      path: a media file FFmpeg can read: local, on an object store (gs://) or at an http(s) URL.
      start_s: span start, seconds on the span's clock, >= 0.
      end_s: span end, seconds, > start_s. May lie past the end of the media.
      clock_origin_s: the presentation time (seconds) of the clock's zero;
        None: the container's start_time, the media's first timestamp.
      require_video: a file without a video stream fails; False: its audio is
        decoded and the frames are black (has_video False).

    Returns:
      The decoded clip.

    Raises:
      InvalidSpanError: the span is empty, reversed, negative or not finite.
      UnreadableMediaError: the file cannot be opened or read.
      CorruptMediaError: the file is not media, or its data fails to decode.
      TruncatedMediaError: the media stops before its declared end, inside the span.
      NoVideoStreamError: the file has no video stream (and require_video), or no stream at all.
      DecodeTimeoutError: decoding exceeded options.deadline_s.
    """
    frames = self.stream(path, start_s, end_s, clock_origin_s, keep_frames=True, require_video=require_video)
    for _ in frames:
      pass
    return frames.clip

  def stream(self, path: str, start_s: float, end_s: float, clock_origin_s: Optional[float] = None,
             keep_frames: bool = False, require_video: bool = True) -> "FrameStream":
    """The span's JPEG frames, handed out one by one as they are encoded.

    Same arguments and errors as :meth:`decode` (errors are raised while
    iterating; InvalidSpanError at once). Iterate the result for the frames;
    once it is exhausted, its ``clip`` holds the rest of the decode.

    Args:
      keep_frames: also keep every JPEG in ``clip.jpeg_frames`` (what
        :meth:`decode` does); otherwise that list stays empty.
    """
    return FrameStream(self, path, start_s, end_s, clock_origin_s, keep_frames, require_video)

  # -------------------------------------------------------------------------
  @contextlib.contextmanager
  def _open(self, path: str) -> Iterator[av.container.InputContainer]:
    """The open container (closed, and its remote file with it, when the block ends)."""
    with contextlib.ExitStack() as opened:
      source = str(path)
      if files.is_remote(source) and not source.lower().startswith(_FFMPEG_URL_SCHEMES):
        try:
          source = opened.enter_context(files.open_read(source))
        except Exception as e:  # noqa: BLE001 (each object store raises its own: missing, no permission)
          raise errors.UnreadableMediaError(path, f"cannot open ({type(e).__name__}: {e})") from e
      container = self._open_container(path, source)
      opened.callback(container.close)
      yield container

  def _open_container(self, path: str, source) -> av.container.InputContainer:
    timeout = self.options.io_timeout_s
    try:
      return av.open(source, mode="r", timeout=(timeout, timeout))
    except av.error.InvalidDataError as e:
      raise errors.CorruptMediaError(path, f"FFmpeg cannot read it as media ({e})") from e
    except av.error.ExitError as e:
      raise errors.DecodeTimeoutError(path, f"opening took longer than {timeout} s") from e
    except OSError as e:  # missing, a directory, no permission, I/O error
      raise errors.UnreadableMediaError(path, f"cannot open ({e})") from e
    except av.FFmpegError as e:
      raise errors.CorruptMediaError(path, f"FFmpeg cannot open it ({e})") from e


class FrameStream:
  """One span being decoded: iterating yields its JPEG frames in order, as they are made.

  Frame k is yielded as soon as the source frame shown at its sample time is
  known (when the next source frame arrives), so a consumer holds what it
  keeps and the decoder one decoded frame, whatever the span's length. Right
  after a seek, frames wait until the first video and audio frames show the
  seek did not land after the span (then it seeks again, so nothing yielded is
  ever taken back); at most _MAX_UNCONFIRMED_FRAMES wait.

  Iterate it once. Attributes:
    clip: once iteration has ended, the DecodedClip (its jpeg_frames empty
      unless keep_frames); None before.
    decoded_until_s: span-clock time of the latest decoded video frame, None
      before the first (shows how far decoding has got while frames come out).
  """

  def __init__(self, decoder: ClipDecoder, path: str, start_s: float, end_s: float,
               clock_origin_s: Optional[float], keep_frames: bool, require_video: bool = True):
    self._decoder = decoder
    self._require_video = require_video
    self._path = path
    self._start_s, self._end_s = _check_span(start_s, end_s)
    if clock_origin_s is not None and (isinstance(clock_origin_s, bool) or not isinstance(
        clock_origin_s, numbers.Real) or not math.isfinite(clock_origin_s)):
      raise errors.InvalidSpanError(f"clock_origin_s must be a finite number of seconds, got {clock_origin_s!r}")
    self._clock_origin = None if clock_origin_s is None else Fraction(float(clock_origin_s))
    self._keep_frames = keep_frames
    self._started = False
    self.clip: Optional[DecodedClip] = None
    self.decoded_until_s: Optional[float] = None

  def __iter__(self) -> Iterator[bytes]:
    if self._started:
      raise RuntimeError("a FrameStream can be iterated only once")
    self._started = True
    return self._frames()

  def _frames(self) -> Iterator[bytes]:
    deadline = time.monotonic() + self._decoder.options.deadline_s
    kept: Optional[list[bytes]] = [] if self._keep_frames else None
    # Seek, and if the demuxer lands after the start, seek earlier; the last
    # attempt (None) decodes from the beginning and cannot overshoot.
    for seek_back in (0.0,) + _SEEK_RETRY_BACKOFF_S + (None,):
      try:
        for jpeg in self._attempt(seek_back, deadline):
          if kept is not None:
            kept.append(jpeg)
          yield jpeg
      except _SeekOvershoot:
        continue
      self.clip = dataclasses.replace(self.clip, jpeg_frames=kept if kept is not None else [])
      return
    raise AssertionError("unreachable: decoding from the beginning cannot overshoot")

  def _attempt(self, seek_back: Optional[float], deadline: float) -> Iterator[bytes]:
    """One attempt: seek `seek_back` s before the preroll (None: no seek), decode, yield frames.

    Raises _SeekOvershoot before yielding anything if the seek landed after the span.
    """
    options, path = self._decoder.options, self._path
    start_s, end_s = self._start_s, self._end_s
    start = Fraction(start_s)
    with self._decoder._open(path) as container:
      video_stream = next(
          (s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)
      audio_stream = container.streams.audio[0] if container.streams.audio else None
      if video_stream is None:
        if self._require_video or audio_stream is None:
          raise errors.NoVideoStreamError(path, "no video stream (audio only or not a video file)")
        yield from self._audio_only(container, audio_stream, seek_back, deadline)
        return
      video_stream.thread_count = options.decoder_threads
      video_stream.thread_type = "SLICE" if options.decoder_threads == 1 else "AUTO"

      container_start = Fraction(container.start_time or 0) * _AV_TIME_BASE
      origin = container_start if self._clock_origin is None else self._clock_origin
      num_samples = contract.num_audio_samples(end_s - start_s)
      encoder = _FrameEncoder(options.short_side, options.jpeg_quality,
                              video_stream.codec_context.sample_aspect_ratio)
      selector = _FrameSelector(start, contract.num_frames(end_s - start_s), video_stream, origin, encoder.encode)
      audio = _AudioAssembler(start, num_samples, origin) if audio_stream is not None else None

      preroll = Fraction(options.audio_preroll_s) if audio_stream is not None else Fraction(0)
      if container.format.flags & _AVFMT_TS_DISCONT:
        preroll += Fraction(_TIMESTAMP_RESYNC_MARGIN_S)
      target = None if seek_back is None else start - preroll - Fraction(seek_back)
      # Nothing to skip before the media's first timestamp.
      seeked = target is not None and target > container_start - origin and _seek(container, video_stream,
                                                                                  origin + target)
      demuxed = self._demux(container, video_stream, audio_stream, selector, audio, start if seeked else None,
                            origin, deadline)
      stream_ended = yield from demuxed
      if selector.first_size is None:
        raise errors.CorruptMediaError(path, "the video stream holds no decodable frame")
      if stream_ended:
        _check_truncation(path, container, selector, origin, start_s, end_s)

      covered = selector.covered(start, Fraction(end_s))
      if audio is not None:
        covered = min(covered, Fraction(audio.covered_to - (audio.covered_from or 0), contract.AUDIO_SAMPLE_RATE))
      rate = video_stream.average_rate or video_stream.guessed_rate or video_stream.base_rate
      width, height = encoder.size
      self.clip = DecodedClip(
          path=str(path),
          start_s=float(start_s),
          end_s=float(end_s),
          jpeg_frames=[],
          frame_width=width,
          frame_height=height,
          audio=audio.samples if audio is not None else np.zeros(num_samples, np.float32),
          has_audio=audio is not None,
          source_fps=float(rate) if rate else 0.0,
          source_width=selector.first_size[0],
          source_height=selector.first_size[1],
          decoded_duration_s=float(covered),
          padded_frames=selector.padded,
      )

  def _audio_only(self, container, audio_stream, seek_back: Optional[float], deadline: float) -> Iterator[bytes]:
    """An attempt at a file without video: the span's audio, and a black frame per sample time.

    Raises _SeekOvershoot before yielding anything if the seek landed after the span.
    """
    options, path = self._decoder.options, self._path
    start_s, end_s = self._start_s, self._end_s
    start = Fraction(start_s)
    container_start = Fraction(container.start_time or 0) * _AV_TIME_BASE
    origin = container_start if self._clock_origin is None else self._clock_origin
    audio = _AudioAssembler(start, contract.num_audio_samples(end_s - start_s), origin)
    preroll = Fraction(options.audio_preroll_s)
    if container.format.flags & _AVFMT_TS_DISCONT:
      preroll += Fraction(_TIMESTAMP_RESYNC_MARGIN_S)
    target = None if seek_back is None else start - preroll - Fraction(seek_back)
    seeked = target is not None and target > container_start - origin and _seek(container, audio_stream,
                                                                                origin + target)
    confirmed = not seeked
    decoded_any = False
    decode = _PacketDecoder(path, options.max_decode_errors)
    try:
      for packet in container.demux(audio_stream):
        if time.monotonic() > deadline:
          raise errors.DecodeTimeoutError(path, f"decoding took longer than {options.deadline_s} s")
        if audio.done:
          break
        for frame in decode(packet):
          decoded_any = True
          audio.add(frame)
        if not confirmed and audio.covered_from is not None:
          if audio.covered_from:
            _check_audio_seek(audio_stream, origin, start)
          confirmed = True
      if not audio.done:
        audio.add(None)
    except av.error.ExitError as e:
      raise errors.DecodeTimeoutError(path, f"a read took longer than {options.io_timeout_s} s") from e
    except av.FFmpegError as e:
      raise errors.CorruptMediaError(path, f"decoding failed ({e})") from e
    if not decoded_any:
      raise errors.CorruptMediaError(path, "the audio stream holds no decodable frame")
    width, height = contract.blank_frame_size(options.short_side)
    blank = _blank_jpeg(width, height, options.jpeg_quality)
    for _ in range(contract.num_frames(end_s - start_s)):
      yield blank
    self.clip = DecodedClip(
        path=str(path), start_s=float(start_s), end_s=float(end_s), jpeg_frames=[], frame_width=width,
        frame_height=height, audio=audio.samples, has_audio=True, source_fps=0.0, source_width=0, source_height=0,
        decoded_duration_s=float(Fraction(audio.covered_to - (audio.covered_from or 0), contract.AUDIO_SAMPLE_RATE)),
        padded_frames=0, has_video=False)

  def _demux(self, container, video_stream, audio_stream, selector: "_FrameSelector",
             audio: Optional["_AudioAssembler"], seeked_to: Optional[Fraction], origin: Fraction,
             deadline: float):
    """Decodes packets until the span is covered or the file ends, yielding frames as they are encoded.

    Args:
      seeked_to: the span start if the container was seeked (then landing
        after it raises _SeekOvershoot), else None.

    Returns (as the generator's value):
      Whether the video ended inside the span.
    """
    options, path = self._decoder.options, self._path
    streams = [video_stream] + ([audio_stream] if audio_stream is not None else [])
    decode = _PacketDecoder(path, options.max_decode_errors)
    # Without a seek there is nothing to overshoot; after one, frames wait for the checks.
    video_confirmed = audio_confirmed = seeked_to is None
    audio_confirmed = audio_confirmed or audio is None
    try:
      for packet in container.demux(streams):
        if time.monotonic() > deadline:
          raise errors.DecodeTimeoutError(path, f"decoding took longer than {options.deadline_s} s")
        if selector.done and (audio is None or audio.done):
          break
        is_video = packet.stream is video_stream
        if selector.done if is_video else audio.done:
          continue
        for frame in decode(packet):
          if is_video:
            if not video_confirmed:
              _check_video_seek(selector.frame_time(frame), seeked_to, video_stream, origin)
              video_confirmed = True
            selector.add(frame)
            self.decoded_until_s = float(selector.latest_time)
          else:
            audio.add(frame)
        if not audio_confirmed and audio.covered_from is not None:
          if audio.covered_from:
            _check_audio_seek(audio_stream, origin, seeked_to)
          audio_confirmed = True
        if not audio_confirmed and len(selector.ready) > _MAX_UNCONFIRMED_FRAMES:
          audio_confirmed = True  # audio far from the video, or none here: stop holding frames back
        if video_confirmed and audio_confirmed:
          while selector.ready:
            yield selector.ready.popleft()
      # End of the file or of the span: flush what the resampler holds.
      stream_ended = not selector.done
      if stream_ended:
        selector.finish()
      if audio is not None and not audio.done:
        audio.add(None)
    except av.error.ExitError as e:
      raise errors.DecodeTimeoutError(path, f"a read took longer than {options.io_timeout_s} s") from e
    except av.FFmpegError as e:
      raise errors.CorruptMediaError(path, f"decoding failed ({e})") from e
    while selector.ready:
      yield selector.ready.popleft()
    return stream_ended


class _PacketDecoder:
  """A packet's frames, where a packet that fails to decode costs its frames, up to a budget per clip.

  A damaged packet (or a partial one right after a seek into MPEG-PS) costs a
  frame, as in FFmpeg's own tools; many mean broken data: CorruptMediaError.
  """

  def __init__(self, path: str, max_errors: int):
    self._path, self._max_errors, self._errors = path, max_errors, 0

  def __call__(self, packet) -> list:
    try:
      return packet.decode()
    except av.error.ExitError:
      raise  # a read past its deadline: the caller says so
    except av.FFmpegError as e:
      self._errors += 1
      if self._errors > self._max_errors:
        raise errors.CorruptMediaError(self._path, f"{self._errors} packets failed to decode, the last: {e}") from e
      return []


def _seek(container, stream, absolute_time: Fraction) -> bool:
  """Seeks to the keyframe at or before the time; False (and no move) if there is none."""
  try:
    container.seek(math.floor(absolute_time / stream.time_base), stream=stream, backward=True, any_frame=False)
  except av.FFmpegError:
    return False  # e.g. no keyframe before the target: decode from the start
  return True


def _stream_start(stream, origin: Fraction) -> Fraction:
  if stream.start_time is None:
    return -origin
  return Fraction(stream.start_time) * stream.time_base - origin


def _check_video_seek(first_frame_time: Fraction, start: Fraction, stream, origin: Fraction) -> None:
  """Raises _SeekOvershoot if the first frame after a seek is after the span start.

  A frame after start is fine only when it is the stream's very first one.
  """
  if first_frame_time > start + _TIME_EPSILON and first_frame_time > _stream_start(stream, origin) + _TIME_EPSILON:
    raise _SeekOvershoot()


def _check_audio_seek(stream, origin: Fraction, start: Fraction) -> None:
  """Raises _SeekOvershoot if audio after a seek starts after the span start but the stream does not."""
  if start > _stream_start(stream, origin) + Fraction(1, 100):
    raise _SeekOvershoot()


def _check_truncation(path, container, selector, origin: Fraction, start_s: float, end_s: float) -> None:
  """Raises TruncatedMediaError when the video stopped well before the file's declared end."""
  if container.duration is None or selector.video_end is None:
    return
  # FFmpeg's duration counts from the container's start for most formats but
  # from 0 for Matroska and WebM (their Duration is where the media ends).
  # Read as an end time, the earlier of the two readings, it never calls a
  # complete file with a late start truncated (measured: a WebM section
  # starting at 10 s declares 17 s, its end).
  declared_end = Fraction(container.duration) * _AV_TIME_BASE - origin
  media_end = selector.video_end
  # Containers round durations and streams differ by up to a frame or two;
  # a whole second missing is not rounding.
  if declared_end - media_end > 1 and end_s > media_end:
    raise errors.TruncatedMediaError(
        path, f"the media stops at {float(media_end):.3f} s but declares {float(declared_end):.3f} s; "
        f"span [{start_s}, {end_s}] needs the missing part")


class _FrameSelector:
  """Assigns each sample time the decoded frame whose interval contains it.

  Frames arrive in presentation order. A frame's interval ends where the next
  frame starts, so sample times are assigned to a frame when its successor
  arrives (or at the end of the stream). A frame is encoded as soon as it gets
  its first sample time and then dropped, so at most one decoded frame is held
  (1080p frames are 3 MB each); the JPEGs wait in `ready` for the caller.
  """

  def __init__(self, start: Fraction, count: int, stream, origin: Fraction,
               encode: Callable[[av.VideoFrame], bytes]):
    self._start = start
    self._count = count
    self._origin = origin
    self._encode = encode
    self._next = 0  # index of the first unassigned sample time
    self._pending: Optional[av.VideoFrame] = None
    self._pending_time: Optional[Fraction] = None
    self._pending_jpeg: Optional[bytes] = None
    self.first_size: Optional[tuple[int, int]] = None  # (width, height) of the first frame
    self.first_time: Optional[Fraction] = None
    self.latest_time: Optional[Fraction] = None  # presentation time of the latest frame added
    self.ready: collections.deque[bytes] = collections.deque()  # JPEGs of samples _next - len(ready) .. _next - 1
    self.padded = 0
    self.video_end: Optional[Fraction] = None  # end of the last frame, once the stream ended
    rate = stream.average_rate or stream.guessed_rate
    self._last_duration = 1 / Fraction(rate) if rate else Fraction(1, contract.VIDEO_FPS)

  @property
  def done(self) -> bool:
    return self._next >= self._count

  def _sample_time(self, k: int) -> Fraction:
    # Computed when needed: a list of them would grow with the span (270,000 for three hours).
    return self._start + Fraction(k, contract.VIDEO_FPS)

  def frame_time(self, frame: av.VideoFrame) -> Fraction:
    if frame.pts is None:  # rare (raw elementary streams): assume a steady rate
      return Fraction(0) if self._pending_time is None else self._pending_time + self._last_duration
    return Fraction(frame.pts) * frame.time_base - self._origin

  def add(self, frame: av.VideoFrame) -> None:
    if self.done:
      return
    frame_time = self.frame_time(frame)
    self.latest_time = frame_time
    if self._pending is None:
      self.first_size, self.first_time = (frame.width, frame.height), frame_time
      # Sample times before the stream's first frame show that frame.
      self._pending, self._pending_time = frame, frame_time
      self._assign_before(frame_time, padded=True)
    elif frame_time > self._pending_time:
      self._last_duration = frame_time - self._pending_time
      self._assign_before(frame_time, padded=False)
      self._pending, self._pending_time, self._pending_jpeg = frame, frame_time, None
    else:  # same or earlier timestamp: the later frame is the one shown
      self._pending, self._pending_jpeg = frame, None
    if frame.duration:
      self._last_duration = Fraction(frame.duration) * frame.time_base

  def _assign_before(self, limit: Fraction, padded: bool) -> None:
    """Gives the pending frame every unassigned sample time t with t + eps < limit."""
    while self._next < self._count and self._sample_time(self._next) + _TIME_EPSILON < limit:
      self._assign(padded)

  def _assign(self, padded: bool) -> None:
    if self._pending_jpeg is None:
      self._pending_jpeg = self._encode(self._pending)
    self.ready.append(self._pending_jpeg)
    self.padded += padded
    self._next += 1

  def finish(self) -> None:
    """End of stream: the last frame shows until its duration is over, then pads."""
    if self._pending is None:
      return
    self.video_end = self._pending_time + self._last_duration
    while self._next < self._count:
      self._assign(padded=self._sample_time(self._next) + _TIME_EPSILON >= self.video_end)
    self._pending = None

  def covered(self, start: Fraction, end: Fraction) -> Fraction:
    """Length of [start, end) that the video presented."""
    if self.first_time is None:
      return Fraction(0)
    video_end = self.video_end if self.video_end is not None else end
    return max(Fraction(0), min(end, video_end) - max(start, self.first_time))


def decode_clip(path: str, start_s: float, end_s: float, options: DecodeOptions = DecodeOptions(), *,
                clock_origin_s: Optional[float] = None) -> DecodedClip:
  """Decodes [start_s, end_s) of `path`; see :class:`ClipDecoder.decode`."""
  return ClipDecoder(options).decode(path, start_s, end_s, clock_origin_s)
