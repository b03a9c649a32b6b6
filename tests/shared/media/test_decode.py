"""shared.media.decode against generated clips: every frame, the audio, every failure."""

from __future__ import annotations

import io
import math
import os
import pickle

import av
import numpy as np
import pytest
from PIL import Image

from shared import contract
from shared.media import decode, errors
from testsupport.media_server import MediaServer

NTSC = 30000 / 1001
NTSC_60 = 60000 / 1001

# (container, fps, start offset of the file's timestamps): every container,
# every common rate, zero and non-zero start times.
CONTAINER_CASES = [
    ("mp4", 25, 0.0),
    ("mp4", NTSC, 0.37),
    ("mp4", 50, 0.0),
    ("mp4", NTSC_60, 1.25),
    ("webm", 30, 0.0),
    ("webm", NTSC_60, 0.5),
    ("webm", 25, 2.0),
    ("mkv", 30, 0.0),
    ("mkv", 50, 0.25),
    ("mkv", NTSC, 1.5),
    ("mpg", 25, 0.0),
    ("mpg", NTSC, 0.0),
    ("mpg", 50, 0.0),
    ("mpg", NTSC_60, 0.0),
]


def _case_id(case) -> str:
  container, fps, offset = case
  return f"{container}-{fps:.3f}fps-offset{offset:g}"


@pytest.mark.parametrize("case", CONTAINER_CASES, ids=_case_id)
def test_every_frame_and_the_audio_match_the_source(case, make_clip, check_clip):
  container, fps, offset = case
  clip = make_clip(container=container, fps=fps, start_offset_s=offset)
  for start_s, end_s in ((0.0, clip.spec.duration_s), (0.93, 2.71)):  # the whole file, and a seek into it
    decoded = decode.decode_clip(clip.path, start_s, end_s)
    check_clip(clip, decoded, start_s, end_s)
    assert decoded.padded_frames <= 1  # at most the instant before the video's first frame
    assert decoded.decoded_duration_s == pytest.approx(end_s - start_s, abs=0.05)


@pytest.mark.parametrize("container", ["mp4", "webm", "mkv"])
def test_variable_frame_rate(container, make_clip, check_clip):
  clip = make_clip(container=container, fps=30, variable_frame_rate=True, seed=7)
  intervals = np.diff(clip.frame_times)
  assert intervals.max() > 1.9 * intervals.min()  # the clip really is variable
  for start_s, end_s in ((0.0, 3.0), (1.07, 2.5)):
    check_clip(clip, decode.decode_clip(clip.path, start_s, end_s), start_s, end_s)


def test_sample_times_on_frame_boundaries_pick_the_frame_starting_there(make_clip, codes_of):
  # At 50 fps every 25 fps sample time is exactly a frame's start.
  clip = make_clip(container="mkv", fps=50)
  assert codes_of(decode.decode_clip(clip.path, 0.0, 1.0).jpeg_frames) == [2 * k for k in range(25)]
  # 0.3 is not exact in binary floating point; it still means frame 15.
  assert codes_of(decode.decode_clip(clip.path, 0.3, 1.3).jpeg_frames) == [15 + 2 * k for k in range(25)]


def test_frames_repeat_when_the_source_is_slower_than_25_fps(make_clip, check_clip, codes_of):
  clip = make_clip(container="mp4", fps=10)
  decoded = decode.decode_clip(clip.path, 0.5, 2.5)
  check_clip(clip, decoded, 0.5, 2.5)
  assert codes_of(decoded.jpeg_frames)[:5] == [5, 5, 5, 6, 6]


def test_no_audio_stream_gives_silence(make_clip, check_clip):
  for container in ("mp4", "webm"):
    clip = make_clip(container=container, audio=False)
    decoded = decode.decode_clip(clip.path, 0.4, 2.4)
    check_clip(clip, decoded, 0.4, 2.4)
    assert decoded.has_audio is False
    assert decoded.decoded_duration_s == pytest.approx(2.0)


def test_mono_16khz_source_and_stereo_downmix_keep_the_level(make_clip, check_clip):
  # check_clip's error bound fails a downmix that sums channels (1.41x).
  for spec in (dict(container="mkv", audio_sample_rate=16_000, audio_channels=1),
               dict(container="mp4", audio_sample_rate=48_000, audio_channels=2)):
    clip = make_clip(**spec)
    decoded = decode.decode_clip(clip.path, 0.5, 2.5)
    check_clip(clip, decoded, 0.5, 2.5)
    assert np.abs(decoded.audio).max() == pytest.approx(0.5, abs=0.03)


def test_frame_size_options_and_portrait_sources(make_clip, check_clip, codes_of):
  clip = make_clip(container="webm", width=120, height=160)
  check_clip(clip, decode.decode_clip(clip.path, 0.2, 1.4), 0.2, 1.4)
  landscape = make_clip(container="mp4")
  options = decode.DecodeOptions(short_side=128, jpeg_quality=75, decoder_threads=0)
  decoded = decode.decode_clip(landscape.path, 0.2, 1.4, options)
  assert (decoded.frame_width, decoded.frame_height) == contract.resized_frame_size(160, 120, 128) == (170, 128)
  assert Image.open(io.BytesIO(decoded.jpeg_frames[0])).size == (170, 128)
  assert codes_of(decoded.jpeg_frames) == [landscape.source_frame_at(0.2 + k / 25) for k in range(30)]


def test_span_past_the_end_is_padded_and_says_so(make_clip, codes_of, alignment_of):
  clip = make_clip(container="mkv", duration_s=2.0)
  decoded = decode.decode_clip(clip.path, 1.5, 3.0)
  times = 1.5 + np.arange(contract.num_frames(1.5)) / contract.VIDEO_FPS
  video_end = clip.frame_times[-1] + 1 / clip.spec.fps
  assert len(decoded.jpeg_frames) == len(times)
  assert codes_of(decoded.jpeg_frames) == [clip.source_frame_at(t) for t in times]  # last frame repeated
  assert decoded.padded_frames == int(np.sum(times >= video_end - 1e-9)) > 0
  assert decoded.decoded_duration_s == pytest.approx(0.5, abs=1e-3)
  assert decoded.audio.shape == (contract.num_audio_samples(1.5),)
  end_of_media = round(0.5 * contract.AUDIO_SAMPLE_RATE)
  assert not decoded.audio[end_of_media + 200:].any()
  assert np.abs(decoded.audio[:end_of_media - 200]).max() > 0.4
  lag, _ = alignment_of(clip, decoded)
  assert abs(lag) <= 2


def test_span_entirely_after_the_end(make_clip, codes_of):
  clip = make_clip(container="mp4", duration_s=2.0)
  decoded = decode.decode_clip(clip.path, 5.0, 6.0)
  assert decoded.decoded_duration_s == 0.0
  assert decoded.padded_frames == 25
  assert set(codes_of(decoded.jpeg_frames)) == {len(clip.frame_times) - 1}
  assert not decoded.audio.any()


def test_seeks_near_the_span_and_recovers_when_a_seek_lands_late(make_clip, check_clip, monkeypatch):
  clip = make_clip(container="mpg", fps=25, duration_s=4.0)  # MPEG-2: a keyframe every 12 frames
  seeks = []
  real_seek = decode._seek

  def recording_seek(container, stream, absolute_time):
    seeks.append(float(absolute_time))
    # The first seek lands 1.5 s later than asked, as a sloppy demuxer might.
    late = 1.5 if len(seeks) == 1 else 0.0
    return real_seek(container, stream, absolute_time + decode.Fraction(late))

  monkeypatch.setattr(decode, "_seek", recording_seek)
  decoded = decode.decode_clip(clip.path, 2.3, 3.5)
  check_clip(clip, decoded, 2.3, 3.5)
  assert len(seeks) == 2 and seeks[1] < seeks[0]  # retried earlier after landing late


def test_result_is_complete_and_plain(make_clip):
  clip = make_clip(container="webm")
  decoded = decode.ClipDecoder().decode(clip.path, 1.0, 2.0)
  assert decoded.path == clip.path and (decoded.start_s, decoded.end_s) == (1.0, 2.0)
  assert all(isinstance(jpeg, bytes) for jpeg in decoded.jpeg_frames)
  decoder = pickle.loads(pickle.dumps(decode.ClipDecoder(decode.DecodeOptions(short_side=64))))
  assert decoder.options.short_side == 64


def test_an_http_url_is_read_by_ffmpeg_itself_and_decodes_as_the_file(make_clip, check_clip):
  clip = make_clip(container="mp4", fps=25, duration_s=3.0)
  with MediaServer(os.path.dirname(clip.path)) as server:
    url = server.url(os.path.basename(clip.path))
    decoded = decode.decode_clip(url, 1.1, 2.3)
    ranged = [r for r in server.requests() if r.range_header is not None]
  check_clip(clip, decoded, 1.1, 2.3)
  assert decoded.path == url and ranged  # FFmpeg seeks with Range requests; nothing goes through shared.files


# ---------------------------------------------------------------------------
# Failures.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_audio_only_file_raises_no_video_stream(container, make_clip):
  clip = make_clip(container=container, video=False)
  with pytest.raises(errors.NoVideoStreamError) as raised:
    decode.decode_clip(clip.path, 0.0, 1.0)
  assert clip.path in str(raised.value) and "no video stream" in str(raised.value)
  assert isinstance(raised.value, errors.MediaError)


@pytest.mark.parametrize("container, start_offset_s", [("mp4", 0.0), ("webm", 0.5), ("mkv", 0.0)])
def test_audio_alone_when_allowed_gives_the_audio_and_black_frames(container, start_offset_s, make_clip,
                                                                  alignment_of):
  clip = make_clip(container=container, video=False, start_offset_s=start_offset_s)
  decoder = decode.ClipDecoder(decode.DecodeOptions(short_side=64))
  # From the middle, so the decoder seeks in the audio alone; on the file's clock, from its first timestamp.
  decoded = decoder.decode(clip.path, 1.3, 2.8, require_video=False)
  assert (decoded.has_video, decoded.has_audio) == (False, True)
  assert len(decoded.jpeg_frames) == contract.num_frames(1.5) and len(set(decoded.jpeg_frames)) == 1
  black = np.asarray(Image.open(io.BytesIO(decoded.jpeg_frames[0])))
  assert black.shape == (64, 64, 3) and black.max() <= 2
  assert (decoded.frame_width, decoded.frame_height) == contract.blank_frame_size(64) == (64, 64)
  assert (decoded.source_fps, decoded.source_width, decoded.source_height, decoded.padded_frames) == (0.0, 0, 0, 0)
  assert decoded.decoded_duration_s == pytest.approx(1.5, abs=1e-3)
  lag, relative_error = alignment_of(clip, decoded)
  assert abs(lag) <= 2 + contract.AUDIO_SAMPLE_RATE / 1000 and relative_error < 0.02, (lag, relative_error)


def test_audio_alone_past_its_end_is_silence_and_says_so(make_clip):
  clip = make_clip(container="mkv", video=False)
  decoded = decode.ClipDecoder().decode(clip.path, 2.5, 4.5, require_video=False)
  assert decoded.decoded_duration_s == pytest.approx(0.5, abs=1e-3)
  assert not decoded.audio[contract.AUDIO_SAMPLE_RATE:].any() and decoded.audio[:4000].any()


def _write(path, data: bytes) -> str:
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"hello, not a video\n" * 50, b"\x00" * 10000],
                         ids=["random", "empty", "text", "zeros"])
def test_non_media_files_raise_corrupt(content, tmp_path):
  path = _write(tmp_path / "clip.mp4", content)
  with pytest.raises(errors.CorruptMediaError) as raised:
    decode.decode_clip(path, 0.0, 1.0)
  assert path in str(raised.value)


def test_missing_file_and_directory_raise_unreadable(tmp_path):
  for path in (str(tmp_path / "missing.mp4"), str(tmp_path)):
    with pytest.raises(errors.UnreadableMediaError) as raised:
      decode.decode_clip(path, 0.0, 1.0)
    assert path in str(raised.value)


def test_truncated_mp4_raises_corrupt(make_clip, tmp_path):
  clip = make_clip(container="mp4")
  data = open(clip.path, "rb").read()
  path = _write(tmp_path / "cut.mp4", data[:len(data) * 9 // 10])  # the index (moov) is at the end
  with pytest.raises(errors.CorruptMediaError) as raised:
    decode.decode_clip(path, 0.0, 1.0)
  assert path in str(raised.value)


@pytest.mark.parametrize("container", ["mkv", "webm"])
def test_truncated_matroska_decodes_what_is_there_and_refuses_what_is_not(container, make_clip, check_clip, tmp_path):
  clip = make_clip(container=container, duration_s=4.0)
  data = open(clip.path, "rb").read()
  path = _write(tmp_path / f"cut.{container}", data[:len(data) // 2])
  intact = decode.decode_clip(path, 0.2, 1.2)
  check_clip(clip, intact, 0.2, 1.2)
  with pytest.raises(errors.TruncatedMediaError) as raised:
    decode.decode_clip(path, 1.0, 4.0)
  assert path in str(raised.value) and "declares" in str(raised.value)
  assert isinstance(raised.value, errors.CorruptMediaError)


@pytest.mark.parametrize("clock_origin_s", [None, 0.0], ids=["own-clock", "presentation-clock"])
def test_a_late_starting_matroska_file_is_truncated_only_when_cut(clock_origin_s, make_clip, tmp_path):
  # Matroska declares where it ends (5.5 s), not how long it lasts from its
  # first timestamp (1.5 s): a span past the end of the whole file is padded...
  clip = make_clip(container="mkv", duration_s=4.0, start_offset_s=1.5)
  shift = 0.0 if clock_origin_s is None else 1.5
  complete = decode.decode_clip(clip.path, 3.0 + shift, 6.0 + shift, clock_origin_s=clock_origin_s)
  assert complete.padded_frames == 50
  # ...and one past the end of a cut file is refused.
  data = open(clip.path, "rb").read()
  path = _write(tmp_path / f"cut_late_{shift}.mkv", data[:len(data) // 2])
  with pytest.raises(errors.TruncatedMediaError):
    decode.decode_clip(path, 2.5 + shift, 5.0 + shift, clock_origin_s=clock_origin_s)


def test_truncated_mpeg_ps_pads_and_records_the_shortfall(make_clip, tmp_path):
  # MPEG-PS declares no duration, so a cut file looks like a shorter one.
  clip = make_clip(container="mpg", duration_s=4.0)
  data = open(clip.path, "rb").read()
  path = _write(tmp_path / "cut.mpg", data[:len(data) // 2])
  decoded = decode.decode_clip(path, 0.0, 4.0)
  assert len(decoded.jpeg_frames) == 100
  assert decoded.decoded_duration_s < 3.0 and decoded.padded_frames > 25


@pytest.mark.parametrize("span", [(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (-0.5, 1.0), (math.nan, 1.0), (0.0, math.inf)],
                         ids=["zero", "zero-late", "reversed", "negative-start", "nan", "infinite"])
def test_invalid_spans_raise_value_errors(span, make_clip):
  clip = make_clip(container="mkv")
  with pytest.raises(errors.InvalidSpanError):
    decode.decode_clip(clip.path, *span)
  assert issubclass(errors.InvalidSpanError, ValueError)


def test_deadline_bounds_the_decode(make_clip):
  clip = make_clip(container="mp4")
  with pytest.raises(errors.DecodeTimeoutError) as raised:
    decode.decode_clip(clip.path, 0.0, 3.0, decode.DecodeOptions(deadline_s=1e-9))
  assert clip.path in str(raised.value)


def test_errors_survive_pickling():
  error = pickle.loads(pickle.dumps(errors.TruncatedMediaError("/data/a.mp4", "stops early")))
  assert isinstance(error, errors.TruncatedMediaError)
  assert (error.path, error.reason, str(error)) == ("/data/a.mp4", "stops early", "/data/a.mp4: stops early")


@pytest.mark.parametrize("bad", [dict(short_side=0), dict(jpeg_quality=0), dict(deadline_s=0),
                                 dict(decoder_threads=-1), dict(audio_preroll_s=-1), dict(max_decode_errors=-1)])
def test_options_are_validated(bad):
  with pytest.raises(ValueError):
    decode.DecodeOptions(**bad)


def test_levels_survive_the_range_conversions(make_clip):
  # The generator paints video-range black (16) and white (235) in RGB; a
  # limited/full range mix-up would show as ~30 and ~218.
  clip = make_clip(container="mp4")
  decoded = decode.decode_clip(clip.path, 0.0, 0.2)
  pixels = np.asarray(Image.open(io.BytesIO(decoded.jpeg_frames[3])))
  assert np.percentile(pixels, 1) == pytest.approx(16, abs=4)
  assert np.percentile(pixels, 99) == pytest.approx(235, abs=4)


def test_numpy_numbers_are_valid_span_bounds(make_clip, codes_of):
  clip = make_clip(container="mkv")
  decoded = decode.decode_clip(clip.path, np.float32(0.5), np.int64(1))
  assert codes_of(decoded.jpeg_frames) == [clip.source_frame_at(0.5 + k / 25) for k in range(13)]
  with pytest.raises(errors.InvalidSpanError):
    decode.decode_clip(clip.path, "0", 1.0)


# ---------------------------------------------------------------------------
# Memory: frames leave the decoder as they are made.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("audio", [True, False], ids=["with-audio", "video-only"])
def test_frames_stream_out_while_the_span_is_decoded(audio, make_clip, codes_of):
  # 50 fps, as EPIC-KITCHENS; a span of 21.7 s after a seek. Frame k must come
  # out once the decoder reaches the source frame after t_k, never after the
  # whole span: what a caller does not keep is not held anywhere.
  clip = make_clip(container="mp4", fps=50, duration_s=30.0, audio=audio)
  start_s, end_s = 7.3, 29.0
  frames = decode.ClipDecoder(decode.DecodeOptions(short_side=64)).stream(clip.path, start_s, end_s)
  lags, jpegs = [], []
  for k, jpeg in enumerate(frames):
    lags.append(frames.decoded_until_s - (start_s + k / contract.VIDEO_FPS))
    jpegs.append(jpeg)
  assert codes_of(jpegs) == [clip.source_frame_at(start_s + k / contract.VIDEO_FPS) for k in range(len(jpegs))]
  assert len(jpegs) == contract.num_frames(end_s - start_s)
  # One source frame ahead (20 ms)...
  assert max(lags[2 * contract.VIDEO_FPS:]) <= 0.1
  # ...and right after the seek at most until the audio shows where it landed.
  assert max(lags) <= (decode._MAX_UNCONFIRMED_FRAMES + 1) / contract.VIDEO_FPS
  if not audio:
    assert max(lags) <= 0.1
  # The rest of the decode, without the frames the caller did not ask to keep.
  assert frames.clip.jpeg_frames == [] and frames.clip.has_audio == audio
  assert frames.clip.audio.shape == (contract.num_audio_samples(end_s - start_s),)
  assert frames.clip.decoded_duration_s == pytest.approx(end_s - start_s)


def test_a_stream_is_iterated_once_and_checks_its_span_at_once(make_clip):
  clip = make_clip(container="mkv")
  frames = decode.ClipDecoder().stream(clip.path, 0.0, 0.2)
  assert frames.clip is None
  assert len(list(frames)) == 5 and frames.clip is not None
  with pytest.raises(RuntimeError):
    iter(frames)
  with pytest.raises(errors.InvalidSpanError):
    decode.ClipDecoder().stream(clip.path, 1.0, 0.5)


# ---------------------------------------------------------------------------
# The span's clock.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("container", ["mp4", "mpg"])
def test_clock_origin_moves_the_spans_zero(container, make_clip, codes_of):
  # By default second 0 is the media's first timestamp; with clock_origin_s=0
  # it is presentation time 0, as in a section that keeps its source's clock.
  clip = make_clip(container=container, fps=25, start_offset_s=1.5 if container == "mp4" else 0.0)
  with av.open(clip.path) as container_file:
    first_timestamp = container_file.start_time / av.time_base
  assert first_timestamp > 0.5  # the mp4 asked for it, the MPEG-PS muxer adds 0.54 s of its own
  for start_s, end_s in ((0.0, 1.0), (0.93, 2.71)):
    own_clock = decode.decode_clip(clip.path, start_s, end_s)
    shifted = decode.decode_clip(clip.path, start_s + first_timestamp, end_s + first_timestamp, clock_origin_s=0.0)
    assert codes_of(shifted.jpeg_frames) == codes_of(own_clock.jpeg_frames)
    np.testing.assert_allclose(shifted.audio, own_clock.audio, atol=1e-6)
  # Seconds before the media's first timestamp are padded with its first frame, and silent.
  early = decode.decode_clip(clip.path, 0.0, first_timestamp + 0.4, clock_origin_s=0.0)
  before = contract.num_frames(first_timestamp)
  assert codes_of(early.jpeg_frames)[:before] == [0] * before
  assert early.padded_frames >= before - 1
  assert not early.audio[:int((first_timestamp - 0.05) * contract.AUDIO_SAMPLE_RATE)].any()
  assert early.decoded_duration_s == pytest.approx(0.4, abs=0.05)
