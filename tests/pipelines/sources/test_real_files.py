"""The full real annotation files from shared/data, where they are.

CI lays shared/ beside the checkout (../shared/data from the repository
root, see conftest.REAL_DATA); elsewhere these tests are skipped.
"""

import collections

from pipelines.sources import audioset, epic_kitchens, vggsound
from shared import contract


def test_audioset_eval(real_data):
  labels = audioset.load_audioset_label_map(real_data / "audioset" / "class_labels_indices.csv")
  assert len(labels) == 527
  parsed = audioset.parse_audioset_segments(real_data / "audioset" / "eval_segments.csv", labels, split="eval")
  assert len(parsed.rows) == 20_371 and parsed.rejected == ()
  assert sum(len(row.label_indices) for row in parsed.rows) == 51_804  # the header's num_positive_labels
  assert len({i for row in parsed.rows for i in row.label_indices}) == 527
  assert sum(row.duration_s != 10 for row in parsed.rows) == 361
  assert sum(row.source_id.startswith("-") for row in parsed.rows) > 0
  assert not any(row.clip_id.startswith(("-", ".")) for row in parsed.rows)


def test_vggsound_test_list(real_data):
  labels = vggsound.load_vggsound_label_map(real_data / "vggsound" / "stat.csv")
  assert len(labels) == 309
  parsed = vggsound.parse_vggsound_file_list(real_data / "vggsound" / "test.csv", labels, split="test")
  assert len(parsed.rows) == 15_446 and parsed.rejected == ()
  assert len({row.label_indices for row in parsed.rows}) == 309
  # The test list uses every class, so building the map from it gives the same indices.
  assert vggsound.vggsound_label_map_from_csv(real_data / "vggsound" / "test.csv") == labels
  # Several clips of one video are distinct clips, not duplicates.
  assert max(collections.Counter(row.source_id for row in parsed.rows).values()) > 1


def test_epic_validation(real_data):
  directory = real_data / "epic_kitchens"
  verbs = epic_kitchens.load_epic_verb_classes(directory / "EPIC_100_verb_classes.csv")
  nouns = epic_kitchens.load_epic_noun_classes(directory / "EPIC_100_noun_classes.csv")
  assert (len(verbs), len(nouns)) == (97, 300)
  parsed = epic_kitchens.parse_epic_annotations(directory / "EPIC_100_validation.csv", verbs, nouns, split="validation")
  assert len(parsed.rows) == 9_668 and parsed.rejected == ()
  assert sum(len(row.epic.all_nouns) > 1 for row in parsed.rows) == 1_602
  videos = epic_kitchens.load_epic_video_info(directory / "EPIC_100_video_info.csv")
  assert len(videos) == 700
  assert epic_kitchens.check_clips_within_videos(parsed.rows, videos) == []
  # Standing in for the training file, validation gives 1,352 actions.
  actions = epic_kitchens.epic_action_label_map(parsed.rows, verbs, nouns)
  assert len(actions) == 1_352
  assert contract.LabelMap.loads(actions.dumps()) == actions
