"""Fixtures for the media core tests: generated clips and the checks that read them back.

Clips come from shared.media.generator, whose frames show their own index and
whose audio is a pitch-stepped tone, so every decoded frame and every audio
sample can be checked against the truth the generator returns.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from shared import contract
from shared.media import generator

# Small frames keep generation and decoding fast on a 2-core machine.
SMALL_CLIP = dict(duration_s=3.0, width=160, height=120)
# The brief's bound: audio aligned to within one log-mel hop...
AUDIO_HOP_SAMPLES = contract.MEL_FRAME_SHIFT_SAMPLES
# ...and what the decoder actually achieves: samples placed to within half a
# sample of the container's timestamps, which Matroska and WebM round to
# milliseconds (16 samples). A regression that stays within a hop still shows.
AUDIO_PRECISE_SAMPLES = 2
# Search this far either side for the best audio alignment.
_MAX_LAG = 3 * AUDIO_HOP_SAMPLES


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory):
  """make_clip(**ClipSpec fields) -> GeneratedClip; small clips, generated once per spec."""
  root = tmp_path_factory.mktemp("media_clips")
  cache: dict[generator.ClipSpec, generator.GeneratedClip] = {}

  def make(**fields) -> generator.GeneratedClip:
    spec = generator.ClipSpec(**{**SMALL_CLIP, **fields})
    if spec not in cache:
      cache[spec] = generator.write_clip(str(root / f"clip{len(cache):03d}.{spec.container}"), spec)
    return cache[spec]

  return make


def read_codes(jpeg_frames) -> list[int]:
  """The frame index painted in each decoded JPEG."""
  return [generator.read_frame_code(np.asarray(Image.open(io.BytesIO(jpeg)))) for jpeg in jpeg_frames]


def expected_codes(clip: generator.GeneratedClip, start_s: float, count: int) -> list[int]:
  """The source frame shown at each 25 fps sample time of a span."""
  return [clip.source_frame_at(start_s + k / contract.VIDEO_FPS) for k in range(count)]


def expected_audio(clip: generator.GeneratedClip, start_s: float, count: int, margin: int = 0) -> np.ndarray:
  """The tone at the span's 16 kHz sample times (indices -margin .. count+margin), silence outside the media."""
  index = np.arange(-margin, count + margin)
  content_time = start_s + index / contract.AUDIO_SAMPLE_RATE - clip.audio_start_s
  tone = generator.tone_signal(content_time)
  return np.where(content_time < clip.spec.duration_s, tone, 0.0).astype(np.float64)


def audio_alignment(clip: generator.GeneratedClip, decoded) -> tuple[int, float]:
  """(lag, relative error): the shift in samples that best explains the decoded audio.

  lag > 0 means the decoded audio is late. The relative error is the mean
  squared difference at that lag over the tone's power; lossy codecs leave
  well under 1%, a wrong downmix gain or garbage far more.
  """
  decoded_audio = np.asarray(decoded.audio, np.float64)
  count = decoded_audio.size
  reference = expected_audio(clip, decoded.start_s, count, margin=_MAX_LAG)
  # errors[j] compares decoded[n] with reference at index n + j - margin, i.e. lag = margin - j.
  windows = np.lib.stride_tricks.sliding_window_view(reference, count)  # a view: no copy
  cumulative_energy = np.concatenate([[0.0], np.cumsum(reference**2)])
  window_energy = cumulative_energy[count:] - cumulative_energy[:-count]
  errors = window_energy - 2 * (windows @ decoded_audio) + np.sum(decoded_audio**2)
  best = int(np.argmin(errors))
  return _MAX_LAG - best, float(errors[best] / max(window_energy[best], 1e-9))


def assert_clip_matches(clip: generator.GeneratedClip, decoded, start_s: float, end_s: float) -> None:
  """Every frame, the audio alignment and all lengths of a decoded span."""
  assert len(decoded.jpeg_frames) == contract.num_frames(end_s - start_s)
  assert read_codes(decoded.jpeg_frames) == expected_codes(clip, start_s, len(decoded.jpeg_frames))
  assert decoded.audio.dtype == np.float32
  assert decoded.audio.shape == (contract.num_audio_samples(end_s - start_s),)
  assert decoded.has_audio == clip.spec.audio
  assert (decoded.frame_width, decoded.frame_height) == contract.resized_frame_size(clip.spec.width, clip.spec.height)
  first = Image.open(io.BytesIO(decoded.jpeg_frames[0]))
  assert (first.format, first.size) == ("JPEG", (decoded.frame_width, decoded.frame_height))
  assert (decoded.source_width, decoded.source_height) == (clip.spec.width, clip.spec.height)
  if not clip.spec.variable_frame_rate:
    assert math.isclose(decoded.source_fps, clip.spec.fps, rel_tol=1e-3)
  if clip.spec.audio:
    lag, relative_error = audio_alignment(clip, decoded)
    assert abs(lag) <= AUDIO_HOP_SAMPLES, f"audio is off by {lag} samples"
    timestamp_tick = contract.AUDIO_SAMPLE_RATE / generator.FORMATS[clip.spec.container][3]
    assert abs(lag) <= AUDIO_PRECISE_SAMPLES + timestamp_tick, f"audio is off by {lag} samples"
    assert relative_error < 0.02, f"audio differs from the tone by {relative_error:.1%} of its power"
  else:
    assert not decoded.audio.any()


@pytest.fixture
def check_clip():
  """check_clip(clip, decoded, start_s, end_s): asserts every frame, the audio and the lengths."""
  return assert_clip_matches


@pytest.fixture
def codes_of():
  """codes_of(jpeg_frames) -> the painted index of each frame."""
  return read_codes


@pytest.fixture
def alignment_of():
  """alignment_of(clip, decoded) -> (lag in samples, relative error)."""
  return audio_alignment
