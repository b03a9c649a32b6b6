"""build_audioset end to end on a segment CSV in the release's format, and the AS-500K split."""

from __future__ import annotations

import json
import os

import pytest

from pipelines import build_audioset
from pipelines.download.ledger import read_ledger
from pipelines.sources import as500k, audioset
from shared import contract, layout, records
from testsupport.media_server import Fault

from .conftest import (ANNOTATIONS, FAST_BUILD_ARGS, IN_MEMORY, assert_audio_aligned, assert_frames_match, read_build,
                       snapshot, write_lines)

CLASS_LABELS = str(ANNOTATIONS / "audioset" / "class_labels_indices.csv")
# Real rows of eval_segments.csv (ids beginning with "-" included), their
# spans moved into the 12 s generated media; one segment is 6 s long and
# starts between whole seconds, as segments cut short by a video's end do.
SEGMENT_LINES = (
    "# Segments csv created Sun Mar  5 10:54:25 2017",
    "# num_ytids=4, num_segs=4, num_unique_labels=9, num_positive_labels=9",
    "# YTID, start_seconds, end_seconds, positive_labels",
    '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr,/m/0jbk"',
    '--BfvyPmVMo, 1.000, 11.000, "/m/03l9g"',
    '-0CamVQdP_Y, 2.500, 8.500, "/m/04rlf,/m/07pbtc8,/m/09x0r"',
    '--U7joUcTCo, 0.000, 10.000, "/m/01b_21"',
)
# clip id -> (served file, start, end, label names in file order)
WRITTEN = {
    "yt_--4gqARaEJE_000000000": ("av.mp4", 0.0, 10.0, ["Domestic animals, pets", "Squeak", "Dog", "Animal"]),
    "yt_--BfvyPmVMo_000001000": ("av.webm", 1.0, 11.0, ["Hammer"]),
    "yt_-0CamVQdP_Y_000002500": ("av.mp4", 2.5, 8.5, ["Music", "Walk, footsteps", "Speech"]),
}
GONE = "yt_--U7joUcTCo_000000000"


@pytest.fixture(scope="module")
def segments_csv(tmp_path_factory, serve):
  for clip_id, (target, *_) in WRITTEN.items():
    serve("as", target, ytid=clip_id[3:14])
  serve("as", "av.mp4", Fault.http_status(410), ytid=GONE[3:14])
  return write_lines(tmp_path_factory.mktemp("audioset") / "eval_segments.csv", SEGMENT_LINES)


@pytest.fixture(scope="module")
def eval_build(tmp_path_factory, segments_csv, url_template):
  output_dir = str(tmp_path_factory.mktemp("audioset_eval") / "build")
  manifest = build_audioset.run(["--split", "eval", "--segments", segments_csv, "--labels", CLASS_LABELS,
                                 "--output_dir", output_dir, "--url_template", url_template, *FAST_BUILD_ARGS,
                                 IN_MEMORY]).to_json_dict()
  return output_dir, manifest


def test_segments_are_built_and_the_gone_one_is_accounted_for(eval_build):
  output_dir, manifest = eval_build
  assert manifest["counts"] == {"requested": 4, "written": 3, "failed": 1,
                                "failed_by_reason": {"permanent/http_410": 1}}
  assert manifest["failed_clips"] == [{"clip_id": GONE, "reason": "permanent/http_410"}]
  assert manifest["shards"]["tfrecord"] == ["eval-00000-of-00001"]
  assert sorted(manifest["shard_clip_ids"]["eval-00000-of-00001"]) == sorted(WRITTEN)
  ledger = read_ledger(os.path.join(output_dir, "ledger"))
  assert sorted(ledger.records) == sorted([*WRITTEN, GONE])
  assert ledger.records[GONE].reason == "http_410"


def test_records_hold_every_label_and_the_source_media(eval_build, source_media):
  output_dir, manifest = eval_build
  labels = contract.LabelMap.from_json_dict(manifest["label_map"])
  stored = read_build(output_dir)
  for clip_id, (target, start, end, names) in WRITTEN.items():
    record = stored[clip_id]
    assert (record.dataset, record.source_id) == ("audioset", clip_id[3:14])
    assert (record.start_s, record.end_s) == (start, end)
    assert record.label_names == names
    assert record.label_indices == [labels.index_of_name(name) for name in names]
    assert len(record.jpeg_frames) == contract.num_frames(end - start)
    assert_frames_match(record, source_media.by_name(target), start, end)
    assert_audio_aligned(record, source_media.by_name(target), start, end)


def test_short_segment_has_its_own_length(eval_build):
  record = read_build(eval_build[0])["yt_-0CamVQdP_Y_000002500"]
  assert len(record.jpeg_frames) == 150
  assert record.num_audio_samples == 6 * contract.AUDIO_SAMPLE_RATE
  assert record.melspec.shape == (600, contract.MEL_NUM_BINS)
  assert record.decoded_duration_s == pytest.approx(6.0)


def test_label_map_is_the_527_classes_with_their_mids(eval_build):
  output_dir, manifest = eval_build
  with open(os.path.join(output_dir, "label_map.json")) as f:
    written = json.load(f)
  expected = audioset.load_audioset_label_map(CLASS_LABELS)
  assert written == manifest["label_map"] == expected.to_json_dict()
  assert written["num_classes"] == 527
  assert written["classes"][0] == {"index": 0, "name": "Speech", "id": "/m/09x0r"}


def test_as500k_selects_the_balanced_subset_and_writes_its_report(tmp_path, segments_csv, url_template):
  output_dir = str(tmp_path / "as500k")  # does not exist yet
  argv = ["--split", "as500k", "--as500k_size", "2", "--segments", segments_csv, "--labels", CLASS_LABELS,
          "--output_dir", output_dir, "--url_template", url_template, *FAST_BUILD_ARGS, IN_MEMORY]
  manifest = build_audioset.run(argv).to_json_dict()

  parsed = audioset.parse_audioset_segments(segments_csv, audioset.load_audioset_label_map(CLASS_LABELS),
                                            split="unbalanced_train")
  subset = as500k.select_balanced_subset(parsed.rows, parsed.label_map, target=2)
  with open(os.path.join(output_dir, layout.AS500K_REPORT_NAME)) as f:
    report = json.load(f)
  assert report == json.loads(json.dumps(subset.report.to_json_dict()))
  assert (report["source_size"], report["target"], report["size"]) == (4, 2, 2)
  assert manifest["split"] == "as500k" and manifest["counts"]["requested"] == 2
  built = {clip_id for ids in manifest["shard_clip_ids"].values() for clip_id in ids}
  built |= {entry["clip_id"] for entry in manifest["failed_clips"]}
  assert built == set(subset.clip_ids)
  assert manifest["shards"]["tfrecord"] == [records.shard_name("as500k", 0, 1)]

  # A re-run leaves the finished build, its report included, untouched.
  before = snapshot(output_dir)
  build_audioset.run(argv)
  assert snapshot(output_dir) == before
