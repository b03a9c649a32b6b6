"""Verification of downloads: by decoding (check_media) and from packets alone (check_packets)."""

import pytest

from pipelines.download import verify
from shared.failures import Reason
from shared.media import generator

CHECKS = [verify.check_media, verify.check_packets]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  directory = tmp_path_factory.mktemp("verify")
  made = {}
  for container in ("mp4", "webm", "mkv"):
    made[container] = generator.write_clip(str(directory / f"clip.{container}"), generator.ClipSpec(
        duration_s=6, width=160, height=120, container=container)).path
  made["silent"] = generator.write_clip(str(directory / "silent.mp4"), generator.ClipSpec(
      duration_s=3, width=160, height=120, audio=False)).path
  made["audio_only"] = generator.write_clip(str(directory / "audio.mkv"), generator.ClipSpec(
      duration_s=3, container="mkv", video=False)).path
  data = open(made["mkv"], "rb").read()
  cut = directory / "cut.mkv"  # Matroska stays readable when cut: its index is optional
  cut.write_bytes(data[:len(data) // 2])
  made["cut"] = str(cut)
  junk = directory / "junk.mp4"
  junk.write_text("<html>not a video</html>")
  made["junk"] = str(junk)
  return made


@pytest.mark.parametrize("container", ["mp4", "webm", "mkv"])
def test_packets_see_the_coverage_decoding_sees(clips, container):
  decoded = verify.check_media(clips[container], 1.0, 5.0)
  from_packets = verify.check_packets(clips[container], 1.0, 5.0)
  for kind in ("video", "audio"):
    a, b = getattr(decoded, kind), getattr(from_packets, kind)
    assert b.end_s == pytest.approx(a.end_s, abs=0.05), kind
    assert b.first_s == pytest.approx(a.first_s, abs=0.05), kind
  assert (from_packets.width, from_packets.height) == (160, 120)


@pytest.mark.parametrize("check", CHECKS)
def test_a_file_cut_short_does_not_cover_the_span(clips, check):
  with pytest.raises(verify.InvalidMediaError) as caught:
    check(clips["cut"], 1.0, 5.5)
  assert caught.value.reason in (Reason.SPAN_NOT_COVERED, Reason.UNDECODABLE)
  check(clips["cut"], 0.5, 1.5)  # the part that arrived is fine


@pytest.mark.parametrize("check", CHECKS)
def test_missing_streams_and_non_media(clips, check):
  with pytest.raises(verify.InvalidMediaError) as caught:
    check(clips["audio_only"], 0.0, 2.0)
  assert caught.value.reason is Reason.MISSING_STREAM
  with pytest.raises(verify.InvalidMediaError) as caught:
    check(clips["junk"], 0.0, 2.0)
  assert caught.value.reason is Reason.NOT_MEDIA
  assert check(clips["silent"], 0.0, 2.0).audio is None  # audio is optional unless required
  with pytest.raises(verify.InvalidMediaError):
    check(clips["silent"], 0.0, 2.0, require_audio=True)
