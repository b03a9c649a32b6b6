"""ExtractFeatures: a fetched media file -> an encoded record, or a failure record with its reason."""

from __future__ import annotations

import os
import pickle

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines import build, features, fetch
from pipelines.download import ledger
from pipelines.download.backoff import RetryPolicy
from pipelines.download.downloader import DownloadConfig
from pipelines.shards import EncodedClip
from pipelines.sources.rows import ClipRequest, EpicAnnotation
from shared import contract, layout, records
from shared.failures import Reason
from shared.media import decode, generator

from pipelines.sources import epic_kitchens
from shared.media.generator import LATE_START_NAMES

from .conftest import IN_MEMORY, TEST_SHORT_SIDE, assert_audio_aligned, assert_frames_match, assert_silent

OPTIONS = decode.DecodeOptions(short_side=TEST_SHORT_SIDE)


def _request(clip_id: str = "yt_abcdefghijk_000100000", start: float = 100.0, end: float = 102.0,
             epic: EpicAnnotation | None = None) -> ClipRequest:
  return ClipRequest(dataset="vggsound", clip_id=clip_id, source_id="abcdefghijk", start_s=start, end_s=end,
                     label_indices=(3,), label_names=("dog barking",), split="test", epic=epic)


@pytest.fixture(scope="module")
def local_media(tmp_path_factory):
  directory = tmp_path_factory.mktemp("features_media")
  av = generator.write_clip(str(directory / "av.mp4"), generator.ClipSpec(duration_s=4.0, width=160, height=120,
                                                                          fps=30.0))
  audio_only = generator.write_clip(str(directory / "audio.mp4"), generator.ClipSpec(duration_s=4.0, video=False))
  silent = generator.write_clip(str(directory / "silent.mp4"), generator.ClipSpec(duration_s=4.0, width=160,
                                                                                  height=120, audio=False))
  not_media = directory / "page.mp4"
  not_media.write_bytes(b"<html><body>This is not a media file.</body></html>\n")
  return {"av": av, "audio_only": audio_only.path, "silent": silent.path, "not_media": str(not_media),
          "missing": str(directory / "missing.mp4")}


def _process(fetched: features.FetchedClip, options: decode.DecodeOptions = OPTIONS, require_audio: bool = False,
             staging_dir: str | None = None):
  fn = features.ExtractFeaturesFn(options, require_audio=require_audio, staging_dir=staging_dir)
  fn.setup()
  return list(fn.process(fetched))


def test_span_is_decoded_on_the_files_clock_and_labelled_from_the_request(local_media):
  # The request names source seconds 100-102; the fetched file holds them from its second 1.5.
  clip = local_media["av"]
  [encoded] = _process(features.FetchedClip(_request(), clip.path, media_start_s=1.5))

  assert isinstance(encoded, EncodedClip) and encoded.clip_id == "yt_abcdefghijk_000100000"
  record = records.decode(encoded.serialized)
  assert (record.start_s, record.end_s) == (100.0, 102.0)
  assert (record.label_indices, record.label_names) == ([3], ["dog barking"])
  assert (record.dataset, record.source_id, record.decoded_duration_s) == ("vggsound", "abcdefghijk", 2.0)
  assert_frames_match(record, clip, 1.5, 3.5)
  assert_audio_aligned(record, clip, 1.5, 3.5)
  # The log-mel moments the manifest sums.
  assert encoded.melspec_count == record.melspec.size
  assert encoded.melspec_sum == pytest.approx(float(record.melspec.astype("float64").sum()), rel=1e-6)


def test_with_a_staging_dir_the_record_is_staged_where_it_is_made(local_media, tmp_path):
  fetched = features.FetchedClip(_request(), local_media["av"].path, media_start_s=1.5)
  [in_memory] = _process(fetched)
  [staged] = _process(fetched, staging_dir=str(tmp_path / "staging"))

  # The element names the file instead of holding the bytes, which are the same record.
  assert staged.serialized == b""
  assert staged.staged_path == str(tmp_path / "staging" / layout.staged_record_name(staged.clip_id))
  assert staged.payload() == in_memory.serialized
  assert staged._replace(staged_path=None, serialized=in_memory.serialized) == in_memory
  assert [p.name for p in (tmp_path / "staging").iterdir()] == [layout.staged_record_name(staged.clip_id)]


def test_epic_fields_go_into_the_record(local_media):
  epic = EpicAnnotation(narration_id="P01_11_0", participant_id="P01", video_id="P01_11",
                        narration_timestamp_s=0.56, narration="take plate", verb="take", verb_class=0,
                        noun="plate", noun_class=2, all_nouns=("plate",), all_noun_classes=(2,), action_index=7)
  request = _request(clip_id="P01_11_0", start=0.5, end=1.0, epic=epic)
  [encoded] = _process(features.FetchedClip(request, local_media["av"].path, media_start_s=0.5))
  record = records.decode(encoded.serialized)
  assert (record.verb_index, record.noun_index, record.action_index) == (0, 2, 7)
  assert len(record.jpeg_frames) == contract.num_frames(0.5)


@pytest.mark.parametrize("media, reason", [
    ("not_media", "undecodable"),
    ("missing", "not_media"),
    ("audio_only", "missing_stream"),
])
def test_media_that_does_not_decode_becomes_a_failure_record(local_media, media, reason):
  [output] = _process(features.FetchedClip(_request(), local_media[media], media_start_s=0.0))

  assert isinstance(output, beam.pvalue.TaggedOutput) and output.tag == features.FAILED
  failure = output.value
  assert isinstance(failure, ledger.LedgerRecord)
  assert (failure.clip_id, failure.source_id, failure.start_s, failure.end_s) == (
      "yt_abcdefghijk_000100000", "abcdefghijk", 100.0, 102.0)
  assert (failure.status, failure.reason_class, failure.reason) == ("failed", "invalid_media", reason)
  assert failure.message


def test_clips_without_audio_are_stored_silent_or_fail_when_audio_is_required(local_media):
  fetched = features.FetchedClip(_request(), local_media["silent"], media_start_s=0.0)
  [encoded] = _process(fetched)
  assert isinstance(encoded, EncodedClip) and not encoded.has_audio
  [failed] = _process(fetched, require_audio=True)
  assert (failed.tag, failed.value.reason_class, failed.value.reason) == (
      features.FAILED, "invalid_media", "missing_stream")
  [encoded] = _process(features.FetchedClip(_request(), local_media["av"].path, 0.0), require_audio=True)
  assert encoded.has_audio


def test_a_decode_past_its_deadline_fails_the_clip_only(local_media):
  hasty = decode.DecodeOptions(short_side=TEST_SHORT_SIDE, deadline_s=1e-6)
  [output] = _process(features.FetchedClip(_request(), local_media["av"].path, 0.0), hasty)
  assert (output.value.reason_class, output.value.reason) == ("invalid_media", "decode_timeout")


def test_transform_splits_records_and_failures_and_counts_them(local_media):
  fetched = [
      features.FetchedClip(_request("good_clip"), local_media["av"].path, 0.0),
      features.FetchedClip(_request("bad_clip"), local_media["not_media"], 0.0),
  ]
  pipeline = beam.Pipeline(options=build.pipeline_options([IN_MEMORY]))
  encoded, failures = (pipeline | beam.Create(fetched) | features.ExtractFeatures(OPTIONS))
  assert_that(encoded | "EncodedIds" >> beam.Map(lambda clip: clip.clip_id), equal_to(["good_clip"]),
              label="OneEncoded")
  assert_that(failures | "FailureReasons" >> beam.Map(lambda r: (r.clip_id, r.reason)),
              equal_to([("bad_clip", "undecodable")]), label="OneFailed")
  result = pipeline.run()
  result.wait_until_finish()
  found = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
  assert found == {"clips_encoded": 1, "failed_invalid_media_undecodable": 1}


def test_failure_record_carries_the_span_and_the_reason():
  record = features.failure_record(_request(), Reason.MISSING_VIDEO, "not found", attempts=0)
  assert (record.clip_id, record.status, record.reason_class, record.reason, record.message) == (
      "yt_abcdefghijk_000100000", "failed", "permanent", "missing_video", "not found")
  assert (record.start_s, record.end_s, record.attempts) == (100.0, 102.0, 0)
  assert ledger.LedgerRecord.from_json_dict(record.to_json_dict()) == record


# ---------------------------------------------------------------------------
# One clock on every path: second 0 of a span is the source's first timestamp.
# ---------------------------------------------------------------------------
# A user's spans on a source whose first timestamp is 0.54 s, and one after a seek.
LATE_SPANS = ((1.0, 7.0), (0.0, 6.0), (4.3, 6.1))


def _fetch_and_extract(requests, fetch_step, scratch) -> dict[str, records.ClipRecord]:
  """Runs fetch -> ExtractFeatures in Beam; returns the records by clip id (no failures allowed)."""
  pipeline = beam.Pipeline(options=build.pipeline_options([IN_MEMORY]))
  fetched, fetch_failures = pipeline | beam.Create(requests) | fetch_step
  encoded, feature_failures = fetched | features.ExtractFeatures(OPTIONS)
  kept = str(scratch / "records.pickle")

  def keep(elements):  # Beam pickles this function: the records come back through a file
    with open(kept, "wb") as f:
      pickle.dump([clip.serialized for clip in elements], f)

  assert_that(encoded, keep, label="KeepRecords")
  assert_that((fetch_failures, feature_failures) | beam.Flatten(), equal_to([]), label="NoFailures")
  pipeline.run().wait_until_finish()
  with open(kept, "rb") as f:
    return {record.clip_id: record for record in map(records.decode, pickle.load(f))}


@pytest.mark.parametrize("path", ["youtube", "epic"])
def test_late_start_sources_give_frame_k_at_start_plus_k_over_25_on_every_path(
    path, source_media, serve, url_template, tmp_path):
  # YouTube: real yt-dlp sections from the local server; EPIC: the file itself.
  # Either way frame k is the source frame shown at s + k/25 and audio sample 0
  # is at s, counted from the source's first timestamp.
  sources = {name: source_media.late_start[name] for name in LATE_START_NAMES}
  if path == "youtube":
    source_ids = {name: serve("late", os.path.basename(clip.path)) for name, clip in sources.items()}
    config = DownloadConfig(output_dir=str(tmp_path / "media"), url_template=url_template, socket_timeout_s=2.0,
                            retry=RetryPolicy(max_attempts=2, base_delay_s=0.05))
    fetch_step = fetch.FetchFromYouTube(config, str(tmp_path / "ledger"))
  else:
    source_ids = {name: f"P9{i}_01" for i, name in enumerate(sources)}
    videos_dir = str(tmp_path / "EPIC-KITCHENS")
    for name, clip in sources.items():
      video = epic_kitchens.epic_video_path(videos_dir, source_ids[name])
      os.makedirs(os.path.dirname(video), exist_ok=True)
      os.symlink(clip.path, video)
    fetch_step = fetch.OpenLocalVideos(videos_dir)
  requests = {(name, span): ClipRequest(dataset="vggsound", clip_id=f"{source_ids[name]}_{k}",
                                        source_id=source_ids[name], start_s=span[0], end_s=span[1],
                                        label_indices=(0,), label_names=("x",))
              for name in sources for k, span in enumerate(LATE_SPANS)}

  built = _fetch_and_extract(list(requests.values()), fetch_step, tmp_path)

  assert set(built) == {request.clip_id for request in requests.values()}
  for (name, (start, end)), request in requests.items():
    record, clip = built[request.clip_id], sources[name]
    assert_frames_match(record, clip, start, end)
    if clip.spec.audio:
      assert_audio_aligned(record, clip, start, end)
    else:
      assert_silent(record)
