"""Failure classification from yt-dlp's real messages and exception types, and the backoff."""

from __future__ import annotations

import email.utils
import io
import random
import sys
import time

import pytest
import yt_dlp
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.extractor.youtube import YoutubeIE
from yt_dlp.networking import Response
from yt_dlp.networking import exceptions as net
from yt_dlp.utils import (ContentTooShortError, DownloadError, ExtractorError, GeoRestrictedError, UnsupportedError,
                          remove_end)

from pipelines.download.backoff import RetryPolicy, retry_delay
from pipelines.download.classify import classify_exception, classify_ffmpeg_log, classify_message, parse_retry_after
from shared.failures import FailureClass, Reason

# (reason, subreason) as YouTube's player response carries them for each case,
# and the verdict. yt_dlp/extractor/youtube/_video.py turns them into the error
# message: reason + ". " + subreason, a login hint after any "sign in", and a
# GeoRestrictedError for the "not made this video available in your country" one.
YOUTUBE_REFUSALS = [
    ("Private video", "Sign in if you've been granted access to this video", Reason.PRIVATE),
    ("This video is private", "", Reason.PRIVATE),
    ("This video has been removed by the uploader", "", Reason.REMOVED_BY_UPLOADER),
    ("Video unavailable", "This video is no longer available because the YouTube account associated with this "
     "video has been terminated.", Reason.ACCOUNT_TERMINATED),
    ("Video unavailable", "This video is no longer available due to a copyright claim by Example Records",
     Reason.COPYRIGHT),
    ("Video unavailable", "This video contains content from Example Media, who has blocked it on copyright "
     "grounds.", Reason.COPYRIGHT),
    ("This video has been removed for violating YouTube's Terms of Service", "", Reason.POLICY_VIOLATION),
    ("This video has been removed for violating YouTube's policy on harassment and bullying.", "",
     Reason.POLICY_VIOLATION),
    ("Video unavailable", "The uploader has not made this video available in your country", Reason.GEO_BLOCKED),
    ("This video is not available in your country", "", Reason.GEO_BLOCKED),
    ("Sign in to confirm your age", "This video may be inappropriate for some users.", Reason.AGE_RESTRICTED),
    ("Sign in to confirm you\u2019re not a bot", "This helps protect our community. Learn more", Reason.BOT_CHECK),
    ("Sign in to confirm you're not a bot", "", Reason.BOT_CHECK),
    ("Join this channel to get access to members-only content like this video, and other exclusive perks.", "",
     Reason.MEMBERS_ONLY),
    ("This live event will begin in 3 hours.", "", Reason.NOT_YET_LIVE),
    ("Premieres in 2 hours", "", Reason.NOT_YET_LIVE),
    ("Video unavailable", "", Reason.UNAVAILABLE),
    ("This video is unavailable", "", Reason.UNAVAILABLE),
    ("This video isn't available anymore", "", Reason.UNAVAILABLE),
    ("This content isn't available, try again later.", "", Reason.RATE_LIMITED),
    ("Sign in to view this video", "", Reason.SIGN_IN_REQUIRED),
]


class RefusingYoutubeIE(InfoExtractor):
  """Refuses every video the way YoutubeIE does for an unplayable one (see _video.py, "if not formats")."""

  IE_NAME = "youtube"
  _VALID_URL = r"https?://refusals\.invalid/(?P<id>\d+)"

  def _real_extract(self, url):
    video_id = self._match_id(url)
    reason, subreason, _ = YOUTUBE_REFUSALS[int(video_id)]
    if subreason.startswith("The uploader has not made this video available in your country"):
      self.raise_geo_restricted(subreason, ["US"], metadata_available=True)
    if subreason and subreason != reason:
      reason += f". {subreason}"
    if "sign in" in reason.lower():
      reason = remove_end(reason, "This helps protect our community. Learn more")
      reason = f"{remove_end(reason.strip(), '.')}. {YoutubeIE(self._downloader)._youtube_login_hint}"
    self.raise_no_formats(reason, expected=True)


def _ytdlp_error(index: int) -> DownloadError:
  """The DownloadError real yt-dlp raises for refusal `index`."""
  with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "logger": _Silent()}) as ydl:
    ydl.add_info_extractor(RefusingYoutubeIE())
    with pytest.raises(DownloadError) as raised:
      ydl.extract_info(f"https://refusals.invalid/{index}", download=False, ie_key="RefusingYoutube")
  return raised.value


class _Silent:
  def debug(self, message):
    pass

  warning = error = info = debug


@pytest.mark.parametrize("index", range(len(YOUTUBE_REFUSALS)),
                         ids=[reason.value + "-" + str(i) for i, (_, _, reason) in enumerate(YOUTUBE_REFUSALS)])
def test_youtube_refusals_through_real_ytdlp(index):
  error = _ytdlp_error(index)
  expected = YOUTUBE_REFUSALS[index][2]
  verdict = classify_exception(error)
  assert verdict.reason is expected, error.msg
  assert verdict.retryable is (expected.failure_class is FailureClass.TRANSIENT)


def test_private_video_message_with_cookie_hint_is_not_a_bot_check():
  # yt-dlp appends a cookies hint to every "sign in" refusal; it must not turn
  # a private video into a needs-cookies one.
  error = _ytdlp_error(0)
  assert "cookies" in error.msg
  assert classify_exception(error).failure_class is FailureClass.PERMANENT


def test_geo_block_arrives_as_geo_restricted_error():
  index = next(i for i, (_, sub, _) in enumerate(YOUTUBE_REFUSALS) if "available in your country" in sub)
  error = _ytdlp_error(index)
  assert isinstance(error.exc_info[1], GeoRestrictedError)
  assert classify_exception(error).reason is Reason.GEO_BLOCKED


@pytest.mark.parametrize("message, reason", [
    ("ERROR: [youtube] abc: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or --cookies",
     Reason.BOT_CHECK),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", Reason.PRIVATE),
    ("ERROR: [youtube] abc: Requested format is not available. Use --list-formats", Reason.NO_SUITABLE_FORMAT),
    ("ERROR: [youtube] abc: This video is DRM protected", Reason.DRM),
    ("ERROR: [youtube] abc: YouTube is requiring a captcha challenge before playback", Reason.BOT_CHECK),
    ("ERROR: [youtube] abc: All player responses are invalid. Your IP is likely being blocked by Youtube",
     Reason.BOT_CHECK),
    ("ERROR: Unsupported URL: http://example.com/x", Reason.UNSUPPORTED_URL),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", Reason.HTTP_FORBIDDEN),
    ("ERROR: ffmpeg exited with code 183", Reason.NOT_MEDIA),
    ("ERROR: ffmpeg exited with code 187", Reason.TRUNCATED),
    ("ERROR: ffmpeg exited with code 251", Reason.CONNECTION),
    ("ERROR: ffmpeg exited with code 8", Reason.SERVER_ERROR),
    ("something nobody anticipated", None),
])
def test_messages(message, reason):
  assert classify_message(message) is reason


# What the bundled ffmpeg wrote (loglevel warning) for each fault of the test server.
FFMPEG_LOGS = {
    Reason.HTTP_NOT_FOUND: "[http @ 0x5] HTTP error 404 Not Found\n[in#0 @ 0x5] Error opening input: Server "
                           "returned 404 Not Found\nError opening input files: Server returned 404 Not Found\n",
    Reason.HTTP_FORBIDDEN: "[http @ 0x5] HTTP error 403 Forbidden\nError opening input files: Server returned 403 "
                           "Forbidden (access denied)\n",
    Reason.HTTP_GONE: "[http @ 0x5] HTTP error 410 Gone\nError opening input files: Server returned 4XX Client "
                      "Error, but not one of 40{0,1,3,4}\n",
    Reason.RATE_LIMITED: "[http @ 0x5] HTTP error 429 Too Many Requests\nError opening input files: Server returned "
                         "429 Too Many Requests\n",
    Reason.SERVER_ERROR: "[http @ 0x5] HTTP error 503 Service Unavailable\nError opening input files: Server "
                         "returned 5XX Server Error reply\n",
    Reason.TRUNCATED: "[http @ 0x5] Stream ends prematurely at 564472, should be 571090\n[in#0 @ 0x5] reached eof, "
                      "corrupted STSC atom\n[in#0 @ 0x5] error reading header\nError opening input files: End of "
                      "file\n",
    Reason.NOT_MEDIA: "[in#0 @ 0x5] Format mov,mp4 detected only with low score of 1, misdetection possible!\n"
                      "[in#0 @ 0x5] moov atom not found\nError opening input files: Invalid data found when "
                      "processing input\n",
    Reason.CONNECTION: "[in#0 @ 0x5] Error opening input: Input/output error\nError opening input files: "
                       "Input/output error\n",
}


@pytest.mark.parametrize("reason", list(FFMPEG_LOGS), ids=lambda r: r.value)
def test_ffmpeg_logs(reason):
  assert classify_ffmpeg_log(FFMPEG_LOGS[reason]) is reason
  # As yt-dlp reports it: only the exit code in the error, the log on the side.
  assert classify_exception(DownloadError("ERROR: ffmpeg exited with code 8"), FFMPEG_LOGS[reason]).reason is reason


def test_truncation_that_ffmpeg_survives_is_read_from_the_log():
  log = ("[http @ 0x5] Stream ends prematurely at 285569, should be 571090\n"
         "[in#0/mov,mp4 @ 0x5] stream 1, offset 0x45c14: partial file\n")
  assert classify_ffmpeg_log(log) is Reason.TRUNCATED
  assert classify_ffmpeg_log("") is None
  # A cut-off file also fails to parse; the log's truncation outranks the exit code's "invalid data".
  assert classify_exception(DownloadError("ERROR: ffmpeg exited with code 183"), log).reason is Reason.TRUNCATED


def _http_error(status: int, headers=None) -> net.HTTPError:
  return net.HTTPError(Response(io.BytesIO(b""), "http://127.0.0.1/x.mp4", headers or {}, status=status))


def _as_ytdlp_raises(cause: BaseException) -> DownloadError:
  """Wraps `cause` the way YoutubeDL does: in an ExtractorError, then a DownloadError with exc_info."""
  try:
    try:
      raise cause
    except Exception as error:
      raise ExtractorError("Unable to download webpage", cause=error, video_id="x", ie="generic") from error
  except ExtractorError as extractor_error:
    return DownloadError(f"ERROR: {extractor_error.msg}", sys.exc_info())


@pytest.mark.parametrize("cause, reason", [
    (_http_error(404), Reason.HTTP_NOT_FOUND),
    (_http_error(410), Reason.HTTP_GONE),
    (_http_error(403), Reason.HTTP_FORBIDDEN),
    (_http_error(401), Reason.HTTP_CLIENT_ERROR),
    (_http_error(429), Reason.RATE_LIMITED),
    (_http_error(500), Reason.SERVER_ERROR),
    (_http_error(503), Reason.SERVER_ERROR),
    (net.TransportError(cause=TimeoutError("timed out")), Reason.TIMEOUT),
    (net.TransportError(cause=ConnectionResetError(104, "Connection reset by peer")), Reason.CONNECTION),
    (net.IncompleteRead(partial=1000, expected=5000), Reason.TRUNCATED),
    (net.ProxyError(cause=ConnectionRefusedError(111, "Connection refused")), Reason.PROXY),
    (ContentTooShortError(1000, 5000), Reason.TRUNCATED),
    (ConnectionResetError(104, "Connection reset by peer"), Reason.CONNECTION),
    (TimeoutError("read timed out"), Reason.TIMEOUT),
], ids=lambda value: value.value if isinstance(value, Reason) else type(value).__name__)
def test_exception_types(cause, reason):
  verdict = classify_exception(_as_ytdlp_raises(cause))
  assert verdict.reason is reason
  assert verdict.failure_class is reason.failure_class


def test_unsupported_url_error_type():
  assert classify_exception(DownloadError("ERROR: boom", (UnsupportedError, UnsupportedError("http://x/y"), None))
                            ).reason is Reason.UNSUPPORTED_URL


def test_retry_after_is_read_from_the_429_response():
  verdict = classify_exception(_as_ytdlp_raises(_http_error(429, {"Retry-After": "7"})))
  assert (verdict.reason, verdict.retry_after_s, verdict.retryable) == (Reason.RATE_LIMITED, 7.0, True)


def test_unknown_errors_are_transient():
  verdict = classify_exception(RuntimeError("a surprise"))
  assert (verdict.reason, verdict.failure_class) == (Reason.UNKNOWN, FailureClass.TRANSIENT)


def test_parse_retry_after():
  now = time.time()
  assert parse_retry_after("120") == 120.0
  assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
  assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
  assert parse_retry_after("soon") is None
  assert parse_retry_after(None) is None


def test_every_reason_has_a_class():
  assert {reason.failure_class for reason in Reason} == set(FailureClass)


# ---------------------------------------------------------------------------
# Backoff.
# ---------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_a_cap():
  policy = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=8.0, jitter=0.5)
  rng = random.Random(1)
  for failed, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
    delays = [retry_delay(policy, failed, rng=rng) for _ in range(200)]
    assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling * 0.3  # really jittered


def test_backoff_stops_after_max_attempts():
  policy = RetryPolicy(max_attempts=3)
  assert retry_delay(policy, 2) is not None
  assert retry_delay(policy, 3) is None


def test_retry_after_is_a_floor_and_too_long_a_wait_stops():
  policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_retry_after_s=60.0)
  rng = random.Random(2)
  assert all(retry_delay(policy, 1, retry_after_s=5.0, rng=rng) >= 5.0 for _ in range(100))
  assert retry_delay(policy, 1, retry_after_s=61.0) is None


def test_retry_policy_validation():
  with pytest.raises(ValueError):
    RetryPolicy(max_attempts=0)
  with pytest.raises(ValueError):
    RetryPolicy(jitter=1.5)
