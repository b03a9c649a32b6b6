"""shared.media.generator: the frame code survives painting, resizing and JPEG; the truth it returns."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.media import generator


@pytest.mark.parametrize("size", [(160, 120), (640, 360), (40, 32)])
def test_frame_code_round_trip(size):
  width, height = size
  for index in (0, 1, 2, 5, 1000, 2**20 - 1, 0b10101010101010101010):
    image = generator.paint_frame_code(index, width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert generator.read_frame_code(image) == index
    assert generator.read_frame_code(image[:, :, 0]) == index  # gray works too


def test_frame_code_survives_resize_and_jpeg():
  for index in (0, 77, 123_456, 2**20 - 1):
    image = Image.fromarray(generator.paint_frame_code(index, 160, 120)).resize((342, 256), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    assert generator.read_frame_code(np.asarray(Image.open(buffer))) == index


def test_frame_code_range_is_checked():
  with pytest.raises(ValueError):
    generator.paint_frame_code(2**20, 160, 120)
  with pytest.raises(ValueError):
    generator.paint_frame_code(-1, 160, 120)


def test_tone_steps_each_second_and_is_silent_before_zero():
  assert generator.tone_frequency(0) == 300.0 and generator.tone_frequency(15) == 1050.0
  assert generator.tone_frequency(16) == 300.0
  assert generator.tone_signal(np.array([-0.5, -1e-6]))[...].tolist() == [0.0, 0.0]
  t = np.arange(0, 3, 1 / 16000)
  signal = generator.tone_signal(t)
  assert np.abs(signal).max() <= 0.5
  assert np.abs(np.diff(signal)).max() < 0.25  # continuous across the steps


def test_written_clip_truth_matches_its_frames(make_clip):
  clip = make_clip(container="mkv", fps=30, start_offset_s=0.5)
  assert len(clip.frame_times) == 90
  np.testing.assert_allclose(np.diff(clip.frame_times), 1 / 30, atol=1e-3)  # ms timestamps
  assert clip.source_frame_at(-1.0) == 0 and clip.source_frame_at(99.0) == 89
  assert clip.source_frame_at(clip.frame_times[10]) == 10  # a frame starts its own interval
  assert clip.audio_start_s == pytest.approx(0.0, abs=1e-3)


def test_mpeg_ps_audio_truth_includes_the_decoder_delay(make_clip):
  # MP2 decoders output 481 samples of filterbank delay first; MPEG-PS cannot
  # tell them to drop it, so the tone starts that much after the stream does.
  clip = make_clip(container="mpg", fps=25)
  assert clip.audio_start_s == pytest.approx(481 / clip.audio_sample_rate, abs=2 / clip.audio_sample_rate)


def test_spec_validation():
  with pytest.raises(ValueError):
    generator.ClipSpec(container="avi")
  with pytest.raises(ValueError):
    generator.ClipSpec(width=161)
  with pytest.raises(ValueError):
    generator.ClipSpec(video=False, audio=False)
  with pytest.raises(ValueError):
    generator.ClipSpec(container="mpg", variable_frame_rate=True)


def test_late_start_clips_start_where_they_say(tmp_path):
  import av

  clips = generator.write_late_start_clips(str(tmp_path), duration_s=1.0)
  assert tuple(clips) == generator.LATE_START_NAMES
  first_timestamps = {}
  for name, clip in clips.items():
    with av.open(clip.path) as container:
      first_timestamps[name] = container.start_time / av.time_base
      # The truth is on the clock from that first timestamp: frame n is shown at frame_times[n].
      for frame in container.decode(video=0):
        shown_at = frame.time - first_timestamps[name]
        assert generator.read_frame_code(frame.to_ndarray(format="rgb24")) == clip.source_frame_at(shown_at)
    assert (clip.audio_start_s is not None) == clip.spec.audio
  assert first_timestamps["late_mpg_video"] == pytest.approx(generator.MPEG_PS_FIRST_TIMESTAMP_S)
  assert first_timestamps["late_mp4_video"] == pytest.approx(generator.MPEG_PS_FIRST_TIMESTAMP_S)
  # Audio starts the media a little earlier: MP2's and AAC's coding delays.
  assert 0.5 < first_timestamps["late_mpg_av"] < generator.MPEG_PS_FIRST_TIMESTAMP_S
  assert 0.5 < first_timestamps["late_mp4_av"] < generator.MPEG_PS_FIRST_TIMESTAMP_S
  assert clips["late_mp4_av"].frame_times[0] == pytest.approx(generator.MPEG_PS_FIRST_TIMESTAMP_S
                                                              - first_timestamps["late_mp4_av"])
