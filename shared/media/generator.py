"""Synthetic audio-visual clips whose content encodes time.

Tests and demos need media they can check decoding against, without any network
or stock footage. Every clip written here carries its own clock:

* video: frame n of the source shows n as a grid of black and white blocks
  (:func:`paint_frame_code`, read back by :func:`read_frame_code`), so a test
  can tell exactly which source frame a decoded frame came from;
* audio: a tone whose pitch steps every second (:func:`tone_signal`), a pure
  function of the time since the start of the media, so a test can find the
  alignment of decoded audio to within a sample by cross-correlation.

The clip's real presentation times are returned with it
(:attr:`GeneratedClip.frame_times`), including variable frame rate and
non-zero start timestamps, so "the frame shown at time t" has one answer.

Painters are pluggable: the end-to-end demo paints attribute patterns instead
of the clock (see ``paint_frame`` / ``paint_audio`` of :func:`write_clip`).

    python -m shared.media.generator --help
"""

from __future__ import annotations

import argparse
import dataclasses
import fractions
import os
from typing import Callable, Optional

import av
import numpy as np

# container name -> (FFmpeg muxer, video encoder, audio encoder, time base den).
# Matroska and WebM store millisecond timestamps; MP4 and MPEG-PS 1/90000.
FORMATS = {
    "mp4": ("mp4", "libx264", "aac", 90_000),  # what most sources serve
    "webm": ("webm", "libvpx-vp9", "libopus", 1_000),  # YouTube's other format
    "mkv": ("matroska", "libx264", "flac", 1_000),
    "mpg": ("mpeg", "mpeg2video", "mp2", 90_000),  # MPEG program stream
}

# Sample rates each audio encoder accepts that we use.
_OPUS_RATE = 48_000

CODE_ROWS, CODE_COLS = 4, 5  # a 20-bit frame counter: over 11 hours at 25 fps
_CODE_BITS = CODE_ROWS * CODE_COLS
_BLACK, _WHITE = 16, 235  # video-range levels survive YUV round trips


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """What to generate.

  Attributes:
    duration_s: length of the media in seconds.
    width: frame width in pixels (even).
    height: frame height in pixels (even).
    fps: nominal frame rate, e.g. 25, 30, 30000/1001, 50, 60000/1001.
    container: one of FORMATS ("mp4", "webm", "mkv", "mpg").
    video: whether to write a video stream.
    audio: whether to write an audio stream.
    audio_sample_rate: source sample rate (Opus is always 48 kHz).
    audio_channels: 1 or 2; both channels carry the same tone.
    start_offset_s: presentation time of the first frame and sample; MPEG-PS
      muxers add their own offset on top, and MPEG-2 video rounds it to a
      whole frame.
    variable_frame_rate: if true, frame intervals vary between 0.5 and 2
      nominal intervals (seeded), as screen recordings and phones produce.
    seed: seeds the variable frame rate pattern.
  """

  duration_s: float = 4.0
  width: int = 320
  height: int = 240
  fps: float = 30.0
  container: str = "mp4"
  video: bool = True
  audio: bool = True
  audio_sample_rate: int = 44_100
  audio_channels: int = 2
  start_offset_s: float = 0.0
  variable_frame_rate: bool = False
  seed: int = 0

  def __post_init__(self):
    if self.container not in FORMATS:
      raise ValueError(f"container must be one of {sorted(FORMATS)}, got {self.container!r}")
    if self.duration_s <= 0:
      raise ValueError(f"duration_s must be positive, got {self.duration_s}")
    if self.width % 2 or self.height % 2 or self.width <= 0 or self.height <= 0:
      raise ValueError(f"frame size must be positive and even, got {self.width}x{self.height}")
    if not (self.video or self.audio):
      raise ValueError("a clip needs a video or an audio stream")
    if self.container == "mpg" and self.variable_frame_rate:
      raise ValueError("MPEG-2 video has a constant frame rate; use mp4, webm or mkv for VFR")


@dataclasses.dataclass(frozen=True)
class GeneratedClip:
  """A clip on disk and the truth about its content.

  Times are on the file's own clock, in seconds from its start (FFmpeg's
  container start_time, the earliest presentation of any stream), which is
  where a span's second 0 lies. Muxers may shift streams against each other
  (MPEG-PS does), so both streams' times are read back from the written file.

  Attributes:
    path: the media file.
    spec: what was asked for.
    frame_times: presentation time of source frame n (which shows the code n),
      read from the file's packets.
    audio_start_s: presentation time of the first audio sample of content
      (tone_signal's t = 0); None without audio.
    audio_sample_rate: the rate the audio was encoded at.
  """

  path: str
  spec: ClipSpec
  frame_times: np.ndarray
  audio_start_s: Optional[float]
  audio_sample_rate: int

  def source_frame_at(self, t: float) -> int:
    """Index of the source frame whose presentation interval contains t."""
    index = int(np.searchsorted(self.frame_times, t + 1e-9, side="right")) - 1
    return min(max(index, 0), len(self.frame_times) - 1)


# ---------------------------------------------------------------------------
# Content: the clock painted into each frame and into the audio.
# ---------------------------------------------------------------------------
def paint_frame_code(index: int, width: int, height: int) -> np.ndarray:
  """An RGB uint8 frame showing `index` as a CODE_ROWS x CODE_COLS bit grid."""
  if not 0 <= index < 2**_CODE_BITS:
    raise ValueError(f"frame index {index} does not fit in {_CODE_BITS} bits")
  bits = (index >> np.arange(_CODE_BITS)) & 1
  grid = np.where(bits.reshape(CODE_ROWS, CODE_COLS) == 1, _WHITE, _BLACK).astype(np.uint8)
  rows = (np.arange(height) * CODE_ROWS) // height
  cols = (np.arange(width) * CODE_COLS) // width
  gray = grid[rows[:, None], cols[None, :]]
  return np.repeat(gray[:, :, None], 3, axis=2)


def read_frame_code(image: np.ndarray) -> int:
  """Reads back the index painted by paint_frame_code from an RGB or gray image.

  The image may have been resized and lossily compressed; each block is read
  from the middle half of its area.
  """
  gray = image.mean(axis=2) if image.ndim == 3 else image
  height, width = gray.shape
  value = 0
  for bit in range(_CODE_BITS):
    row, col = divmod(bit, CODE_COLS)
    y0, y1 = (4 * row + 1) * height // (4 * CODE_ROWS), (4 * row + 3) * height // (4 * CODE_ROWS)
    x0, x1 = (4 * col + 1) * width // (4 * CODE_COLS), (4 * col + 3) * width // (4 * CODE_COLS)
    if gray[y0:y1, x0:x1].mean() > (_BLACK + _WHITE) / 2:
      value |= 1 << bit
  return value


def tone_frequency(second: np.ndarray | int) -> np.ndarray:
  """The pitch in Hz during whole second `second` of the media: 16 steps, 300-1050 Hz."""
  return 300.0 + 50.0 * (np.asarray(second) % 16)


def tone_signal(t: np.ndarray) -> np.ndarray:
  """The audio at times t (seconds from the first presentation), float32 in [-0.5, 0.5].

  Each second restarts the sine at phase 0, so the waveform is continuous and
  the pitch steps exactly at whole seconds.
  """
  t = np.asarray(t, dtype=np.float64)
  second = np.floor(t)
  signal = 0.5 * np.sin(2 * np.pi * tone_frequency(second.astype(np.int64)) * (t - second))
  return np.where(t >= 0, signal, 0.0).astype(np.float32)


FramePainter = Callable[[int, float, int, int], np.ndarray]  # (index, t, width, height) -> RGB
AudioPainter = Callable[[np.ndarray], np.ndarray]  # times -> mono float32 samples


def _paint_clock_frame(index: int, t: float, width: int, height: int) -> np.ndarray:
  del t
  return paint_frame_code(index, width, height)


# ---------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------
def _frame_times(spec: ClipSpec, tick: float) -> np.ndarray:
  """Presentation times of the frames, on the container's tick grid."""
  nominal = 1.0 / spec.fps
  if spec.variable_frame_rate:
    rng = np.random.default_rng(spec.seed)
    intervals = nominal * rng.choice([0.5, 1.0, 1.0, 1.5, 2.0], size=int(spec.duration_s * spec.fps * 2) + 2)
    times = np.concatenate([[0.0], np.cumsum(intervals)])
  else:
    times = np.arange(int(np.ceil(spec.duration_s * spec.fps)) + 1) * nominal
  times = times[times < spec.duration_s - 1e-9]
  ticks = np.unique(np.round(times / tick).astype(np.int64))
  return ticks * tick


def write_clip(
    path: str,
    spec: ClipSpec = ClipSpec(),
    paint_frame: Optional[FramePainter] = None,
    paint_audio: Optional[AudioPainter] = None,
) -> GeneratedClip:
  """Encodes a clip to `path` and returns it with its frame times.

  Args:
    path: output file; its extension does not choose the format, spec.container does.
    spec: what to generate.
    paint_frame: (index, t, width, height) -> RGB uint8 image; default: the frame counter.
    paint_audio: times (seconds) -> mono float32 samples; default: tone_signal.
  """
  muxer, video_codec, audio_codec, tick_den = FORMATS[spec.container]
  paint_frame = paint_frame or _paint_clock_frame
  paint_audio = paint_audio or tone_signal
  tick = 1.0 / tick_den
  frame_times = _frame_times(spec, tick) if spec.video else np.zeros(0)
  sample_rate = _OPUS_RATE if audio_codec == "libopus" else spec.audio_sample_rate

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with av.open(path, mode="w", format=muxer) as container:
    video_stream = audio_stream = None
    if spec.video:
      video_stream = container.add_stream(video_codec, rate=fractions.Fraction(spec.fps).limit_denominator(1001))
      video_stream.width, video_stream.height = spec.width, spec.height
      video_stream.pix_fmt = "yuv420p"
      video_stream.time_base = fractions.Fraction(1, tick_den)
      # MPEG-2 only codes standard constant rates: its codec clock is 1/fps.
      codec_time_base = (1 / fractions.Fraction(spec.fps).limit_denominator(1001)
                         if video_codec == "mpeg2video" else fractions.Fraction(1, tick_den))
      video_stream.codec_context.time_base = codec_time_base
      if video_codec == "libx264":
        video_stream.options = {"preset": "ultrafast", "crf": "18"}
      elif video_codec == "libvpx-vp9":
        video_stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
      elif video_codec == "mpeg2video":
        video_stream.bit_rate = 4_000_000
    if spec.audio:
      audio_stream = container.add_stream(audio_codec, rate=sample_rate)
      audio_stream.layout = "stereo" if spec.audio_channels == 2 else "mono"
      if audio_codec in ("aac", "libopus", "mp2"):
        audio_stream.bit_rate = 128_000

    if video_stream is not None:
      for index, t in enumerate(frame_times):
        image = np.ascontiguousarray(paint_frame(index, float(t), spec.width, spec.height))
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        # Offset and time rounded apart: MPEG-2's clock is 1/fps, where an
        # offset of half a frame would round two frames onto one timestamp.
        frame.pts = int(round(t / codec_time_base)) + int(round(spec.start_offset_s / codec_time_base))
        frame.time_base = codec_time_base
        for packet in video_stream.encode(frame):
          container.mux(packet)
      for packet in video_stream.encode():
        container.mux(packet)

    if audio_stream is not None:
      total = int(round(spec.duration_s * sample_rate))
      samples = np.asarray(paint_audio(np.arange(total) / sample_rate), dtype=np.float32)
      chunk = audio_stream.codec_context.frame_size or 1024
      offset_samples = int(round(spec.start_offset_s * sample_rate))
      for start in range(0, total, chunk):
        block = samples[start:start + chunk]
        planar = np.repeat(block[None, :], spec.audio_channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=audio_stream.layout.name)
        frame.sample_rate = sample_rate
        frame.pts = start + offset_samples
        frame.time_base = fractions.Fraction(1, sample_rate)
        for packet in audio_stream.encode(frame):
          container.mux(packet)
      for packet in audio_stream.encode():
        container.mux(packet)

  frame_times, audio_start = _probe_times(path, spec)
  if audio_stream is not None:
    audio_start = _audio_content_start(path, samples, sample_rate, fallback=audio_start)
  return GeneratedClip(path=path, spec=spec, frame_times=frame_times, audio_start_s=audio_start,
                       audio_sample_rate=sample_rate)


# ---------------------------------------------------------------------------
# Sources whose first timestamp is not zero.
# ---------------------------------------------------------------------------
# FFmpeg's MPEG-PS muxer starts the clock of a stream that begins at zero at
# its 0.5 s preload plus one frame of decoder delay: 0.54 s at 25 fps.
MPEG_PS_FIRST_TIMESTAMP_S = 0.54

LATE_START_NAMES = ("late_mpg_video", "late_mpg_av", "late_mp4_video", "late_mp4_av")


def late_start_specs(duration_s: float = 12.0, width: int = 160, height: int = 120,
                     fps: float = 25.0) -> dict[str, ClipSpec]:
  """Clips whose media starts after timestamp 0, by name (LATE_START_NAMES).

  MPEG-PS, with and without audio, as FFmpeg writes it (video first shown at
  0.54 s, MP2 audio from 0.529 s), and MP4 asked to start at 0.54 s (AAC
  priming puts the audio stream's start at 0.516 s). A span's second 0 is the
  earliest of these, the media's first timestamp, on every path.
  """
  common = dict(duration_s=duration_s, width=width, height=height, fps=fps)
  return {
      "late_mpg_video": ClipSpec(container="mpg", audio=False, **common),
      "late_mpg_av": ClipSpec(container="mpg", audio=True, **common),
      "late_mp4_video": ClipSpec(container="mp4", audio=False, start_offset_s=MPEG_PS_FIRST_TIMESTAMP_S, **common),
      "late_mp4_av": ClipSpec(container="mp4", audio=True, start_offset_s=MPEG_PS_FIRST_TIMESTAMP_S, **common),
  }


def write_late_start_clips(directory: str, **spec_fields) -> dict[str, GeneratedClip]:
  """Writes the late_start_specs clips into `directory` as NAME.mpg / NAME.mp4."""
  return {name: write_clip(os.path.join(directory, f"{name}.{spec.container}"), spec)
          for name, spec in late_start_specs(**spec_fields).items()}


def _probe_times(path: str, spec: ClipSpec) -> tuple[np.ndarray, Optional[float]]:
  """Reads the streams' presentation times back from the packets (no decoding)."""
  with av.open(path) as container:
    origin = (container.start_time or 0) / av.time_base
    frame_pts = []
    audio_start = None
    for packet in container.demux():
      if packet.pts is None:
        continue
      if packet.stream.type == "video":
        frame_pts.append(float(packet.pts * packet.time_base))
      elif packet.stream.type == "audio" and audio_start is None:
        # Encoder priming is coded as samples before the intended start that
        # decoders drop; the content itself starts where it was asked to, plus
        # whatever shift the muxer applied to the whole stream.
        stream_start = float(packet.stream.start_time * packet.stream.time_base)
        audio_start = max(stream_start, spec.start_offset_s) if spec.container != "mpg" else stream_start
  return np.sort(np.asarray(frame_pts)) - origin, (None if audio_start is None else audio_start - origin)


# How far into the decoded audio the written samples may begin (priming and
# filterbank delays are at most ~2048 samples), and how many to match.
_MAX_AUDIO_DELAY_SAMPLES = 4096
_MATCH_SAMPLES = 4096


def _audio_content_start(path: str, written: np.ndarray, sample_rate: int, fallback: float) -> float:
  """Where the first written audio sample plays, on the file's clock.

  Encoders prepend priming samples (AAC 1024, Opus 312, MP2 its 481-sample
  filterbank delay) and move their timestamps back to compensate. Whether a
  decoder then drops them depends on the container: an mp4 edit list drops
  AAC priming only when the stream starts at zero (and the mov muxer rounds a
  non-zero start to its millisecond movie clock), Opus pre-skip is always
  dropped, MPEG-PS cannot signal it at all. Rather than keep a table of these,
  decode the start of the audio and find the written samples in it: the lag
  whose silence-then-signal best explains the decoded samples. The silence
  term makes a periodic tone unambiguous. Falls back to `fallback` when the
  written audio starts too quietly to be found.
  """
  reference = np.asarray(written[:_MATCH_SAMPLES], np.float64)
  if reference.size == 0 or np.mean(reference**2) < 1e-4:
    return fallback
  with av.open(path) as container:
    origin = (container.start_time or 0) / av.time_base
    resampler = av.AudioResampler(format="fltp")  # planar float; every channel holds the signal
    chunks, first_time, have = [], None, 0
    for frame in container.decode(audio=0):
      if first_time is None:
        first_time = float(frame.pts * frame.time_base) - origin
      for planar in resampler.resample(frame):
        chunks.append(planar.to_ndarray()[0])
        have += chunks[-1].size
      if have >= _MAX_AUDIO_DELAY_SAMPLES + reference.size:
        break
  if first_time is None:
    return fallback
  decoded = np.concatenate(chunks).astype(np.float64)
  max_lag = min(_MAX_AUDIO_DELAY_SAMPLES, decoded.size - reference.size)
  if max_lag < 0:
    return fallback
  # error(lag) = sum(decoded[:lag]^2) + sum((decoded[lag:lag+n] - reference)^2)
  window = np.lib.stride_tricks.sliding_window_view(decoded, reference.size)[:max_lag + 1]
  cumulative_energy = np.concatenate([[0.0], np.cumsum(decoded**2)])
  leading_energy = cumulative_energy[:max_lag + 1]
  window_energy = cumulative_energy[reference.size:reference.size + max_lag + 1] - leading_energy
  error = leading_energy + window_energy - 2 * (window @ reference) + np.sum(reference**2)
  return first_time + int(np.argmin(error)) / sample_rate


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m shared.media.generator",
      description="Write a synthetic clip whose frames show their index and whose audio steps pitch each second.",
  )
  parser.add_argument("output", help="path of the media file to write")
  parser.add_argument("--container", choices=sorted(FORMATS), default="mp4")
  parser.add_argument("--duration", type=float, default=10.0, help="seconds")
  parser.add_argument("--width", type=int, default=640)
  parser.add_argument("--height", type=int, default=360)
  parser.add_argument("--fps", type=float, default=30.0)
  parser.add_argument("--no_audio", action="store_true")
  parser.add_argument("--start_offset", type=float, default=0.0, help="first presentation time, seconds")
  parser.add_argument("--vfr", action="store_true", help="variable frame rate")
  args = parser.parse_args(argv)
  clip = write_clip(
      args.output,
      ClipSpec(duration_s=args.duration, width=args.width, height=args.height, fps=args.fps,
               container=args.container, audio=not args.no_audio, start_offset_s=args.start_offset,
               variable_frame_rate=args.vfr),
  )
  audio = f"audio at {clip.audio_sample_rate} Hz" if clip.spec.audio else "no audio"
  print(f"wrote {clip.path}: {len(clip.frame_times)} frames, {audio}")


if __name__ == "__main__":
  main()
