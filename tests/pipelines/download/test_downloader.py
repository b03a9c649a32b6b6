"""The downloader against real yt-dlp, real ffmpeg and a real local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import shutil
import socket
import threading

import av
import numpy as np
import pytest

from pipelines.download.backoff import RetryPolicy
from pipelines.download.ledger import LedgerWriter, read_ledger
from pipelines.download.results import DownloadRequest
from shared import contract
from shared.failures import FailureClass, Reason
from shared.media import decode, generator
from shared.media.generator import read_frame_code
from testsupport.media_server import Fault, FaultKind


def frame_code_at(path: str, t: float) -> int:
  """The frame index painted into the frame presented at time t of the file."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    shown = None
    for frame in container.decode(stream):
      if frame.time > t + 1e-6:
        break
      shown = frame
    assert shown is not None, f"no frame at or before {t} s in {path}"
    return read_frame_code(shown.to_ndarray(format="rgb24"))


def audio_lag_samples(path: str, clip, start: float, end: float) -> int:
  """How many 16 kHz samples late the file's audio of [start, end) plays, on the source's clock (the tone)."""
  decoded = decode.decode_clip(path, start, end, decode.DecodeOptions(short_side=16), clock_origin_s=0.0)
  margin = contract.MEL_FRAME_SHIFT_SAMPLES
  times = start + np.arange(-margin, decoded.audio.size + margin) / contract.AUDIO_SAMPLE_RATE - clip.audio_start_s
  reference = generator.tone_signal(times).astype(np.float64)
  scores = np.correlate(reference, decoded.audio.astype(np.float64), mode="valid")  # index j: lag margin - j
  return margin - int(np.argmax(scores))


def request(ytid: str, start: float, end: float, clip_id: str | None = None) -> DownloadRequest:
  return DownloadRequest(clip_id=clip_id or f"yt_{ytid}_{int(start * 1000):09d}", source_id=ytid, start_s=start,
                         end_s=end)


# ---------------------------------------------------------------------------
# Sections.
# ---------------------------------------------------------------------------
def test_fetches_only_the_section_and_keeps_the_source_clock(make_downloader, serve_as, server, media):
  ytid = serve_as("long.mp4")
  result = make_downloader(margin_s=1.0).download(request(ytid, 12.0, 16.0))

  assert result.ok, result
  assert (result.section_start_s, result.section_end_s) == (11.0, 17.0)
  # The file covers the span plus margins, snapped back to the keyframe at 10 s...
  video = result.media.video
  assert video.first_s <= 11.0 and video.end_s >= 17.0 - 0.04
  # ...and is nowhere near the whole 24 s source.
  assert video.end_s - video.first_s < 8.0
  assert result.num_bytes < os.path.getsize(media.long_mp4.path) / 2
  # Presentation time t in the file is second t of the source.
  for t in (12.0, 14.5, 16.0):
    assert frame_code_at(result.path, t) == media.long_mp4.source_frame_at(t)
  with av.open(result.path) as container:
    assert result.source_offset_s == pytest.approx(container.start_time / av.time_base)
  assert result.source_offset_s <= 11.0
  assert result.file_span_s == (12.0 - result.source_offset_s, 16.0 - result.source_offset_s)
  with open(result.path, "rb") as downloaded:
    assert hashlib.sha256(downloaded.read()).hexdigest() == result.sha256
  assert result.path == os.path.join(os.path.realpath(make_downloader().config.output_dir), f"yt_{ytid}_000012000.mp4")
  # ffmpeg cut the section with Range requests: there is no other way to get it.
  assert any(r.status == 206 for r in server.requests(f"{ytid}.mp4"))
  assert result.attempts == 1


def test_webm_section(make_downloader, serve_as, server, media):
  ytid = serve_as("short.webm", ext="webm")
  downloader = make_downloader(url_template=server.url_template("{ytid}.webm"))
  result = downloader.download(request(ytid, 6.0, 8.0))

  assert result.ok, result
  assert result.path.endswith(".webm")
  assert result.media.video.first_s <= 6.0 and result.media.video.end_s >= 8.0
  assert result.media.audio is not None
  assert frame_code_at(result.path, 7.0) == media.short_webm.source_frame_at(7.0)


def test_source_with_a_late_start_keeps_span_seconds(make_downloader, serve_as, media):
  # The source starts at 1.5 s on its own clock: span seconds count from its start
  # (its container start time), which is the generator's convention too.
  ytid = serve_as("offset.mp4")
  result = make_downloader().download(request(ytid, 4.0, 6.0))

  assert result.ok, result
  assert frame_code_at(result.path, 5.0) == media.offset_mp4.source_frame_at(5.0)


@pytest.mark.parametrize("name", ["late_mpg_video", "late_mpg_av"])
def test_mpeg_ps_sections_keep_the_sources_clock_in_mp4(name, make_downloader, serve_as, server, media):
  # A user's MPEG-PS source starts at 0.54 s. Written as MPEG-PS, the section's
  # muxer moved the clock (span [1, 7) came out 14 frames early, [0, 6) was
  # refused as not covered); written as MP4 it keeps the source's clock.
  source = media.late_start[name]
  ytid = serve_as(os.path.basename(source.path), ext="mpg")
  downloader = make_downloader(url_template=server.url_template("{ytid}.mpg"))
  for start, end in ((1.0, 7.0), (0.0, 6.0)):
    result = downloader.download(request(ytid, start, end))
    assert result.ok, result
    assert result.path.endswith(".mp4")
    assert result.media.video.first_s <= start + 0.04 and result.media.video.end_s >= end
    # Presentation time t in the file is second t of the source, counted from its first timestamp.
    for t in (start + 0.02, start + 2.5, end - 0.02):
      assert frame_code_at(result.path, t) == source.source_frame_at(t)
    if source.spec.audio:
      assert abs(audio_lag_samples(result.path, source, start, end)) <= 2


def test_exact_cuts_of_mpeg_ps_are_copied_to_keep_the_clock(make_downloader, serve_as, server, media):
  # Re-encoding MPEG-PS after ffmpeg's input seek shifts every frame by one.
  source = media.late_start["late_mpg_video"]
  ytid = serve_as("late_mpg_video.mpg", ext="mpg")
  result = make_downloader(url_template=server.url_template("{ytid}.mpg"), exact_cuts=True).download(
      request(ytid, 4.3, 6.1))
  assert result.ok, result
  for t in (4.32, 5.0, 6.08):
    assert frame_code_at(result.path, t) == source.source_frame_at(t)


def test_a_download_in_a_clock_moving_container_is_not_reused(make_downloader, serve_as, server, media):
  ytid = serve_as("late_mpg_video.mpg", ext="mpg")
  downloader = make_downloader(url_template=server.url_template("{ytid}.mpg"), reuse_existing=True)
  stale = os.path.join(downloader.config.output_dir, f"yt_{ytid}_000002000.mpg")
  shutil.copyfile(media.late_start["late_mpg_video"].path, stale)  # decodes and covers the span, wrong clock

  result = downloader.download(request(ytid, 2.0, 3.0))

  assert result.ok and result.attempts == 1 and result.path.endswith(".mp4")
  assert server.request_count(f"{ytid}.mpg") > 0
  assert not os.path.exists(stale)


def test_exact_cuts_start_at_the_section(make_downloader, serve_as, media):
  ytid = serve_as("long.mp4")
  result = make_downloader(exact_cuts=True, margin_s=0.5).download(request(ytid, 12.0, 13.0))

  assert result.ok, result
  assert result.media.video.first_s == pytest.approx(11.5, abs=0.05)  # no snap back to the 10 s keyframe
  assert frame_code_at(result.path, 12.5) == media.long_mp4.source_frame_at(12.5)


def test_separate_streams_are_capped_in_height_and_merged(make_downloader, server):
  # A DASH manifest offers 240p and 368p video-only streams and one audio
  # stream, as YouTube does: the format selector must take bestvideo under the
  # cap plus bestaudio, and ffmpeg merges the two sections.
  url_template = server.url_template("dash.mpd#{ytid}")
  capped = make_downloader(url_template=url_template).download(request("dashdashdas", 4.0, 6.0))
  assert capped.ok, capped
  assert (capped.media.width, capped.media.height) == (320, 240)
  assert capped.media.audio is not None

  taller = make_downloader(url_template=url_template, max_height=480).download(
      request("dashdashdas", 4.0, 6.0, clip_id="taller"))
  assert taller.ok, taller
  assert taller.media.height == 368


@pytest.mark.parametrize("ytid", ["-4gqARaEJE0", "--version00"])
def test_ids_that_look_like_options_download(make_downloader, serve_as, ytid):
  serve_as("long.mp4", ytid=ytid)
  result = make_downloader().download(request(ytid, 2.0, 3.0))
  assert result.ok, result
  assert os.path.basename(result.path) == f"yt_{ytid}_000002000.mp4"


def test_existing_verified_file_is_reused(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  first = make_downloader(reuse_existing=True).download(request(ytid, 2.0, 3.0))
  requests_before = server.request_count(f"{ytid}.mp4")
  again = make_downloader(reuse_existing=True).download(request(ytid, 2.0, 3.0))

  assert first.ok and again.ok
  assert again.attempts == 0 and again.sha256 == first.sha256
  assert server.request_count(f"{ytid}.mp4") == requests_before


def test_download_many_runs_concurrently_and_returns_every_clip(make_downloader, serve_as):
  ytids = [serve_as("long.mp4") for _ in range(4)]
  downloader = make_downloader(concurrency=2)
  results = list(downloader.download_many(request(ytid, 1.0, 2.0) for ytid in ytids))

  assert sorted(r.source_id for r in results) == sorted(ytids)
  assert all(r.ok for r in results), results


# ---------------------------------------------------------------------------
# Failures: each fault the server injects, classified, with the requests counted.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fault, failure_class, reason", [
    (Fault.http_status(404), FailureClass.PERMANENT, Reason.HTTP_NOT_FOUND),
    (Fault.http_status(403), FailureClass.PERMANENT, Reason.HTTP_FORBIDDEN),
    (Fault.http_status(410), FailureClass.PERMANENT, Reason.HTTP_GONE),
    (Fault.not_media(content_type="text/html"), FailureClass.PERMANENT, Reason.UNSUPPORTED_URL),
], ids=["404", "403", "410", "html-page"])
def test_permanent_failures_are_never_retried(make_downloader, serve_as, server, fault, failure_class, reason):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", fault)
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert not result.ok
  assert (result.failure_class, result.reason) == (failure_class, reason)
  assert result.attempts == 1
  assert server.request_count(f"{ytid}.mp4") == 1


@pytest.mark.parametrize("fault, reason", [
    (Fault.http_status(500), Reason.SERVER_ERROR),
    (Fault.http_status(503), Reason.SERVER_ERROR),
], ids=["500", "503"])
def test_transient_failures_are_retried_then_recorded(make_downloader, serve_as, server, fault, reason):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", fault)
  downloader = make_downloader()
  result = downloader.download(request(ytid, 12.0, 14.0))

  assert not result.ok
  assert (result.failure_class, result.reason) == (FailureClass.TRANSIENT, reason)
  assert result.attempts == downloader.config.retry.max_attempts == 3
  # Every attempt reached the server: the retries were real.
  attempts_seen = [r for r in server.requests(f"{ytid}.mp4") if r.range_header is None]
  assert len(attempts_seen) == 3


def test_a_file_cut_short_on_every_attempt_is_invalid_media(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.truncate(0.5))
  result = make_downloader().download(request(ytid, 12.0, 14.0))

  assert (result.failure_class, result.reason, result.attempts) == (FailureClass.INVALID_MEDIA,
                                                                    Reason.TRUNCATED_MEDIA, 3)
  assert "on all 3 attempts" in result.message


def test_an_empty_file_is_invalid_media(make_downloader, serve_as, server, tmp_path):
  ytid = serve_as("long.mp4")
  empty = os.path.join(server.root, f"empty_{ytid}.mp4")
  open(empty, "wb").close()
  server.alias(f"{ytid}.mp4", os.path.basename(empty))  # ffmpeg's first range gets 416
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert (result.failure_class, result.reason) == (FailureClass.INVALID_MEDIA, Reason.EMPTY)
  assert 416 in [r.status for r in server.requests(f"{ytid}.mp4")]


def test_429_on_the_media_request_honours_retry_after(make_downloader, serve_as, server):
  # yt-dlp's request passes; ffmpeg's gets 429, which ffmpeg reports without the header: asking again tells it.
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(429, retry_after_s=2, skip=1, times=2))
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert result.ok and result.attempts == 2, result
  seen = server.requests(f"{ytid}.mp4")
  limited = [r for r in seen if r.status == 429]
  assert len(limited) == 2
  retried = [r for r in seen if r.time > limited[-1].time]
  assert retried and retried[0].time - limited[0].time >= 2.0  # base backoff here is 0.05 s


def test_429_with_retry_after_waits_then_succeeds(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(429, retry_after_s=1, times=1))
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert result.ok, result
  assert result.attempts == 2
  seen = server.requests(f"{ytid}.mp4")
  assert [r.status for r in seen[:2]] == [429, 200]
  assert server.request_count(f"{ytid}.mp4", faulted=True) == 1
  # The retry came no sooner than the server asked (base backoff here is 0.05 s).
  assert seen[1].time - seen[0].time >= 1.0


def test_retry_after_beyond_the_cap_stops_retrying(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(429, retry_after_s=3600))
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert (result.reason, result.attempts, result.retry_after_s) == (Reason.RATE_LIMITED, 1, 3600)
  assert "exceeds" in result.message
  assert server.request_count(f"{ytid}.mp4") == 1


def test_fails_twice_then_succeeds(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(503, times=2))
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert result.ok, result
  assert result.attempts == 3
  assert server.request_count(f"{ytid}.mp4", faulted=True) == 2


def test_stalled_response_times_out_instead_of_hanging(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.stall(stall_s=30))
  downloader = make_downloader(socket_timeout_s=1.0, retry=RetryPolicy(max_attempts=2, base_delay_s=0.05))
  result = downloader.download(request(ytid, 2.0, 4.0))

  assert not result.ok
  assert (result.failure_class, result.reason) == (FailureClass.TRANSIENT, Reason.TIMEOUT)
  assert result.attempts == 2


def test_body_that_is_not_media_is_invalid_media(make_downloader, serve_as, server):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.not_media())  # served as video/mp4: a lying mirror
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert (result.failure_class, result.reason) == (FailureClass.INVALID_MEDIA, Reason.NOT_MEDIA)
  assert result.attempts == 2  # one more try, in case the transfer was at fault
  assert "Invalid data" in result.message


def test_media_request_failing_after_the_probe_is_classified_from_ffmpeg(make_downloader, serve_as, server):
  # yt-dlp's own request passes; ffmpeg's request for the media gets the 404.
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(404, skip=1))
  result = make_downloader().download(request(ytid, 2.0, 4.0))

  assert (result.failure_class, result.reason) == (FailureClass.PERMANENT, Reason.HTTP_NOT_FOUND)
  assert "404" in result.message


def test_transfer_cut_short_that_ffmpeg_survives_is_caught_and_retried(make_downloader, serve_as, server):
  # The probe, ffmpeg's header read and its index read pass; the media data is
  # cut in half once. ffmpeg exits 0 with a short file; decoding catches it.
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.truncate(0.5, skip=3, times=1))
  result = make_downloader().download(request(ytid, 12.0, 16.0))

  assert result.ok, result
  assert result.attempts == 2
  assert server.request_count(f"{ytid}.mp4", faulted=True) == 1


# ---------------------------------------------------------------------------
# Refusals before any request.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("clip_id, ytid, start, end, reason", [
    ("ok_id", "short", 1.0, 2.0, Reason.INVALID_ID),
    ("ok_id", "abcdefghijk\n", 1.0, 2.0, Reason.INVALID_ID),
    ("ok_id", "abc/../etc/x", 1.0, 2.0, Reason.INVALID_ID),
    ("../escaped", "abcdefghijk", 1.0, 2.0, Reason.UNSAFE_CLIP_ID),
    ("sub/dir", "abcdefghijk", 1.0, 2.0, Reason.UNSAFE_CLIP_ID),
    ("-rf", "abcdefghijk", 1.0, 2.0, Reason.UNSAFE_CLIP_ID),
    ("ok_id", "abcdefghijk", 3.0, 2.0, Reason.INVALID_SPAN),
    ("ok_id", "abcdefghijk", float("nan"), 2.0, Reason.INVALID_SPAN),
])
def test_malformed_clips_are_refused_without_a_request(make_downloader, server, clip_id, ytid, start, end, reason):
  before = server.request_count()
  result = make_downloader().download(DownloadRequest(clip_id, ytid, start, end))

  assert (result.failure_class, result.reason, result.attempts) == (FailureClass.PERMANENT, reason, 0)
  assert server.request_count() == before


def test_symlink_at_the_clip_path_cannot_redirect_the_write(make_downloader, serve_as, tmp_path):
  outside = tmp_path / "outside"
  outside.mkdir()
  target = outside / "victim.mp4"
  target.write_bytes(b"precious")
  downloader = make_downloader()
  ytid = serve_as("long.mp4")
  os.symlink(target, os.path.join(downloader.config.output_dir, "planted.mp4"))

  result = downloader.download(request(ytid, 2.0, 3.0, clip_id="planted"))

  assert (result.reason, result.attempts) == (Reason.UNSAFE_CLIP_ID, 0)
  assert target.read_bytes() == b"precious"


# ---------------------------------------------------------------------------
# Credentials.
# ---------------------------------------------------------------------------
COOKIE_SECRET = "S3cretSessionCookieValue42"
PROXY_PASSWORD = "pr0xyPa55word"


def test_cookies_are_used_but_never_logged(make_downloader, serve_as, server, tmp_path, caplog):
  cookies = tmp_path / "cookies.txt"
  cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\t{COOKIE_SECRET}\n")
  ytid = serve_as("long.mp4")
  caplog.set_level(logging.DEBUG)
  result = make_downloader(cookies_file=str(cookies), ytdlp_verbose=True).download(request(ytid, 2.0, 3.0))

  assert result.ok, result
  # The cookie really went out (so this test is not vacuous)...
  assert any(COOKIE_SECRET in (r.header("Cookie") or "") for r in server.requests(f"{ytid}.mp4"))
  # ...and yt-dlp's verbose output mentioned cookies, masked.
  assert "cookie" in caplog.text.lower()
  assert COOKIE_SECRET not in caplog.text
  assert COOKIE_SECRET in cookies.read_text()  # yt-dlp wrote back to a private copy, not ours


def test_proxy_credentials_never_reach_logs_errors_or_ledger(make_downloader, serve_as, tmp_path, caplog):
  with socket.socket() as probe:  # a port nobody listens on
    probe.bind(("127.0.0.1", 0))
    dead_port = probe.getsockname()[1]
  proxy = f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{dead_port}"
  ytid = serve_as("long.mp4")
  caplog.set_level(logging.DEBUG)
  downloader = make_downloader(proxy=proxy, ytdlp_verbose=True, retry=RetryPolicy(max_attempts=1))
  result = downloader.download(request(ytid, 2.0, 3.0))

  assert (result.failure_class, result.reason) == (FailureClass.TRANSIENT, Reason.PROXY)
  assert "proxy" in caplog.text.lower()  # yt-dlp's verbose header printed the proxy map...
  for text in (caplog.text, result.message):
    assert PROXY_PASSWORD not in text and "alice" not in text
  with LedgerWriter(str(tmp_path / "ledger")) as ledger:
    ledger.append_result(result)
  with open(ledger.path) as written:
    assert PROXY_PASSWORD not in written.read()
  assert read_ledger(str(tmp_path / "ledger"))[result.clip_id].reason == "proxy"


class _ProxyDemandingCredentials(http.server.BaseHTTPRequestHandler):
  def do_GET(self):
    self.send_response(407)
    self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
    self.send_header("Content-Length", "0")
    self.end_headers()

  do_HEAD = do_GET

  def log_message(self, *args):
    pass


def test_a_proxy_answering_407_is_a_transient_proxy_failure(make_downloader, serve_as):
  proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyDemandingCredentials)
  threading.Thread(target=proxy.serve_forever, daemon=True).start()
  try:
    ytid = serve_as("long.mp4")
    result = make_downloader(proxy=f"http://127.0.0.1:{proxy.server_port}").download(request(ytid, 2.0, 3.0))
  finally:
    proxy.shutdown()
  assert (result.failure_class, result.reason, result.attempts) == (FailureClass.TRANSIENT, Reason.PROXY, 3)


def test_each_attempt_gets_its_own_youtube_dl_with_ytdlps_default_extractors(make_downloader):
  # The list is made once per downloader; each attempt's YoutubeDL must still be what yt-dlp would make.
  import yt_dlp

  def extractors(ydl):
    return [(key, ie if isinstance(ie, type) else type(ie)) for key, ie in ydl._ies.items()]

  downloader = make_downloader()
  params = {"quiet": True, "no_warnings": True}
  with yt_dlp.YoutubeDL(dict(params)) as theirs, downloader._youtube_dl(dict(params)) as first, \
      downloader._youtube_dl(dict(params)) as second:
    assert len(extractors(theirs)) > 1000
    assert extractors(first) == extractors(theirs) == extractors(second)
    assert first is not second
    assert first.get_info_extractor("Generic") is not second.get_info_extractor("Generic")


def test_attempts_in_a_thread_reuse_its_tls_context_which_still_verifies(make_downloader):
  import ssl

  def context_of(ydl):
    # What each of the attempt's request handlers connects with (Requests, Urllib, ...).
    return {key: handler._make_sslcontext() for key, handler in ydl._request_director.handlers.items()}

  downloader = make_downloader()
  params = {"quiet": True, "no_warnings": True}
  with downloader._youtube_dl(dict(params)) as first, downloader._youtube_dl(dict(params)) as second:
    contexts, again = context_of(first), context_of(second)
    assert first._request_director is not second._request_director
  assert contexts and all(again[key] is context for key, context in contexts.items())
  assert all(c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname for c in contexts.values())
  # Another TLS setting is another context; another thread makes its own.
  with downloader._youtube_dl({**params, "nocheckcertificate": True}) as unverified:
    assert all(c.verify_mode == ssl.CERT_NONE for c in context_of(unverified).values())
  in_thread = []

  def attempt_in_another_thread():
    with downloader._youtube_dl(dict(params)) as ydl:
      in_thread.append(context_of(ydl))

  worker = threading.Thread(target=attempt_in_another_thread)
  worker.start()
  worker.join()
  assert not set(map(id, in_thread[0].values())) & set(map(id, contexts.values()))


def test_attempts_sharing_a_tls_context_keep_their_own_cookies_proxy_and_headers(make_downloader, tmp_path):
  def handlers_of(ydl):
    return list(ydl._request_director.handlers.values())

  def cookie_file(name, value):
    path = tmp_path / f"{name}.txt"
    path.write_text(f"# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tFALSE\t0\t{name}\t{value}\n")
    return str(path)

  downloader = make_downloader()
  attempts = [{"quiet": True, "proxy": f"http://127.0.0.1:{port}", "cookiefile": cookie_file(name, name),
               "http_headers": {"X-Attempt": name}} for port, name in ((3128, "first"), (3129, "second"))]
  with downloader._youtube_dl(attempts[0]) as first, downloader._youtube_dl(attempts[1]) as second:
    for ydl, port, name in ((first, 3128, "first"), (second, 3129, "second")):
      for handler in handlers_of(ydl):
        assert handler.proxies["all"] == f"http://127.0.0.1:{port}"
        assert handler.headers["X-Attempt"] == name
        assert [cookie.name for cookie in handler.cookiejar] == [name]
    assert all(a._make_sslcontext() is b._make_sslcontext() for a, b in zip(handlers_of(first), handlers_of(second)))


def test_ytdlp_and_ffmpeg_are_quiet_by_default(make_downloader, serve_as, server, caplog, capfd):
  ytid = serve_as("long.mp4")
  server.inject(f"{ytid}.mp4", Fault.http_status(503, skip=1, times=1))  # ffmpeg fails once, and says so
  caplog.set_level(logging.INFO)
  result = make_downloader().download(request(ytid, 2.0, 3.0))

  assert result.ok and result.attempts == 2
  assert not [r for r in caplog.records if r.name.startswith("pipelines.download")]
  # ffmpeg's own stderr went to the clip's log, not the worker's console.
  assert capfd.readouterr().err == ""


def test_results_become_ledger_records(make_downloader, serve_as, server, tmp_path):
  good, gone = serve_as("long.mp4"), serve_as("long.mp4")
  server.inject(f"{gone}.mp4", Fault.http_status(410))
  downloader = make_downloader()
  ledger_dir = str(tmp_path / "ledger")
  with LedgerWriter(ledger_dir) as writer:
    for result in downloader.download_many([request(good, 1.0, 2.0), request(gone, 1.0, 2.0)]):
      writer.append_result(result)

  ledger = read_ledger(ledger_dir)
  ok = ledger[f"yt_{good}_000001000"]
  failed = ledger[f"yt_{gone}_000001000"]
  assert (ok.status, ok.reason_class, ok.attempts) == ("ok", None, 1)
  assert ok.num_bytes > 0 and len(ok.sha256) == 64 and ok.source_offset_s is not None
  assert (failed.status, failed.reason_class, failed.reason) == ("failed", "permanent", "http_410")
  assert server.requests(f"{gone}.mp4")[0].fault is FaultKind.HTTP_STATUS
