"""Where a clip's local file lies and what its time 0 is: --video_pattern, read and applied."""

from __future__ import annotations

import pytest

from pipelines import local_files
from pipelines.local_files import LocalFileFinder, LocalSourceError, TimeBase, VideoPattern
from pipelines.sources.rows import ClipRequest


def _request(start_s: float = 300.0, end_s: float = 310.0, ytid: str = "abcdefghijk") -> ClipRequest:
  return ClipRequest(dataset="vggsound", clip_id=f"yt_{ytid}_{round(start_s * 1000):09d}", source_id=ytid,
                     start_s=start_s, end_s=end_s, label_indices=(0,), label_names=("x",))


@pytest.mark.parametrize("text, name", [
    ("clip:{ytid}_{start:06d}.mp4", "abcdefghijk_000300.mp4"),  # VGGSound's release
    ("clip:Y{ytid}.wav", "Yabcdefghijk.wav"),
    ("clip:{ytid}_{start:.3f}_{end:.3f}.flac", "abcdefghijk_300.000_310.000.flac"),
    ("clip:{clip_id}.m4a", "yt_abcdefghijk_000300000.m4a"),
    ("video:{ytid}/{ytid}.mkv", "abcdefghijk/abcdefghijk.mkv"),
    ("video:{ytid}_{start_ms}-{end_ms}.mp4", "abcdefghijk_300000-310000.mp4"),
])
def test_patterns_name_a_clips_file(text, name):
  assert VideoPattern.parse(text).name_for(_request()) == (name, "")


def test_each_kind_carries_its_time_base():
  clip, video = VideoPattern.parse("clip:{ytid}_{start:06d}.{ext}"), VideoPattern.parse("video:{ytid}.{ext}")
  request = _request(300.0, 310.0)
  assert (clip.time_base, clip.file_start_s(request)) == (TimeBase.CLIP, 0.0)  # YTID_000300.mp4: 300 s at its 0
  assert (video.time_base, video.file_start_s(request)) == (TimeBase.VIDEO, 300.0)
  assert clip.name_for(request) == ("abcdefghijk_000300.", "")  # {ext}: matched against the files there


def test_a_whole_second_name_does_not_name_a_clip_starting_mid_second():
  assert VideoPattern.parse("clip:{ytid}_{start:06d}.mp4").name_for(_request(300.5, 310.5)) is None
  assert VideoPattern.parse("clip:{ytid}_{start:.1f}.mp4").name_for(_request(300.5, 310.5)) == (
      "abcdefghijk_300.5.mp4", "")
  assert VideoPattern.parse("clip:{ytid}.mp4").name_for(_request(ytid="../etc/pass")) is None  # never a path


@pytest.mark.parametrize("text, problem", [
    ("{ytid}_{start:06d}.mp4", "must start with its kind, one of clip: (the file is the clip"),
    ("frames:{ytid}.mp4", "must start with its kind"),
    ("clip:{title}.mp4", "unknown field {title}; the fields are {ytid}, {clip_id}, {start}"),
    ("clip:{ytid[0]}.mp4", "unknown field {ytid[0]}"),
    ("clip:{ytid!r}.mp4", "no conversions"),
    ("clip:{ytid:>12}.mp4", "only start, end, start_ms, end_ms take a format"),
    ("clip:{ytid}_{start:06q}.mp4", "{start:06q} is not a number format"),
    ("clip:{start:06d}.mp4", "names no clip: it needs {ytid} or {clip_id}"),
    ("clip:{ytid}.{ext}.{ext}", "{ext} appears more than once"),
    ("clip:../{ytid}.mp4", "relative to --videos_dir"),
    ("video:/videos/{ytid}.mp4", "relative to --videos_dir"),
    ("clip:{ytid}_*.mp4", "wildcards"),
    ("clip:{ytid", "not a pattern"),
])
def test_a_pattern_that_cannot_be_read_is_a_typed_error_naming_the_problem(text, problem):
  with pytest.raises(LocalSourceError) as raised:
    VideoPattern.parse(text)
  assert problem in str(raised.value) and repr(text) in str(raised.value)


def test_files_are_tried_pattern_by_pattern_videos_before_audio(tmp_path):
  for name in ("abcdefghijk_000300.flac", "abcdefghijk_000300.webm", "abcdefghijk_000300.MP4",
               "abcdefghijk_000300.txt", "abcdefghijk_000300.mp4.part", "abcdefghijk.mkv", "abcdefghijk_0003.mp4"):
    (tmp_path / name).write_bytes(b"x" * len(name))
  finder = LocalFileFinder(str(tmp_path), local_files.parse_patterns(["clip:{ytid}_{start:06d}.{ext}",
                                                                      "video:{ytid}.{ext}"]))
  found = finder.find(_request())
  assert [(f.path[len(str(tmp_path)) + 1:], f.pattern.time_base) for f in found] == [
      ("abcdefghijk_000300.MP4", TimeBase.CLIP), ("abcdefghijk_000300.webm", TimeBase.CLIP),
      ("abcdefghijk_000300.flac", TimeBase.CLIP), ("abcdefghijk.mkv", TimeBase.VIDEO)]
  assert found[0].num_bytes == len("abcdefghijk_000300.MP4")
  assert finder.find(_request(ytid="zzzzzzzzzzz")) == []
  assert local_files.parse_patterns([]) == (VideoPattern.parse(local_files.DEFAULT_PATTERN),)


def test_a_videos_dir_that_is_not_there_is_refused(tmp_path):
  with pytest.raises(LocalSourceError, match="is not a directory"):
    local_files.check_videos_dir(str(tmp_path / "nowhere"))
  assert local_files.check_videos_dir(str(tmp_path)) == str(tmp_path)


def test_staged_in_a_build_a_record_made_from_a_local_file_is_staged_where_it_is_made(tmp_path):
  from shared import layout
  from shared.media import decode, generator

  videos, staging, ledger_dir = tmp_path / "videos", tmp_path / "staging", tmp_path / "ledger"
  videos.mkdir()
  generator.write_clip(str(videos / "abcdefghijk_000001.mp4"),
                       generator.ClipSpec(duration_s=2.0, width=160, height=120, fps=30.0))
  finder = LocalFileFinder(str(videos), local_files.parse_patterns(["clip:{ytid}_{start:06d}.{ext}"]))
  request = _request(start_s=1.0, end_s=3.0)

  def made(step):
    fn = step._fn
    fn.setup()
    try:
      return list(fn.process(request))
    finally:
      fn.finish_bundle()

  step = local_files.RecordsFromLocalFiles(finder, decode.DecodeOptions(short_side=64), str(ledger_dir))
  [in_memory] = made(step)
  [staged] = made(step.staging_in(str(staging)))
  # The element names the file instead of holding the bytes, which are the same record.
  assert staged.serialized == b"" and staged.staged_path == str(staging / layout.staged_record_name(request.clip_id))
  assert staged.payload() == in_memory.serialized
  assert staged._replace(staged_path=None, serialized=in_memory.serialized) == in_memory
