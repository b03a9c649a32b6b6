"""EPIC-KITCHENS-100 narrations, classes, actions, video info and paths."""

import dataclasses
import pathlib
import re

import pytest

from pipelines.sources import epic_kitchens as epic
from pipelines.sources.rows import EPIC_KITCHENS, BadFileError, BadRowError
from shared import contract

HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,stop_frame,"
    "narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
)
ROW = (
    "P01_11_12,P01,P01_11,00:00:52.620,00:00:51.98,00:00:53.03,3118,3181,throw paper into bin,throw-into,13,"
    "paper,49,\"['paper', 'bin']\",\"[49, 36]\"\n"
)


@pytest.fixture(scope="module")
def validation(samples, epic_verbs, epic_nouns):
  return epic.parse_epic_annotations(
      samples / "epic_kitchens" / "EPIC_100_validation_sample.csv", epic_verbs, epic_nouns, split="validation"
  )


def test_class_maps(epic_verbs, epic_nouns):
  assert (epic_verbs.name, len(epic_verbs), epic_verbs.names[:2]) == ("epic_verb", 97, ("take", "put"))
  assert (epic_nouns.name, len(epic_nouns), epic_nouns.names[0]) == ("epic_noun", 300, "tap")
  assert epic_nouns.index_of_id("board:chopping") == epic_nouns.index_of_name("board:chopping")


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("00:00:00.00", 0.0),
        ("00:00:51.98", 51.98),
        ("00:06:47.220", 407.22),
        ("01:02:03.5", 3723.5),
        ("00:30:21.75", 1821.75),
    ],
)
def test_timestamps(text, seconds):
  assert epic.timestamp_to_seconds(text) == seconds


@pytest.mark.parametrize(
    "text", ["0:00:01.00", "00:60:00.00", "00:00:60.00", "00:00:01,00", "-00:00:01.00", "", "00:01"]
)
def test_bad_timestamps(text):
  with pytest.raises(ValueError):
    epic.timestamp_to_seconds(text)


def test_validation_sample(validation):
  assert len(validation.rows) == 241 and validation.rejected == ()
  first = validation.rows[0]
  assert first.dataset == EPIC_KITCHENS and first.split == "validation"
  assert (first.clip_id, first.source_id, first.start_s, first.end_s) == ("P01_11_0", "P01_11", 0.0, 1.89)
  assert first.epic.narration_timestamp_s == 0.56
  assert (first.epic.verb, first.epic.verb_class, first.epic.noun, first.epic.noun_class) == ("take", 0, "plate", 2)
  # No action map given: no action, and nothing in label_indices.
  assert first.epic.action_index == contract.NO_LABEL and first.label_indices == ()


def test_rows_with_several_nouns(validation):
  by_id = {row.clip_id: row.epic for row in validation.rows}
  assert by_id["P01_11_12"].all_nouns == ("paper", "bin")
  assert by_id["P01_11_12"].all_noun_classes == (49, 36)
  four = [row for row in validation.rows if len(row.epic.all_nouns) == 4]
  assert len(four) == 3 and all(len(row.epic.all_noun_classes) == 4 for row in four)
  assert sum(len(row.epic.all_nouns) > 1 for row in validation.rows) >= 60


def test_empty_narration_timestamp(validation):
  silent = [row for row in validation.rows if row.epic.narration_timestamp_s is None]
  assert len(silent) == 10


def test_uses_timestamps_not_frames(epic_verbs, epic_nouns):
  # The frame columns count at 60 fps whatever the video's rate (29.97, 90,
  # ...): only the timestamps are exact, and the frames are not even read.
  line = ROW.replace(",3118,3181,", ",1,0,")
  (row,) = epic.parse_epic_lines([HEADER, line], file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns).rows
  assert (row.start_s, row.end_s) == (51.98, 53.03)


def test_action_map_from_training_pairs(validation, epic_verbs, epic_nouns):
  actions = epic.epic_action_label_map(validation.rows, epic_verbs, epic_nouns)
  pairs = sorted({(row.epic.verb_class, row.epic.noun_class) for row in validation.rows})
  assert actions.name == "epic_action"
  assert actions.ids == tuple(f"{v},{n}" for v, n in pairs)
  assert actions.names[actions.index_of_id("0,2")] == "take plate"
  # Row order does not matter.
  assert epic.epic_action_label_map(reversed(validation.rows), epic_verbs, epic_nouns) == actions

  labelled = epic.with_actions(validation.rows, actions)
  row = labelled[0]
  assert row.epic.action_index == actions.index_of_id("0,2")
  assert row.label_indices == (row.epic.action_index,) and row.label_names == ("take plate",)


def test_training_file_builds_its_own_action_map(samples, epic_verbs, epic_nouns):
  path = samples / "epic_kitchens" / "EPIC_100_validation_sample.csv"
  train = epic.parse_epic_training_annotations(path, epic_verbs, epic_nouns)
  assert all(row.epic.action_index != contract.NO_LABEL for row in train.rows)
  assert {row.split for row in train.rows} == {"train"}
  # The map then goes to the other splits through the line parser.
  other = epic.parse_epic_annotations(path, epic_verbs, epic_nouns, action_map=train.label_map)
  assert other.rows == tuple(dataclasses.replace(row, split=None) for row in train.rows)


def test_unknown_pairs_get_no_label(epic_verbs, epic_nouns):
  actions = contract.LabelMap.from_names("epic_action", ["take plate"], ids=[epic.action_id(0, 2)])
  parsed = epic.parse_epic_lines(
      [HEADER, ROW], file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns, action_map=actions
  )
  (row,) = parsed.rows
  assert (row.epic.verb_class, row.epic.noun_class) == (13, 49)
  assert row.epic.action_index == contract.NO_LABEL and row.label_indices == () and row.label_names == ()
  assert parsed.label_map is actions


def test_unlabelled_test_file(samples, epic_verbs, epic_nouns):
  path = samples / "epic_kitchens" / "EPIC_100_test_timestamps_sample.csv"
  parsed = epic.parse_epic_annotations(path, epic_verbs, epic_nouns, split="test")
  assert len(parsed.rows) == 50
  row = parsed.rows[0].epic
  assert (row.verb_class, row.noun_class, row.action_index) == (contract.NO_LABEL,) * 3
  assert (row.verb, row.noun, row.narration, row.all_nouns) == (None, None, None, ())


@pytest.mark.parametrize(
    "old, new, reason",
    [
        (",throw paper into bin,", ",throw paper, into bin,", "expected 15 columns as in the header, got 16"),
        ("P01_11_12,P01,P01_11,", "P01_11_12,P02,P01_11,", "video_id 'P01_11' is not P02_NN"),
        ("P01_11_12,P01,P01_11,", "P01_12_12,P01,P01_11,", "narration_id 'P01_12_12' is not P01_11_N"),
        ("P01_11_12,P01,P01_11,", "P01_11_x,P01,P01_11,", "narration_id 'P01_11_x'"),
        ("P01_11_12,P01,P01_11,", "P01_11_12,P1,P01_11,", "bad participant_id 'P1'"),
        (",00:00:51.98,", ",00:00:51:98,", "not a HH:MM:SS.ff timestamp: '00:00:51:98'"),
        (",00:00:53.03,", ",00:00:51.98,", "stop_timestamp 00:00:51.98 <= start_timestamp 00:00:51.98"),
        (",00:00:53.03,", ",00:00:50.00,", "stop_timestamp 00:00:50.00 <= start_timestamp 00:00:51.98"),
        (",throw-into,13,", ",throw-into,97,", "unknown label: verb_class 97 is not a class of 'epic_verb'"),
        (",paper,49,", ",paper,300,", "unknown label: noun_class 300"),
        (",paper,49,", ",paper,-1,", "noun_class '-1' is not a class index"),
        (",throw-into,13,", ",throw-into,thirteen,", "verb_class 'thirteen' is not a class index"),
        (",throw-into,13,", ",,13,", "empty verb or noun"),
        ('"[49, 36]"', '"[49, 36, 2]"', "all_nouns has 2 items but all_noun_classes 3"),
        ('"[49, 36]"', '"[49, 300]"', "unknown label: all_noun_classes 300"),
        ('"[49, 36]"', '"[49, \'bin\']"', "is not a list of int"),
        ('"[49, 36]"', '"[True, 36]"', "is not a list of int"),
        ("\"['paper', 'bin']\"", "\"['paper', 'bin'\"", "is not a Python literal"),
        ("\"['paper', 'bin']\"", '"__import__(\'os\')"', "is not a Python literal"),
    ],
)
def test_malformed_rows(epic_verbs, epic_nouns, old, new, reason):
  assert old in ROW
  columns = epic.parse_epic_header(HEADER, "v.csv")
  parse = epic.EpicLineParser(columns, epic_verbs, epic_nouns)
  with pytest.raises(BadRowError) as caught:
    parse(ROW.replace(old, new, 1), "v.csv", 5)
  assert reason in caught.value.reason
  assert str(caught.value).startswith("v.csv:5: ")


def test_skip_bad_rows_and_duplicates(epic_verbs, epic_nouns):
  bad = ROW.replace(",00:00:53.03,", ",00:00:50.00,")
  lines = [HEADER, ROW, bad, ROW]
  parsed = epic.parse_epic_lines(lines, file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns, skip_bad_rows=True)
  assert [row.clip_id for row in parsed.rows] == ["P01_11_12"]
  assert [(r.line, r.reason) for r in parsed.rejected] == [
      (3, "stop_timestamp 00:00:50.00 <= start_timestamp 00:00:51.98"),
      (4, "duplicate clip id 'P01_11_12', first at line 2"),
  ]
  assert parsed.rejected[0].raw == bad.rstrip("\n")


@pytest.mark.parametrize(
    "header, reason",
    [
        ("narration_id,participant_id,video_id,start_timestamp\n", "lacks column(s) stop_timestamp"),
        (HEADER.replace(",noun_class,", ",noun_klass,"), "has label column(s)"),
        (HEADER.replace(",start_frame,", ",narration,"), "names a column twice"),
    ],
)
def test_bad_headers(epic_verbs, epic_nouns, header, reason):
  with pytest.raises(BadFileError, match=re.escape(reason)):
    epic.parse_epic_lines([header, ROW], file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns)
  with pytest.raises(BadFileError, match="no header"):
    epic.parse_epic_lines([], file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns)


def test_video_info_and_clip_bounds(samples, validation):
  videos = epic.load_epic_video_info(samples / "epic_kitchens" / "EPIC_100_video_info.csv")
  assert len(videos) == 700
  assert videos["P01_01"] == epic.EpicVideoInfo("P01_01", 1652.152817, 59.9400599400599, 1920, 1080)
  assert {v.fps for v in videos.values()} >= {50.0, 59.9400599400599}
  # One real narration stops 13 ms after its video ends.
  assert epic.check_clips_within_videos(validation.rows, videos) == []
  (problem,) = epic.check_clips_within_videos(validation.rows, videos, tolerance_s=0)
  assert problem.startswith("P29_05_563: ends at 1821.75 s")
  assert epic.check_clips_within_videos(validation.rows, {}) != []


def test_video_info_errors(tmp_path):
  path = tmp_path / "info.csv"
  path.write_text("video_id,duration,fps,resolution\nP01_01,10.0,50.0,1920x1080\nP01_01,11.0,50.0,1920x1080\n")
  with pytest.raises(BadRowError, match="info.csv:3: video 'P01_01' listed twice"):
    epic.load_epic_video_info(path)
  path.write_text("video_id,duration,fps,resolution\nP01_01,10.0,50.0,1920*1080\n")
  with pytest.raises(BadRowError, match="resolution"):
    epic.load_epic_video_info(path)


def test_video_path():
  assert epic.epic_video_path("/data/epic", "P01_11") == "/data/epic/P01/videos/P01_11.MP4"
  assert epic.epic_video_path("/data/epic/", "P01_101") == "/data/epic/P01/videos/P01_101.MP4"
  assert epic.epic_video_path("gs://bucket/epic", "P37_103") == "gs://bucket/epic/P37/videos/P37_103.MP4"
  assert epic.epic_video_path(pathlib.Path("videos"), "P02_01") == "videos/P02/videos/P02_01.MP4"


@pytest.mark.parametrize(
    "video_id",
    ["../P01_11", "P01_11/../../etc", "/etc/passwd", "P01_11\0", "P01_1", "P01_11.MP4", "p01_11", "P01_11\n"],
)
def test_video_path_cannot_escape(tmp_path, video_id):
  with pytest.raises(ValueError, match="not an EPIC-KITCHENS video id"):
    epic.epic_video_path(tmp_path, video_id)


def test_every_sample_path_stays_inside(tmp_path, validation):
  root = tmp_path.resolve()
  for row in validation.rows:
    path = pathlib.Path(epic.epic_video_path(tmp_path, row.source_id)).resolve()
    assert path.is_relative_to(root) and path.parts[-3:] == (row.epic.participant_id, "videos", f"{row.source_id}.MP4")


def test_byte_order_mark_on_the_header(epic_verbs, epic_nouns):
  # Beam's text reader hands over the first line with its BOM, if any.
  parsed = epic.parse_epic_lines(["\ufeff" + HEADER, ROW], file="v.csv", verb_map=epic_verbs, noun_map=epic_nouns)
  assert [row.clip_id for row in parsed.rows] == ["P01_11_12"]
