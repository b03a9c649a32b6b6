"""Builds from clips users already have (--videos_dir): pre-cut clips, full videos, audio-only files, downloads.

The pre-cut clips are cut from the generated sources with FFmpeg, as
VGGSound's release was (``YTID_000300.mp4`` holds source seconds 300-310, its
own time 0 at second 300); the full videos are the sources themselves. The
same clips are built three ways, from pre-cut files, from full videos and
from the local media server, and must agree. A mixed build (files that give
the clip, files passed over for the download or for another file, clips
nowhere) accounts for every clip, says where each came from, and keeps saying
it through a resume and a refresh.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from pipelines import build_audioset, build_vggsound, local_files, shards
from pipelines.download import ffmpeg_log
from pipelines.download.ledger import read_ledger
from shared import contract, records
from shared.manifest import read_manifest

from .conftest import (ANNOTATIONS, FAST_BUILD_ARGS, IN_MEMORY, TEST_SHORT_SIDE, assert_audio_aligned,
                       assert_frames_match, counters, pipeline_results, read_build, requests_for, snapshot, write_lines)

START = 1  # every clip here is source seconds 1-11
PATTERNS = ["--video_pattern", local_files.DEFAULT_PATTERN, "--video_pattern", "video:{ytid}.{ext}"]


def cut(source: str, destination: str, start_s: float, seconds: float, audio_only: bool = False) -> str:
  """A pre-cut clip as datasets release them: FFmpeg seeks, re-encodes, and the file's time 0 is start_s."""
  codecs = {".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
            ".webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
            ".flac": ["-vn", "-c:a", "flac"]}[os.path.splitext(destination)[1]]
  os.makedirs(os.path.dirname(destination), exist_ok=True)
  subprocess.run([ffmpeg_log.bundled_ffmpeg(), "-v", "error", "-y", "-ss", str(start_s), "-i", source, "-t",
                  str(seconds), *codecs, destination], check=True)
  return destination


def place(source: str, destination: str) -> str:
  """A full video in the user's directory (a hard link: the same bytes, nothing to copy)."""
  os.makedirs(os.path.dirname(destination), exist_ok=True)
  os.link(source, destination)
  return destination


def _image(jpeg: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(jpeg)), np.float64)


# ---------------------------------------------------------------------------
# The same clips three ways.
# ---------------------------------------------------------------------------
THREE_WAYS = {"tw_mp4": "av.mp4", "tw_webm": "av.webm"}  # tag -> source


@pytest.fixture(scope="module")
def three_ways(tmp_path_factory, serve, url_template, source_media):
  """The same two clips built from pre-cut files, from full videos and from the server: {way: records}."""
  work = tmp_path_factory.mktemp("three_ways")
  ytids = {tag: serve(tag, target) for tag, target in THREE_WAYS.items()}
  file_list = write_lines(work / "test.csv", [f"{ytid}_{START:06d}.mp4,dog barking" for ytid in ytids.values()])
  for tag, target in THREE_WAYS.items():
    source = os.path.join(source_media.directory, target)
    extension = os.path.splitext(target)[1]
    cut(source, str(work / "precut" / f"{ytids[tag]}_{START:06d}{extension}"), START, 10)
    place(source, str(work / "full" / f"{ytids[tag]}{extension}"))
  common = ["--file_list", file_list, "--url_template", url_template, *FAST_BUILD_ARGS, IN_MEMORY]
  ways = {"precut": ["--videos_dir", str(work / "precut"), "--sources", "local"],
          "full": ["--videos_dir", str(work / "full"), "--video_pattern", "video:{ytid}.{ext}", "--sources", "local"],
          "served": []}
  built = {}
  for way, extra in ways.items():
    manifest = build_vggsound.run([*common, *extra, "--output_dir", str(work / way)])
    assert manifest.counts.written == 2, (way, manifest.summary_line())
    built[way] = read_build(str(work / way))
  return built, ytids, source_media


def test_pre_cut_files_full_videos_and_downloads_give_the_same_clips(three_ways):
  built, ytids, media = three_ways
  for tag, target in THREE_WAYS.items():
    clip_id = f"yt_{ytids[tag]}_{START * 1000:09d}"
    source = media.by_name(target)
    by_way = {way: records_of_way[clip_id] for way, records_of_way in built.items()}
    for way, record in by_way.items():
      # The pre-cut file's time 0 is source second 1: decoded on its own clock the frames are the source's 25-274.
      assert_frames_match(record, source, START, START + 10)
      assert_audio_aligned(record, source, START, START + 10)
      assert (record.start_s, record.end_s, record.has_video, record.decoded_duration_s) == (
          START, START + 10, True, pytest.approx(10.0, abs=0.05)), way
    served = by_way["served"]
    for way in ("precut", "full"):
      record = by_way[way]
      assert (record.frame_width, record.frame_height) == (served.frame_width, served.frame_height)
      # The full video holds the downloaded section's packets: the same frames, exactly. The pre-cut clip
      # is a re-encode: its frames' levels move by a fraction of a step on average.
      frame_error = np.mean([np.abs(_image(a) - _image(b)).mean() for a, b in zip(record.jpeg_frames[::5],
                                                                                   served.jpeg_frames[::5])])
      assert frame_error == 0.0 if way == "full" else frame_error < 1.0, (tag, way, frame_error)
      strong_bins_error, power_error = log_mel_difference(record.melspec, served.melspec)
      assert strong_bins_error < 0.05 and power_error < 0.03, (tag, way, strong_bins_error, power_error)


def log_mel_difference(melspec: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
  """(median difference where the reference is within 40 dB of its frame's peak, relative power difference).

  Two encodes of one sound agree where it has energy; far below it (the codecs' own noise) any two differ.
  """
  melspec, reference = np.asarray(melspec, np.float64), np.asarray(reference, np.float64)
  strong = reference > reference.max(axis=1, keepdims=True) - np.log(1e4)
  power = np.exp(reference)
  return (float(np.median(np.abs(melspec - reference)[strong])),
          float(np.abs(np.exp(melspec) - power).sum() / power.sum()))


# ---------------------------------------------------------------------------
# A mixed build: some clips local, some served, some nowhere.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Clip:
  """One clip of the mixed build: what lies in the videos directory and on the server, and what must come of it."""

  tag: str
  files: tuple[tuple[str, str], ...]  # (what, name suffix): what is "precut", "short", "audio", "junk" or "full"
  served: Optional[str]  # the server's file for the id; None: not served (404)
  origin: Optional[str]  # None: failed
  reason: Optional[str] = None  # the failure, class/reason
  passed_over: tuple[str, ...] = ()  # the reasons the ledger gives for files passed over
  from_file: Optional[str] = None  # the suffix of the file the clip was made from


CLIPS = (
    Clip("m_precut", (("precut", f"_{START:06d}.mp4"),), "av.mp4", "local", from_file=f"_{START:06d}.mp4"),
    Clip("m_full", (("full", ".webm"),), "av.webm", "local", from_file=".webm"),
    Clip("m_audio", (("audio", f"_{START:06d}.flac"),), "av.mp4", "local", from_file=f"_{START:06d}.flac"),
    # A pre-cut file of 4 s does not cover the 10 s span: the full video beside it gives the clip.
    Clip("m_short", (("short", f"_{START:06d}.mp4"), ("full", ".mp4")), "av.mp4", "local",
         passed_over=("invalid_media/span_not_covered",), from_file=".mp4"),
    Clip("m_junk", (("junk", f"_{START:06d}.mp4"),), "av.mp4", "downloaded",
         passed_over=("invalid_media/undecodable",)),
    Clip("m_served", (), "av.webm", "downloaded"),
    Clip("m_jgone", (("junk", f"_{START:06d}.mkv"),), None, None, "permanent/http_404",
         passed_over=("invalid_media/undecodable",)),
    Clip("m_gone", (), None, None, "permanent/http_404"),
)


@dataclasses.dataclass
class MixedBuild:
  """The module's mixed build and what it was made from."""

  work: str
  output_dir: str
  argv: list
  manifest: object
  counters: dict
  ytids: dict
  clip_ids: dict
  videos_dir: str


def _clip(tag: str) -> Clip:
  return next(clip for clip in CLIPS if clip.tag == tag)


def _lay_out(clip: Clip, ytid: str, videos_dir: str, media_dir: str) -> None:
  source = os.path.join(media_dir, clip.served or "av.mp4")
  for what, suffix in clip.files:
    path = os.path.join(videos_dir, ytid + suffix)
    if what == "full":
      place(os.path.join(media_dir, "av" + suffix[suffix.rindex("."):]), path)
    elif what == "junk":
      os.makedirs(videos_dir, exist_ok=True)
      with open(path, "wb") as f:
        f.write(b"not a video at all\n" * 100)
    else:
      cut(source, path, START, 4 if what == "short" else 10)


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory, serve, media_server, url_template, source_media) -> MixedBuild:
  work = tmp_path_factory.mktemp("mixed")
  videos_dir = str(work / "videos")
  # Every id with a file is served too, so a clip fetched when its file would do shows on the server.
  ytids = {clip.tag: serve(clip.tag, clip.served) for clip in CLIPS}
  for clip in CLIPS:
    _lay_out(clip, ytids[clip.tag], videos_dir, source_media.directory)
  file_list = write_lines(work / "test.csv", [f"{ytids[c.tag]}_{START:06d}.mp4,dog barking" for c in CLIPS])
  output_dir = str(work / "build")
  argv = ["--file_list", file_list, "--output_dir", output_dir, "--videos_dir", videos_dir, *PATTERNS,
          "--url_template", url_template, "--clips_per_shard=3", *FAST_BUILD_ARGS, IN_MEMORY]
  with pipeline_results() as results:
    manifest = build_vggsound.run(argv)
  return MixedBuild(work=str(work), output_dir=output_dir, argv=argv, manifest=manifest,
                    counters=counters(results[-1]), ytids=ytids,
                    clip_ids={tag: f"yt_{ytid}_{START * 1000:09d}" for tag, ytid in ytids.items()},
                    videos_dir=videos_dir)


def _origins(manifest) -> dict[str, str]:
  return manifest.clip_origins.by_clip(manifest.written_clip_ids())


def test_a_mixed_build_accounts_for_every_clip_and_says_where_each_came_from(mixed_build):
  manifest, ids = mixed_build.manifest, mixed_build.clip_ids
  assert manifest.counts.requested == len(CLIPS)
  assert manifest.failure_reasons() == {ids[c.tag]: c.reason for c in CLIPS if c.origin is None}
  assert _origins(manifest) == {ids[c.tag]: c.origin for c in CLIPS if c.origin is not None}
  assert manifest.origin_counts() == {"local": 4, "downloaded": 2}
  # Compact at any size: the commonest origin is the default, only the others are listed.
  document = manifest.to_json_dict()["clip_origins"]
  assert document == {"counts": {"local": 4, "downloaded": 2}, "default": "local",
                      "listed": {"downloaded": sorted(ids[t] for t in ("m_junk", "m_served"))}}
  assert manifest.clips_without_audio == ()
  assert "written from local 4, downloaded 2" in manifest.summary_line()
  assert manifest.build_options["require_video"] is False


def test_the_ledger_says_where_each_clip_came_from_and_why_files_were_passed_over(mixed_build):
  ledger = read_ledger(os.path.join(mixed_build.output_dir, "ledger"))
  assert set(ledger.records) == set(mixed_build.clip_ids.values())
  for clip in CLIPS:
    record = ledger[mixed_build.clip_ids[clip.tag]]
    assert [entry["reason"] for entry in record.passed_over] == list(clip.passed_over), clip.tag
    assert all(entry["source"] == "local" and mixed_build.ytids[clip.tag] in entry["message"]
               for entry in record.passed_over)
    if clip.origin is None:
      assert (record.status, f"{record.reason_class}/{record.reason}", record.origin) == ("failed", clip.reason, None)
    else:
      assert (record.status, record.origin) == ("ok", clip.origin), clip.tag
    if clip.origin == "local":
      path = os.path.join(mixed_build.videos_dir, mixed_build.ytids[clip.tag] + clip.from_file)
      assert (record.media_file, record.num_bytes, record.attempts) == (path, os.path.getsize(path), 0)
    else:
      assert record.media_file is None


def test_local_files_are_decoded_where_they_lie_and_never_fetched(mixed_build, media_server):
  served = requests_for(media_server, mixed_build.ytids.values())
  for clip in CLIPS:
    fetched = served[mixed_build.ytids[clip.tag]] > 0
    assert fetched == (clip.origin != "local"), clip.tag
  # The media directory holds the downloads only: nothing local was copied there.
  media = sorted(name for name in os.listdir(os.path.join(mixed_build.output_dir, "media")) if not name.startswith("."))
  assert media == sorted(f"{mixed_build.clip_ids[t]}.mp4" for t in ("m_junk", "m_served"))
  found = mixed_build.counters
  assert found["local/made_from_local_file"] == 4 and found["local/no_local_file"] == 2
  assert found["local/passed_over_invalid_media_span_not_covered"] == 1
  assert found["local/passed_over_invalid_media_undecodable"] == 2
  assert found["fetch/downloaded"] == 2 and found["fetch/failed_permanent_http_404"] == 2


def test_every_local_clip_holds_the_source_seconds_it_names(mixed_build, source_media):
  stored = read_build(mixed_build.output_dir)
  for clip in CLIPS:
    if clip.origin != "local":  # downloads are checked where they are built alone
      continue
    record = stored[mixed_build.clip_ids[clip.tag]]
    source = source_media.by_name(clip.served)
    assert_audio_aligned(record, source, START, START + 10)
    if clip.tag == "m_audio":
      continue
    assert record.has_video, clip.tag
    assert_frames_match(record, source, START, START + 10)


def test_an_audio_only_file_gives_black_frames_and_says_has_video_0(mixed_build):
  record = read_build(mixed_build.output_dir)[mixed_build.clip_ids["m_audio"]]
  assert (record.has_video, record.has_audio) == (False, True)
  assert len(record.jpeg_frames) == contract.num_frames(10.0) and len(set(record.jpeg_frames)) == 1
  assert (record.frame_width, record.frame_height) == contract.blank_frame_size(TEST_SHORT_SIDE)
  assert _image(record.jpeg_frames[0]).max() <= 2
  assert (record.source_fps, record.source_width, record.source_height) == (0.0, 0, 0)


def test_require_video_passes_audio_only_files_over(mixed_build, tmp_path):
  ytid = mixed_build.ytids["m_audio"]
  file_list = write_lines(tmp_path / "test.csv", [f"{ytid}_{START:06d}.mp4,dog barking"])
  manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", str(tmp_path / "build"), "--videos_dir",
                                 mixed_build.videos_dir, "--sources", "local", "--require_video", *FAST_BUILD_ARGS,
                                 IN_MEMORY])
  assert manifest.failure_reasons() == {mixed_build.clip_ids["m_audio"]: "invalid_media/missing_stream"}
  assert manifest.build_options["require_video"] is True


# ---------------------------------------------------------------------------
# Re-runs, resumes and refreshes keep the origins.
# ---------------------------------------------------------------------------
def test_rerunning_the_finished_mixed_build_changes_nothing(mixed_build, media_server):
  before, asked = snapshot(mixed_build.output_dir), media_server.request_count()
  assert build_vggsound.run(mixed_build.argv) == mixed_build.manifest
  assert snapshot(mixed_build.output_dir) == before and media_server.request_count() == asked


def _as_if_died(mixed_build, tmp_path, *, shards_written: bool) -> list:
  """A copy of the mixed build as a dead run left it: no manifest, no media dir; its records in shards or staging."""
  output_dir = str(tmp_path / "build")
  shutil.copytree(mixed_build.output_dir, output_dir)
  os.remove(os.path.join(output_dir, "manifest.json"))
  shutil.rmtree(os.path.join(output_dir, "media"))  # the workers' disks are gone
  if not shards_written:
    os.makedirs(os.path.join(output_dir, "staging"), exist_ok=True)
    for name in mixed_build.manifest.shards["tfrecord"]:
      path = os.path.join(output_dir, name)
      for serialized in records.read_tfrecord(path):
        with open(os.path.join(output_dir, "staging", records.decode(serialized).clip_id + ".record"), "wb") as f:
          f.write(serialized)
      for stale in (path, path + records.ARRAY_RECORD_SUFFIX):
        os.remove(stale)
  argv = list(mixed_build.argv)
  argv[argv.index("--output_dir") + 1] = output_dir
  return argv


def _shard_bytes(output_dir: str) -> dict[str, bytes]:
  return {name: open(os.path.join(output_dir, name), "rb").read()
          for name in sorted(os.listdir(output_dir)) if name.startswith("test-")}


def test_a_resumed_build_keeps_the_origins_of_the_records_it_recovers(mixed_build, tmp_path, media_server):
  for shards_written in (True, False):
    scratch = tmp_path / ("shards" if shards_written else "staged")
    argv = _as_if_died(mixed_build, scratch, shards_written=shards_written)
    asked = media_server.request_count()
    with pipeline_results() as results:
      manifest = build_vggsound.run(argv)
    assert media_server.request_count() == asked, "a recovered clip was fetched again"
    assert manifest.counts == mixed_build.manifest.counts
    assert manifest.clip_origins == mixed_build.manifest.clip_origins, shards_written
    found = counters(results[-1])
    assert "local/made_from_local_file" not in found
    if not shards_written:
      assert found["resume/records_reused_from_staging"] == 6
    assert _shard_bytes(argv[argv.index("--output_dir") + 1]) == _shard_bytes(mixed_build.output_dir)


def test_a_staged_record_whose_origin_the_ledger_lost_is_made_again(mixed_build, tmp_path, media_server):
  argv = _as_if_died(mixed_build, tmp_path, shards_written=False)
  ledger_dir = os.path.join(argv[argv.index("--output_dir") + 1], "ledger")
  lost = mixed_build.clip_ids["m_precut"]  # as if its worker died before its ledger file was closed
  for name in os.listdir(ledger_dir):
    path = os.path.join(ledger_dir, name)
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    with open(path, "w", encoding="utf-8") as f:
      f.writelines(line for line in lines if f'"clip_id": "{lost}"' not in line)
  asked = media_server.request_count()
  with pipeline_results() as results:
    manifest = build_vggsound.run(argv)
  found = counters(results[-1])
  assert found["resume/records_reused_from_staging"] == 5 and found["local/made_from_local_file"] == 1
  assert media_server.request_count() == asked
  assert manifest.clip_origins == mixed_build.manifest.clip_origins
  # Made again from its file, the record has the same bytes: local records are deterministic too.
  assert _shard_bytes(argv[argv.index("--output_dir") + 1]) == _shard_bytes(mixed_build.output_dir)


def test_a_refresh_carries_every_clip_over_and_says_so(mixed_build, tmp_path, media_server):
  argv = list(mixed_build.argv)
  argv[argv.index("--output_dir") + 1] = str(tmp_path / "refreshed")
  asked = media_server.request_count()
  with pipeline_results() as results:
    manifest = build_vggsound.run(argv + ["--previous_build", mixed_build.output_dir])
  assert media_server.request_count() == asked and "local/made_from_local_file" not in counters(results[-1])
  assert manifest.origin_counts() == {"carried_over": 6}
  assert manifest.failure_reasons() == mixed_build.manifest.failure_reasons()  # permanent: kept, not asked again
  # The carried clips' ledger records are the previous build's: where their media came from.
  ledger = read_ledger(str(tmp_path / "refreshed" / "ledger"))
  assert ledger[mixed_build.clip_ids["m_full"]].origin == "local"


# ---------------------------------------------------------------------------
# AudioSet, and what is refused.
# ---------------------------------------------------------------------------
def test_audioset_builds_from_full_videos_too(mixed_build, tmp_path, source_media):
  ytid = mixed_build.ytids["m_full"]
  segments = tmp_path / "segments.csv"
  segments.write_text("# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=1, num_segs=1, num_unique_labels=1,"
                      " num_positive_labels=1\n# YTID, start_seconds, end_seconds, positive_labels\n"
                      f'{ytid}, {START}.000, {START + 10}.000, "/m/09x0r"\n')
  manifest = build_audioset.run([
      "--split", "eval", "--segments", str(segments), "--class_labels",
      str(ANNOTATIONS / "audioset" / "class_labels_indices.csv"), "--output_dir", str(tmp_path / "build"),
      "--videos_dir", mixed_build.videos_dir, "--video_pattern", "video:{ytid}.{ext}", "--sources", "local",
      *FAST_BUILD_ARGS, IN_MEMORY])
  assert manifest.origin_counts() == {"local": 1}
  [record] = read_build(str(tmp_path / "build")).values()
  assert_frames_match(record, source_media.av_webm, START, START + 10)


@pytest.mark.parametrize("flags, message", [
    (["--videos_dir", "{missing}"], "--videos_dir {missing} is not a directory"),
    (["--videos_dir", "{videos}", "--video_pattern", "clip:{{title}}.mp4"], "unknown field {{title}}"),
    (["--videos_dir", "{videos}", "--video_pattern", "{{ytid}}.mp4"], "must start with its kind"),
    (["--sources", "local"], "takes local files from --videos_dir"),
    (["--videos_dir", "{videos}", "--sources", "youtube,local"], "local files come before downloads"),
    (["--videos_dir", "{videos}", "--sources", "youtube"], "does not use it"),
])
def test_bad_local_source_options_are_refused_before_anything_is_written(mixed_build, tmp_path, capsys, flags,
                                                                         message):
  file_list = write_lines(tmp_path / "test.csv", [f"{mixed_build.ytids['m_precut']}_000001.mp4,dog barking"])
  where = {"missing": str(tmp_path / "no_such_dir"), "videos": mixed_build.videos_dir}
  argv = ["--file_list", file_list, "--output_dir", str(tmp_path / "build"), *[f.format(**where) for f in flags],
          *FAST_BUILD_ARGS, IN_MEMORY]
  assert build_vggsound.main(argv) == 2
  assert message.format(**where) in capsys.readouterr().err
  assert not (tmp_path / "build").exists()
  with pytest.raises(local_files.LocalSourceError):
    build_vggsound.run(argv)


def test_shards_of_the_mixed_build_are_a_complete_set(mixed_build):
  manifest = mixed_build.manifest
  num_shards = shards.num_shards_for(len(CLIPS), 3)
  assert len(manifest.shards["tfrecord"]) == len(manifest.shards["arrayrecord"]) == num_shards
  for name in manifest.shards["tfrecord"]:
    path = os.path.join(mixed_build.output_dir, name)
    assert records.read_array_record(path + records.ARRAY_RECORD_SUFFIX) == list(records.read_tfrecord(path))
  assert read_manifest(mixed_build.output_dir) == manifest
