"""The requests file: what a build was asked for, read back exactly, fingerprinted, compared."""

from __future__ import annotations

import dataclasses

from pipelines import clip_requests
from pipelines.sources.rows import ClipRequest, EpicAnnotation

EPIC = EpicAnnotation(narration_id="P01_11_0", participant_id="P01", video_id="P01_11", narration_timestamp_s=None,
                      narration="take plate", verb="take", verb_class=0, noun="plate", noun_class=2,
                      all_nouns=("plate",), all_noun_classes=(2,), action_index=7)
CLIPS = (
    ClipRequest(dataset="vggsound", clip_id="yt_b", source_id="b", start_s=1.0, end_s=11.0, label_indices=(3,),
                label_names=("dog barking",), split="test"),
    ClipRequest(dataset="epic_kitchens", clip_id="P01_11_0", source_id="P01_11", start_s=0.5, end_s=2.25,
                label_indices=(7,), label_names=("take plate",), epic=EPIC),
)


def test_written_and_read_back_exactly_with_the_same_bytes_every_time(tmp_path):
  requests = clip_requests.Requests.of(CLIPS, [clip_requests.BadRow("bad_row_test_csv_L6", "2 fields, expected 3")])
  path = str(tmp_path / "requests.jsonl.gz")
  clip_requests.write_requests(path, requests)
  first = open(path, "rb").read()
  assert clip_requests.read_requests(path) == requests
  clip_requests.write_requests(path, clip_requests.Requests.of(reversed(CLIPS), requests.bad_rows))
  assert open(path, "rb").read() == first  # order and time of writing leave no trace


def test_fingerprints_and_differences():
  before = clip_requests.Requests.of(CLIPS)
  shorter = dataclasses.replace(CLIPS[0], end_s=6.0)
  relabelled = dataclasses.replace(CLIPS[1], label_names=("put plate",))
  assert clip_requests.Requests.of(reversed(CLIPS)).fingerprint() == before.fingerprint()
  assert clip_requests.Requests.of([shorter, CLIPS[1]]).fingerprint() != before.fingerprint()
  now = clip_requests.Requests.of([shorter, relabelled, dataclasses.replace(CLIPS[0], clip_id="yt_c")])
  assert clip_requests.describe_difference(before, now) == (
      "1 new clips (e.g. yt_c), 1 clips with other spans (e.g. yt_b: 1-11 s there, 1-6 s now), "
      "1 clips with other labels (e.g. P01_11_0: ['take plate'] there, ['put plate'] now)")
  assert clip_requests.describe_difference(before, before) == "the same requests"
