"""Fetching: yt-dlp sections from the local server into the ledger, and EPIC's local videos."""

from __future__ import annotations

import os
import pickle

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that

from pipelines import build, fetch
from pipelines.download.backoff import RetryPolicy
from pipelines.download.downloader import DownloadConfig
from pipelines.download.ledger import read_ledger
from pipelines.sources import epic_kitchens
from pipelines.sources.rows import ClipRequest
from shared import records
from shared.media import decode
from testsupport.media_server import Fault

from .conftest import (IN_MEMORY, TEST_SHORT_SIDE, assert_frames_match, counters, expected_frame_codes, frame_codes,
                       requests_for)


def _request(source_id: str, start: float, end: float, clip_id: str | None = None,
             dataset: str = "vggsound") -> ClipRequest:
  return ClipRequest(dataset=dataset, clip_id=clip_id or f"yt_{source_id}_{int(start * 1000):09d}",
                     source_id=source_id, start_s=start, end_s=end, label_indices=(0,), label_names=("x",))


def _run(requests, fetch_transform, scratch):
  """Runs the fetch step; returns (fetched, failures) as lists, and the counters."""
  pipeline = beam.Pipeline(options=build.pipeline_options([IN_MEMORY]))
  fetched, failures = pipeline | beam.Create(requests) | fetch_transform

  def keep(path):
    def write(elements):  # Beam pickles this function: the elements come back through a file
      with open(path, "wb") as f:
        pickle.dump(list(elements), f)
    return write

  assert_that(fetched, keep(str(scratch / "fetched.pickle")), label="KeepFetched")
  assert_that(failures, keep(str(scratch / "failures.pickle")), label="KeepFailures")
  result = pipeline.run()
  result.wait_until_finish()
  with open(scratch / "fetched.pickle", "rb") as f, open(scratch / "failures.pickle", "rb") as g:
    return pickle.load(f), pickle.load(g), counters(result)


@pytest.fixture
def youtube_fetch(tmp_path, url_template):
  config = DownloadConfig(output_dir=str(tmp_path / "media"), url_template=url_template, socket_timeout_s=2.0,
                          retry=RetryPolicy(max_attempts=2, base_delay_s=0.05))
  ledger_dir = str(tmp_path / "ledger")
  return fetch.FetchFromYouTube(config, ledger_dir), ledger_dir


def test_youtube_fetch_records_every_clip_and_points_at_the_span_on_the_files_clock(
    youtube_fetch, serve, media_server, source_media, tmp_path):
  transform, ledger_dir = youtube_fetch
  good, gone = serve("fetch", "av.mp4"), serve("fetch", "av.mp4", Fault.http_status(404))
  requests = [_request(good, 6.0, 8.0), _request(gone, 6.0, 8.0)]

  fetched, failures, found = _run(requests, transform, tmp_path)

  [clip] = fetched
  assert clip.request == requests[0]
  ledger = read_ledger(ledger_dir)
  ok = ledger[clip.request.clip_id]
  assert (ok.status, ok.attempts) == ("ok", 1)
  # The section file keeps the source's clock: the span as asked, from presentation time 0.
  assert (clip.media_start_s, clip.media_clock_origin_s) == (6.0, 0.0)
  assert 0 <= ok.source_offset_s <= 5.0  # the file starts at the keyframe before the section
  decoded = decode.decode_clip(clip.media_path, clip.media_start_s, clip.media_start_s + 2.0,
                               decode.DecodeOptions(short_side=TEST_SHORT_SIDE),
                               clock_origin_s=clip.media_clock_origin_s)
  assert_frames_match(decoded, source_media.av_mp4, 6.0, 8.0)
  [failure] = failures
  assert failure == ledger[failure.clip_id]  # the same record, in the ledger as soon as known
  assert (failure.clip_id, failure.reason_class, failure.reason) == (requests[1].clip_id, "permanent", "http_404")
  assert found["fetch/downloaded"] == 1 and found["fetch/failed_permanent_http_404"] == 1
  assert transform.writes_ledger


def test_youtube_fetch_reuses_a_verified_download(youtube_fetch, serve, media_server, tmp_path):
  transform, ledger_dir = youtube_fetch
  ytid = serve("refetch", "av.mp4")
  request = _request(ytid, 2.0, 4.0)
  [first], _, _ = _run([request], transform, tmp_path)
  asked = requests_for(media_server, [ytid])

  [again], _, found = _run([request], transform, tmp_path)

  assert requests_for(media_server, [ytid]) == asked
  assert (again.media_path, again.media_start_s) == (first.media_path, first.media_start_s)
  assert found == {"fetch/reused_from_media_dir": 1}
  assert read_ledger(ledger_dir)[request.clip_id].attempts == 0


def test_local_videos_are_opened_in_place_and_missing_ones_fail(tmp_path):
  videos_dir = str(tmp_path / "EPIC-KITCHENS")
  present = epic_kitchens.epic_video_path(videos_dir, "P01_11")
  os.makedirs(os.path.dirname(present))
  with open(present, "wb") as f:
    f.write(b"a video")  # opening only checks the file is there; decoding comes later
  requests = [_request("P01_11", 3.5, 5.0, clip_id="P01_11_3", dataset="epic_kitchens"),
              _request("P03_22", 1.0, 2.0, clip_id="P03_22_8", dataset="epic_kitchens")]

  transform = fetch.OpenLocalVideos(videos_dir)
  fetched, failures, found = _run(requests, transform, tmp_path)

  # A whole source: the span on its own clock, from its first timestamp.
  assert [(c.request.clip_id, c.media_path, c.media_start_s, c.media_clock_origin_s) for c in fetched] == [
      ("P01_11_3", present, 3.5, None)]
  [failure] = failures
  assert (failure.clip_id, failure.reason_class, failure.reason, failure.attempts) == (
      "P03_22_8", "permanent", "missing_video", 0)
  assert "P03/videos/P03_22.MP4" in failure.message
  assert found == {"fetch/opened": 1, "fetch/failed_missing_video": 1}
  assert not transform.writes_ledger  # the build records these failures itself


def test_a_section_that_starts_just_after_the_span_is_padded_not_refused(serve, source_media, url_template,
                                                                         tmp_path):
  # Without a margin, an MPEG-PS cut lands on the first keyframe after the
  # section start (MPEG-PS has no index to seek back by): here 20 ms into the
  # span, within what verification allows. On the file's own clock the span
  # would start before the file (an invalid span); on the source's it decodes.
  from pipelines import features

  clip = source_media.late_start["late_mpg_video"]
  ytid = serve("nomargin", os.path.basename(clip.path))
  config = DownloadConfig(output_dir=str(tmp_path / "media"), url_template=url_template, socket_timeout_s=2.0,
                          margin_s=0.0, retry=RetryPolicy(max_attempts=2, base_delay_s=0.05))
  [fetched], [], _ = _run([_request(ytid, 4.3, 6.0)], fetch.FetchFromYouTube(config, str(tmp_path / "ledger")),
                          tmp_path)
  assert read_ledger(str(tmp_path / "ledger"))[fetched.request.clip_id].source_offset_s > 4.3

  extract = features.ExtractFeaturesFn(decode.DecodeOptions(short_side=TEST_SHORT_SIDE))
  extract.setup()
  [encoded] = list(extract.process(fetched))
  record = records.decode(encoded.serialized)
  codes = frame_codes(record.jpeg_frames)
  assert codes[1:] == expected_frame_codes(clip, 4.3, len(codes))[1:]  # the first repeats the file's first frame
  assert record.decoded_duration_s == pytest.approx(1.7 - 0.02, abs=0.01)
