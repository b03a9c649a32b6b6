"""build_epic_kitchens end to end: generated 50 and 59.94 fps videos in the EPIC layout, real annotation rows."""

from __future__ import annotations

import csv
import fractions
import os

import pytest

from pipelines import build_epic_kitchens
from pipelines.download.ledger import read_ledger
from shared import contract
from shared.media import generator

from .conftest import (ANNOTATIONS, IN_MEMORY, TEST_SHORT_SIDE, assert_audio_aligned, assert_frames_match,
                       frame_codes, read_build)

EPIC = ANNOTATIONS / "epic_kitchens"
VIDEO_SPECS = {
    # EPIC's two rates; small frames and 20 s keep generation and decoding fast.
    "P01_11": generator.ClipSpec(duration_s=20.0, width=320, height=180, fps=50.0, audio_sample_rate=48_000),
    "P02_12": generator.ClipSpec(duration_s=20.0, width=320, height=180, fps=float(fractions.Fraction(60000, 1001)),
                                 audio_sample_rate=48_000),
}
# Real rows of EPIC_100_validation.csv: narration id -> the span it gets here,
# inside the generated 20 s videos. P02_12_293 has an empty narration
# timestamp, as in the release; P03_22's video is not there.
SPANS = {
    "P01_11_0": ("00:00:00.00", "00:00:01.89"),
    "P01_11_1": ("00:00:01.56", "00:00:02.45"),
    "P01_11_10": ("00:00:09.15", "00:00:10.95"),
    "P02_12_293": ("00:00:07.56", "00:00:10.75"),
    "P02_12_326": ("00:00:12.57", "00:00:17.14"),
    "P03_22_8": ("00:00:21.57", "00:00:22.51"),
}
# Training pairs (verb_class, noun_class) index the actions: (0, 2) take plate,
# (0, 49) take paper, (47, 25) roll dough (narrated "ball:dough"). The other rows' pairs are not
# among them: action -1.
TRAINING_ROWS = ("P01_11_0", "P01_11_10", "P02_12_293")
ACTIONS = {"P01_11_0": 0, "P01_11_10": 1, "P02_12_293": 2}


def _seconds(timestamp: str) -> float:
  hours, minutes, seconds = timestamp.split(":")
  return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _annotation_rows(narration_ids):
  """Header and the real rows of these narrations, their timestamps rewritten."""
  with open(EPIC / "EPIC_100_validation_sample.csv", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    by_id = {row[0]: row for row in reader}
  start, stop = header.index("start_timestamp"), header.index("stop_timestamp")
  rows = [header]
  for narration_id in narration_ids:
    row = list(by_id[narration_id])
    row[start], row[stop] = SPANS[narration_id]
    rows.append(row)
  return rows


def _write_csv(path, rows) -> str:
  with open(path, "w", newline="") as f:
    csv.writer(f, lineterminator="\n").writerows(rows)
  return str(path)


@pytest.fixture(scope="module")
def epic_inputs(tmp_path_factory):
  """(work dir, videos by id, the build's arguments but --output_dir) of the module's builds."""
  work = tmp_path_factory.mktemp("epic")
  videos_dir = work / "EPIC-KITCHENS"
  videos = {}
  for video_id, spec in VIDEO_SPECS.items():
    path = videos_dir / video_id[:3] / "videos" / f"{video_id}.MP4"
    videos[video_id] = generator.write_clip(str(path), spec)
  annotations = _write_csv(work / "EPIC_100_validation.csv", _annotation_rows(SPANS))
  training = _write_csv(work / "EPIC_100_train.csv", _annotation_rows(TRAINING_ROWS))
  argv = ["--videos_dir", str(videos_dir), "--annotations", annotations, "--train_annotations", training,
          "--verb_classes", str(EPIC / "EPIC_100_verb_classes.csv"), "--noun_classes",
          str(EPIC / "EPIC_100_noun_classes.csv"), "--split", "validation",
          f"--frame_short_side={TEST_SHORT_SIDE}", "--progress_interval=0", IN_MEMORY]
  return work, videos, argv


@pytest.fixture(scope="module")
def epic_build(epic_inputs):
  work, videos, argv = epic_inputs
  output_dir = str(work / "build")
  manifest = build_epic_kitchens.run([*argv, "--output_dir", output_dir]).to_json_dict()
  return output_dir, manifest, videos, argv[argv.index("--annotations") + 1]


def test_every_narration_is_written_or_failed_and_the_missing_video_is_in_the_ledger(epic_build):
  output_dir, manifest, _, _ = epic_build
  assert manifest["counts"] == {"requested": 6, "written": 5, "failed": 1,
                                "failed_by_reason": {"permanent/missing_video": 1}}
  assert manifest["failed_clips"] == [{"clip_id": "P03_22_8", "reason": "permanent/missing_video"}]
  assert sorted(manifest["shard_clip_ids"]["validation-00000-of-00001"]) == sorted(set(SPANS) - {"P03_22_8"})
  missing = read_ledger(os.path.join(output_dir, "ledger"))["P03_22_8"]
  assert (missing.status, missing.reason_class, missing.reason) == ("failed", "permanent", "missing_video")
  assert "P03/videos/P03_22.MP4" in missing.message


def test_frames_are_sampled_at_25_fps_from_50_and_59_94_fps_sources(epic_build):
  output_dir, _, videos, _ = epic_build
  stored = read_build(output_dir)
  for narration_id, (start, stop) in SPANS.items():
    if narration_id == "P03_22_8":
      continue
    record, video = stored[narration_id], videos[narration_id[:6]]
    start_s, stop_s = _seconds(start), _seconds(stop)
    assert (record.start_s, record.end_s) == pytest.approx((start_s, stop_s))
    assert record.source_fps == pytest.approx(video.spec.fps, rel=1e-4)
    assert (record.source_width, record.source_height) == (320, 180)
    assert (record.frame_width, record.frame_height) == contract.resized_frame_size(320, 180, TEST_SHORT_SIDE)
    assert_frames_match(record, video, start_s, stop_s)
    assert_audio_aligned(record, video, start_s, stop_s)


def test_fifty_fps_source_gives_every_second_frame(epic_build):
  stored = read_build(epic_build[0])
  # From a frame start (0.00 s) and from the middle of a frame (9.15 s = frame 457.5).
  assert frame_codes(stored["P01_11_0"].jpeg_frames)[:4] == [0, 2, 4, 6]
  assert frame_codes(stored["P01_11_10"].jpeg_frames)[:4] == [457, 459, 461, 463]


def test_verb_noun_and_action_come_from_the_annotations(epic_build):
  output_dir, manifest, _, annotations = epic_build
  stored = read_build(output_dir)
  actions = contract.LabelMap.from_json_dict(manifest["label_map"])
  assert actions.name == "epic_action" and actions.names == ("take plate", "take paper", "roll dough")
  assert set(manifest["label_maps"]) == {"epic_verb", "epic_noun"}
  assert manifest["label_maps"]["epic_verb"]["num_classes"] == 97
  assert manifest["label_maps"]["epic_noun"]["num_classes"] == 300
  with open(annotations, newline="") as f:
    rows = {row["narration_id"]: row for row in csv.DictReader(f)}
  for narration_id, record in stored.items():
    row = rows[narration_id]
    assert (record.dataset, record.source_id) == ("epic_kitchens", row["video_id"])
    assert (record.verb_index, record.noun_index) == (int(row["verb_class"]), int(row["noun_class"]))
    action = ACTIONS.get(narration_id, contract.NO_LABEL)
    assert record.action_index == action
    assert record.label_indices == ([action] if action != contract.NO_LABEL else [])
    assert record.label_names == ([actions.names[action]] if action != contract.NO_LABEL else [])


def test_skip_bad_rows_also_spares_the_annotations_standing_in_for_training(epic_build, tmp_path):
  _, _, videos, _ = epic_build
  videos_dir = os.path.dirname(os.path.dirname(os.path.dirname(videos["P01_11"].path)))
  header, good = _annotation_rows(["P01_11_0"])
  annotations = tmp_path / "EPIC_100_validation.csv"
  _write_csv(annotations, [header, good])
  # A second row, its narration not UTF-8; no --train_annotations, so this file gives the actions too.
  with open(annotations, "ab") as f:
    f.write(",".join(good).replace("P01_11_0", "P01_11_1").encode().replace(b"take plate", b"take pl\xffate") + b"\n")
  output_dir = tmp_path / "build"
  manifest = build_epic_kitchens.run([
      "--videos_dir", videos_dir, "--annotations", str(annotations), "--verb_classes",
      str(EPIC / "EPIC_100_verb_classes.csv"), "--noun_classes", str(EPIC / "EPIC_100_noun_classes.csv"),
      "--output_dir", str(output_dir), "--skip_bad_rows", f"--frame_short_side={TEST_SHORT_SIDE}",
      "--progress_interval=0", IN_MEMORY]).to_json_dict()
  assert manifest["counts"] == {"requested": 2, "written": 1, "failed": 1,
                                "failed_by_reason": {"bad_row/malformed": 1}}
  assert manifest["label_map"]["num_classes"] == 1  # take plate, from the good row
  bad_row = read_ledger(str(output_dir / "ledger"))["bad_row_EPIC_100_validation_csv_L3"]
  assert bad_row.message.startswith(f"{annotations}:3: invalid UTF-8 byte 0xFF at column ")


def test_spans_longer_than_max_span_seconds_fail_unfetched(epic_inputs):
  # 3 s: P02_12_293 (3.19 s) and P02_12_326 (4.57 s) are refused, the rest built as ever.
  work, _, argv = epic_inputs
  output_dir = str(work / "build_max_span")
  manifest = build_epic_kitchens.run([*argv, "--output_dir", output_dir, "--max_span_seconds=3"]).to_json_dict()
  too_long = {"P02_12_293", "P02_12_326"}
  assert manifest["counts"] == {"requested": 6, "written": 3, "failed": 3, "failed_by_reason": {
      "permanent/invalid_span": 2, "permanent/missing_video": 1}}
  assert {f["clip_id"] for f in manifest["failed_clips"] if f["reason"] == "permanent/invalid_span"} == too_long
  assert set(read_build(output_dir)) == set(SPANS) - too_long - {"P03_22_8"}
  assert manifest["build_options"]["max_span_seconds"] == 3.0
  ledger = read_ledger(os.path.join(output_dir, "ledger"))
  for narration_id in too_long:
    record = ledger[narration_id]
    assert (record.status, record.reason_class, record.reason) == ("failed", "permanent", "invalid_span")
    assert "--max_span_seconds=3" in record.message
