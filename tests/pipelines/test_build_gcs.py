"""Builds on gs://, against a GCS emulator on 127.0.0.1: ledger, staging, shards, manifest, refresh, resume; videos."""

from __future__ import annotations

import pytest

from pipelines import build_epic_kitchens, build_vggsound
from pipelines.download.ledger import read_ledger
from shared import files, records
from shared.manifest import read_manifest
from shared.media import generator

from .conftest import (FAST_BUILD_ARGS, IN_MEMORY, TEST_SHORT_SIDE, assert_audio_aligned, assert_frames_match,
                       read_build, write_lines)
from .test_build_epic_kitchens import EPIC, _annotation_rows, _write_csv
from .test_build_local_files import START, cut


@pytest.fixture(scope="module")
def gcs_builds(gcs, serve, url_template, tmp_path_factory):
  work = tmp_path_factory.mktemp("gcs")
  ytids = {tag: serve(tag, "av.mp4") for tag in ("gkeep", "gnew")}
  gone = serve("ggone")  # not served: a 404
  first = write_lines(work / "first.csv", [f"{ytids['gkeep']}_000001.mp4,dog barking", f"{gone}_000001.mp4,dog barking"])
  second = write_lines(work / "second.csv", [f"{ytids[t]}_000001.mp4,dog barking" for t in ("gkeep", "gnew")])
  common = ["--url_template", url_template, *FAST_BUILD_ARGS, IN_MEMORY]
  dirs = {"A": gcs.url("vggsound", "A"), "B": gcs.url("vggsound", "B")}
  manifests = {
      "A": build_vggsound.run(["--file_list", first, "--output_dir", dirs["A"], "--media_dir", str(work / "m"),
                               *common]),
  }
  manifests["B"] = build_vggsound.run(["--file_list", second, "--output_dir", dirs["B"], "--media_dir",
                                       str(work / "m2"), "--previous_build", dirs["A"], *common])
  return dirs, manifests, ytids, gone


def test_a_build_writes_every_file_to_gs(gcs_builds, source_media):
  dirs, manifests, ytids, gone = gcs_builds
  manifest = read_manifest(dirs["A"])
  assert manifest == manifests["A"]
  assert manifest.counts.failed_by_reason == {"permanent/http_404": 1}
  names = [path.rsplit("/", 1)[1] for path in files.list_files(dirs["A"])]
  assert set(names) >= {"manifest.json", "label_map.json", "requests.jsonl.gz", "test-00000-of-00001",
                        "test-00000-of-00001.array_record"}
  assert not [name for name in names if files.INCOMPLETE_MARKER in name]
  assert files.list_files(files.join(dirs["A"], "staging")) == []  # every staged record went into its shard
  tfrecord = list(records.read_tfrecord(files.join(dirs["A"], "test-00000-of-00001")))
  assert records.read_array_record(files.join(dirs["A"], "test-00000-of-00001.array_record")) == tfrecord
  [record] = [records.decode(s) for s in tfrecord]
  assert_frames_match(record, source_media.av_mp4, 1.0, 11.0)
  ledger = read_ledger(files.join(dirs["A"], "ledger"))
  assert ledger[f"yt_{gone}_000001000"].reason == "http_404"


def test_a_refresh_from_gs_into_gs_carries_clips_over(gcs_builds, media_server):
  dirs, manifests, ytids, _ = gcs_builds
  report = files.read_json(files.join(dirs["B"], "refresh_report.json"))
  assert report["counts"]["kept"] == 1 and report["counts"]["new"] == 1
  assert manifests["B"].previous_build == dirs["A"]
  assert manifests["B"].counts.written == 2


def test_a_gs_build_that_died_before_its_manifest_resumes_from_gs(gcs_builds, media_server, tmp_path, url_template):
  dirs, manifests, ytids, gone = gcs_builds
  shard = files.join(dirs["A"], "test-00000-of-00001")
  before_bytes = files.read_bytes(shard)
  files.delete(files.join(dirs["A"], "manifest.json"))  # as if the job died after writing its shard
  requested = media_server.request_count(f"{ytids['gkeep']}.mp4")
  file_list = write_lines(tmp_path / "first.csv", [f"{ytids['gkeep']}_000001.mp4,dog barking",
                                                   f"{gone}_000001.mp4,dog barking"])
  manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", dirs["A"], "--media_dir",
                                 str(tmp_path / "fresh_disk"), "--url_template", url_template, *FAST_BUILD_ARGS,
                                 IN_MEMORY])
  assert media_server.request_count(f"{ytids['gkeep']}.mp4") == requested  # read back from gs://, not fetched
  assert manifest.counts == manifests["A"].counts and files.read_bytes(shard) == before_bytes


# ---------------------------------------------------------------------------
# Videos on gs://: read where they lie through a seekable file object, never copied.
# ---------------------------------------------------------------------------
def test_clips_and_videos_on_gs_are_decoded_where_they_lie(gcs, serve, source_media, tmp_path, media_server):
  precut, full = serve("gsclip", "av.mp4"), serve("gsfull", "av.webm")
  videos = gcs.url("videos", "vggsound")
  files.upload(cut(source_media.av_mp4.path, str(tmp_path / "clip.mp4"), START, 10),
               files.join(videos, f"{precut}_{START:06d}.mp4"))
  files.upload(source_media.av_webm.path, files.join(videos, "full", f"{full}.webm"))
  file_list = write_lines(tmp_path / "test.csv", [f"{ytid}_{START:06d}.mp4,dog barking" for ytid in (precut, full)])
  output_dir = tmp_path / "build"
  manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", str(output_dir), "--videos_dir", videos,
                                 "--video_pattern", "clip:{ytid}_{start:06d}.{ext}", "--video_pattern",
                                 "video:full/{ytid}.{ext}", "--url_template", media_server.url_template("{ytid}.mp4"),
                                 *FAST_BUILD_ARGS, IN_MEMORY])
  assert manifest.origin_counts() == {"local": 2}
  assert media_server.request_count(f"{precut}.mp4") == media_server.request_count(f"{full}.mp4") == 0
  assert not [path for path in output_dir.rglob("*") if path.is_file() and "media" in path.parts]  # nothing copied
  stored = read_build(str(output_dir))
  for ytid, source in ((precut, source_media.av_mp4), (full, source_media.av_webm)):
    record = stored[f"yt_{ytid}_{START * 1000:09d}"]
    assert_frames_match(record, source, START, START + 10)
    assert_audio_aligned(record, source, START, START + 10)
  ledger = read_ledger(str(output_dir / "ledger"))
  assert ledger[f"yt_{full}_{START * 1000:09d}"].media_file == files.join(videos, "full", f"{full}.webm")


def test_epic_kitchens_videos_on_gs_build_as_local_ones(gcs, tmp_path):
  videos = gcs.url("videos", "EPIC-KITCHENS")
  video = generator.write_clip(str(tmp_path / "P01_11.MP4"), generator.ClipSpec(
      duration_s=11.0, width=160, height=90, fps=50.0, audio_sample_rate=48_000))
  files.upload(video.path, files.join(videos, "P01", "videos", "P01_11.MP4"))
  narrations = ("P01_11_0", "P01_11_10")
  annotations = _write_csv(tmp_path / "EPIC_100_validation.csv", _annotation_rows(narrations))
  output_dir = tmp_path / "build"
  manifest = build_epic_kitchens.run([
      "--videos_dir", videos, "--annotations", annotations, "--verb_classes", str(EPIC / "EPIC_100_verb_classes.csv"),
      "--noun_classes", str(EPIC / "EPIC_100_noun_classes.csv"), "--output_dir", str(output_dir),
      f"--frame_short_side={TEST_SHORT_SIDE}", "--progress_interval=0", IN_MEMORY])
  assert manifest.counts.written == 2 and manifest.origin_counts() == {"local": 2}
  stored = read_build(str(output_dir))
  record = stored["P01_11_10"]
  assert_frames_match(record, video, 9.15, 10.95)
  assert_audio_aligned(record, video, 9.15, 10.95)
