"""The breaker: a run of failures that point at the worker stops it, and nothing it saw is recorded as gone."""

from __future__ import annotations

import pytest

from pipelines.download import breaker
from pipelines.download.results import DownloadRequest
from shared.failures import FailureClass, Reason
from testsupport.media_server import Fault


def test_a_run_of_suspect_failures_opens_it_and_a_success_resets_the_run():
  watch = breaker.SystemicFailureBreaker(threshold=3)
  for reason in (Reason.HTTP_FORBIDDEN, Reason.HTTP_FORBIDDEN, None, Reason.HTTP_FORBIDDEN):
    watch.record(ok=reason is None, reason=reason)
  assert not watch.open  # the success between broke the run
  for reason in (Reason.HTTP_NOT_FOUND, Reason.PRIVATE, Reason.BOT_CHECK, Reason.HTTP_FORBIDDEN):
    watch.record(ok=False, reason=reason)  # the clips' own failures neither count nor break the run
  assert watch.open and watch.trigger is Reason.HTTP_FORBIDDEN
  assert "3 clips in a row failed with permanent/http_403" in watch.describe()


def test_threshold_zero_never_opens():
  watch = breaker.SystemicFailureBreaker(threshold=0)
  for _ in range(100):
    watch.record(ok=False, reason=Reason.BOT_CHECK)
  assert not watch.open


def test_the_cause_travels_in_the_message():
  message = breaker.systemic_message(Reason.SIGN_IN_REQUIRED, "not fetched: ...")
  assert breaker.trigger_of(message) is Reason.SIGN_IN_REQUIRED
  assert breaker.trigger_of("permanent/http_403 something else") is None
  line = breaker.stop_line([Reason.BOT_CHECK, Reason.BOT_CHECK, Reason.PROXY], 7, "run it again")
  assert line.startswith("downloads stopped after runs of needs_cookies/bot_check: YouTube asks")
  assert "7 clips are recorded as transient/systemic, none as gone; once fixed, run it again" in line


def test_a_downloader_facing_a_wall_of_403s_stops_asking(make_downloader, serve_as, server):
  ytids = [serve_as("long.mp4") for _ in range(6)]
  for ytid in ytids:
    server.inject(f"{ytid}.mp4", Fault.http_status(403))
  downloader = make_downloader(breaker_threshold=3)
  results = [downloader.download(DownloadRequest(clip_id=f"yt_{y}_000002000", source_id=y, start_s=2.0, end_s=4.0))
             for y in ytids]

  assert [r.reason for r in results] == [Reason.HTTP_FORBIDDEN] * 3 + [Reason.SYSTEMIC] * 3
  assert {r.failure_class for r in results[3:]} == {FailureClass.TRANSIENT}
  assert [server.request_count(f"{y}.mp4") for y in ytids] == [1, 1, 1, 0, 0, 0]
  assert breaker.trigger_of(results[-1].message) is Reason.HTTP_FORBIDDEN
