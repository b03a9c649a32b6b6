"""Fixtures for the Beam build tests: real media on a real local server, and checks that read shards back.

Builds here run the real thing: yt-dlp and ffmpeg fetch sections from a
MediaServer on 127.0.0.1, PyAV decodes them, Beam runs the pipeline on the
local runner. The media is generated once per session (every frame shows its
own index, the audio is a tone whose pitch steps at whole seconds), so a test
can tell exactly which source frame and which instant of the source each
stored frame and log-mel row came from.

Each test gives its clips their own YouTube ids (aliases of the generated
files), so faults injected for one test never touch another. The fixtures
here are named apart from those of tests/pipelines/download/conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import os
import pathlib
import threading
from typing import Iterator, Optional
from unittest import mock

import apache_beam as beam
import numpy as np
import pytest
from PIL import Image

from shared import contract, records
from shared.manifest import read_manifest
from shared.media import generator, logmel
from testsupport.media_server import Fault, MediaServer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ANNOTATIONS = REPO_ROOT / "tests" / "data" / "annotations"

# Stored frames this small keep JPEG work low; the 4x5 frame-code grid still
# reads back exactly from a 85x64 JPEG.
TEST_SHORT_SIDE = 64
# A stalled server fails after 1 s; one retry, after ~50 ms. The failure
# classes are the same as with the defaults, only sooner.
FAST_BUILD_ARGS = (
    f"--frame_short_side={TEST_SHORT_SIDE}", "--socket_timeout=1", "--max_attempts=2", "--retry_base_delay=0.05",
    "--progress_interval=0")
IN_MEMORY = "--direct_running_mode=in_memory"
SOURCE_SIZE = (160, 120)
SOURCE_SECONDS = 12.0  # a 10 s VGGSound clip starting at 0, 1 or 2 s fits


# ---------------------------------------------------------------------------
# Media and the server.
# ---------------------------------------------------------------------------
class SourceMedia:
  """The generated sources (served by file name) and what they hold.

  Attributes:
    directory: the served directory.
    av_mp4: h264/aac mp4, 25 fps: sample times fall exactly on frame starts.
    av_webm: vp9/opus webm, 30 fps: sample times fall between frames.
    silent_mp4: h264 mp4 without an audio stream.
    late_start: generator.LATE_START_NAMES -> sources whose first timestamp
      is 0.54 s (MPEG-PS and MP4, with and without audio), served as NAME.mpg
      / NAME.mp4.
  """

  def __init__(self, directory: str):
    self.directory = directory
    width, height = SOURCE_SIZE
    common = dict(duration_s=SOURCE_SECONDS, width=width, height=height)
    self.av_mp4 = generator.write_clip(os.path.join(directory, "av.mp4"), generator.ClipSpec(fps=25.0, **common))
    self.av_webm = generator.write_clip(os.path.join(directory, "av.webm"),
                                        generator.ClipSpec(fps=30.0, container="webm", **common))
    self.silent_mp4 = generator.write_clip(os.path.join(directory, "silent.mp4"),
                                           generator.ClipSpec(fps=25.0, audio=False, **common))
    self.late_start = generator.write_late_start_clips(directory, **common)

  def by_name(self, name: str) -> generator.GeneratedClip:
    clips = (self.av_mp4, self.av_webm, self.silent_mp4, *self.late_start.values())
    return {os.path.basename(c.path): c for c in clips}[name]


@pytest.fixture(scope="session")
def source_media(tmp_path_factory) -> SourceMedia:
  return SourceMedia(str(tmp_path_factory.mktemp("build_media")))


@pytest.fixture(scope="session")
def media_server(source_media) -> Iterator[MediaServer]:
  with MediaServer(source_media.directory) as running:
    yield running


_id_counter = itertools.count()
_id_lock = threading.Lock()


def new_youtube_id(tag: str) -> str:
  """An unused, valid 11-character YouTube id that starts with `tag` (a readable hint)."""
  with _id_lock:
    number = next(_id_counter)
  return f"{tag[:5]}_{number:04d}".ljust(11, "x")[:11]


@pytest.fixture(scope="session")
def serve(media_server):
  """serve(tag, target=None, fault=None, ytid=None) -> ytid, served at /{ytid}.mp4.

  target None serves nothing (the id is missing from the server). The URL
  always ends in .mp4: the build has one URL template, and a webm body behind
  it is downloaded and remuxed like any other.
  """

  def serve_as(tag: str, target: Optional[str] = None, fault: Optional[Fault] = None,
               ytid: Optional[str] = None) -> str:
    ytid = ytid or new_youtube_id(tag)
    if target is not None:
      media_server.alias(f"{ytid}.mp4", target)
    if fault is not None:
      media_server.inject(f"{ytid}.mp4", fault)
    return ytid

  return serve_as


@pytest.fixture(scope="session")
def url_template(media_server) -> str:
  return media_server.url_template("{ytid}.mp4")


def requests_for(server: MediaServer, ytids) -> dict[str, int]:
  """Requests the server saw per YouTube id."""
  return {ytid: server.request_count(f"{ytid}.mp4") for ytid in ytids}


# ---------------------------------------------------------------------------
# Beam results: the metrics of a pipeline that run_build runs and discards.
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def pipeline_results() -> Iterator[list]:
  """Keeps the PipelineResult of every Beam pipeline run inside the block."""
  kept = []
  original_run = beam.Pipeline.run

  def run_and_keep(pipeline, *args, **kwargs):
    result = original_run(pipeline, *args, **kwargs)
    kept.append(result)
    return result

  with mock.patch.object(beam.Pipeline, "run", run_and_keep):
    yield kept


def counters(result) -> dict[str, int]:
  """Committed Beam counters of a finished pipeline, by "namespace/name", summed over steps."""
  totals: dict[str, int] = {}
  for counter in result.metrics().query()["counters"]:
    key = f"{counter.key.metric.namespace}/{counter.key.metric.name}"
    totals[key] = totals.get(key, 0) + counter.committed
  return totals


# ---------------------------------------------------------------------------
# Files of a build.
# ---------------------------------------------------------------------------
def write_lines(path: pathlib.Path, lines) -> str:
  path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
  return str(path)


def snapshot(directory) -> dict[str, tuple[int, int, str]]:
  """Every file under a directory: relative path -> (size, mtime_ns, sha256)."""
  found = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      stat = os.stat(path)
      found[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns, digest)
  return found


def read_build(output_dir) -> dict[str, records.ClipRecord]:
  """Every record of a finished build, by clip id, read from its TFRecord shards."""
  manifest = read_manifest(str(output_dir))
  found = {}
  for name in manifest.shards["tfrecord"]:
    for serialized in records.read_tfrecord(os.path.join(output_dir, name)):
      record = records.decode(serialized)
      assert record.clip_id not in found, f"{record.clip_id} is in two shards"
      found[record.clip_id] = record
  return found


# ---------------------------------------------------------------------------
# What the records must hold, against the generated truth.
# ---------------------------------------------------------------------------
def frame_codes(jpeg_frames) -> list[int]:
  """The source frame index painted into each stored JPEG."""
  return [generator.read_frame_code(np.asarray(Image.open(io.BytesIO(jpeg)))) for jpeg in jpeg_frames]


def expected_frame_codes(clip: generator.GeneratedClip, start_s: float, count: int) -> list[int]:
  """The contract: frame k is the source frame shown at start + k/25 (source clock)."""
  return [clip.source_frame_at(start_s + k / contract.VIDEO_FPS) for k in range(count)]


@dataclasses.dataclass(frozen=True)
class ToneStep:
  """Where a pitch step of the tone shows in a log-mel: expected and measured row."""

  expected_row: float
  measured_row: float
  bins: tuple[int, int]


def tone_peak_bin(frequency_hz: float) -> int:
  """The log-mel bin where a pure tone of this frequency peaks."""
  t = np.arange(contract.AUDIO_SAMPLE_RATE // 2) / contract.AUDIO_SAMPLE_RATE
  melspec = logmel.log_mel(0.5 * np.sin(2 * np.pi * frequency_hz * t).astype(np.float32))
  return int(np.bincount(melspec[5:-5].argmax(axis=1)).argmax())


def tone_steps(melspec: np.ndarray, clip: generator.GeneratedClip, start_s: float) -> list[ToneStep]:
  """Each whole-second pitch step inside the span: the row it should be at, the row it is at.

  The tone of content second n plays from source time audio_start_s + n, so
  the step into second n belongs at log-mel row (audio_start_s + n - start) * 100.
  The measured row is where the new pitch's bin overtakes the old one's,
  interpolated between rows; a row is one 10 ms hop.
  """
  steps = []
  rows = melspec.shape[0]
  rate = contract.MEL_FRAMES_PER_SECOND
  first = int(np.ceil(start_s - clip.audio_start_s))
  for second in range(max(first, 1), int(clip.spec.duration_s)):
    expected = (clip.audio_start_s + second - start_s) * rate
    if expected < 10 or expected > rows - 10:
      continue
    old_bin = tone_peak_bin(float(generator.tone_frequency(second - 1)))
    new_bin = tone_peak_bin(float(generator.tone_frequency(second)))
    lo, hi = int(expected) - 8, int(expected) + 9
    lead = melspec[lo:hi, new_bin] - melspec[lo:hi, old_bin]
    assert lead[0] < 0 < lead[-1], f"no pitch step near row {expected:.1f}: {np.round(lead, 1)}"
    after = int(np.argmax(lead > 0))  # the first row where the new pitch leads
    measured = lo + after - lead[after] / (lead[after] - lead[after - 1])
    steps.append(ToneStep(expected, float(measured), (old_bin, new_bin)))
  return steps


# Spans come in exact (as annotated): the record holds them as float32, and
# 9.15 -> 10.95 read back from it is 1.8000002 s, one frame more than 1.8 s.
def assert_frames_match(record: records.ClipRecord, clip: generator.GeneratedClip, start_s: float,
                        end_s: float) -> None:
  """Every stored frame is the source frame at start + k/25, and there is one per 1/25 s of the span."""
  assert len(record.jpeg_frames) == contract.num_frames(end_s - start_s)
  assert frame_codes(record.jpeg_frames) == expected_frame_codes(clip, start_s, len(record.jpeg_frames))


def ideal_log_mel(clip: generator.GeneratedClip, start_s: float, num_samples: int) -> np.ndarray:
  """The log-mel of the exact tone a span of the source holds (no codec, no resampler)."""
  times = start_s + np.arange(num_samples) / contract.AUDIO_SAMPLE_RATE - clip.audio_start_s
  return logmel.log_mel(generator.tone_signal(times))


# The measured step lies a fraction of a row before its nominal row (the
# pre-emphasis favours the higher pitch), the same in the stored and in the
# ideal log-mel; against the ideal one the codecs leave < 0.1 row, and a 5 ms
# misplacement of the audio shows as 0.5 row.
STEP_TOLERANCE_ROWS = 0.25


def assert_audio_aligned(record: records.ClipRecord, clip: generator.GeneratedClip, start_s: float,
                         end_s: float) -> None:
  """The log-mel shows the tone's pitch steps at the right rows.

  Within one 10 ms hop of where the step belongs, and within a quarter hop of
  where the exact tone's log-mel has it.
  """
  assert record.has_audio
  assert record.num_audio_samples == contract.num_audio_samples(end_s - start_s)
  stored = tone_steps(np.asarray(record.melspec), clip, start_s)
  ideal = tone_steps(ideal_log_mel(clip, start_s, record.num_audio_samples), clip, start_s)
  assert stored, "the span holds no pitch step to check"
  for step, reference in zip(stored, ideal):
    assert step.bins == reference.bins
    assert abs(step.measured_row - step.expected_row) <= 1.0, step
    assert abs(step.measured_row - reference.measured_row) <= STEP_TOLERANCE_ROWS, (step, reference)


def assert_silent(record: records.ClipRecord) -> None:
  """A clip without audio has the log-mel of silence: one value, the log floor."""
  assert not record.has_audio
  melspec = np.asarray(record.melspec)
  assert np.all(melspec == melspec.flat[0])
