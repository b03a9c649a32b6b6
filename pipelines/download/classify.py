"""Why a clip download failed: a :class:`shared.failures.Reason`, and so its class.

The vocabulary (classes, reasons, their meanings) is :mod:`shared.failures`;
this module maps what a failed download looks like onto it. The class decides
what happens next: PERMANENT is never retried, TRANSIENT is retried with
backoff (Retry-After honoured), NEEDS_COOKIES is not retried from the same
address, INVALID_MEDIA is retried as the RetryPolicy says.

Inputs are what yt-dlp really produces: the ``DownloadError`` it raises (whose
``exc_info[1]`` holds the cause: ``yt_dlp.networking.exceptions.HTTPError``
with ``.status``, ``TransportError``, ``IncompleteRead``, ``GeoRestrictedError``,
...), the YouTube messages its extractor passes on (the wording below is
YouTube's own, as yt_dlp/extractor/youtube/_video.py surfaces it, e.g. "Private
video. Sign in if you've been granted access to this video"), and the log of
the ffmpeg process that yt-dlp runs for section downloads (which reports HTTP
errors in its own words and exit codes).
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.client
import re
import socket
import time
from typing import Iterable, Iterator, Optional

import yt_dlp.networking.exceptions as ytdlp_net
import yt_dlp.utils as ytdlp_utils

from shared.failures import FailureClass, Reason


@dataclasses.dataclass(frozen=True)
class Classification:
  """The verdict on one failed attempt.

  Attributes:
    reason: the specific cause.
    retry_after_s: seconds the server asked us to wait (Retry-After), if any.
  """

  reason: Reason
  retry_after_s: Optional[float] = None

  @property
  def failure_class(self) -> FailureClass:
    return self.reason.failure_class

  @property
  def retryable(self) -> bool:
    """Only transient failures are worth another attempt now."""
    return self.failure_class is FailureClass.TRANSIENT


# ---------------------------------------------------------------------------
# Messages. Matched case-insensitively, curly apostrophes straightened, in this
# order: the first hit wins. Order matters because yt-dlp appends a login hint
# that mentions cookies to every "sign in" message, and YouTube puts "Sign in"
# into several different refusals.
# ---------------------------------------------------------------------------
_MESSAGE_RULES: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    # "Sign in to confirm you’re not a bot. This helps protect our community."
    (Reason.BOT_CHECK, ("confirm you're not a bot", "confirm that you're not a bot",
                        "requiring a captcha challenge", "your ip is likely being blocked")),
    # "This content isn't available, try again later." is YouTube's session rate limit.
    (Reason.RATE_LIMITED, ("this content isn't available, try again later", "too many requests",
                           "rate-limited by youtube")),
    # "Sign in to confirm your age. This video may be inappropriate for some users."
    (Reason.AGE_RESTRICTED, ("confirm your age", "age-restricted", "age restricted",
                             "inappropriate for some users", "age verification")),
    # "Private video. Sign in if you've been granted access to this video"
    (Reason.PRIVATE, ("private video", "this video is private")),
    # "This video has been removed by the uploader"
    (Reason.REMOVED_BY_UPLOADER, ("removed by the uploader", "removed by the user")),
    # "Video unavailable. This video is no longer available because the YouTube
    # account associated with this video has been terminated."
    (Reason.ACCOUNT_TERMINATED, ("account associated with this video has been terminated",
                                 "account has been terminated")),
    # "This video is no longer available due to a copyright claim by X" and
    # "This video contains content from X, who has blocked it on copyright grounds."
    (Reason.COPYRIGHT, ("copyright claim", "copyright grounds", "copyright infringement")),
    # "This video has been removed for violating YouTube's Terms of Service" / "...policy on ..."
    (Reason.POLICY_VIOLATION, ("removed for violating", "violates youtube's", "community guidelines",
                               "terms of service")),
    # "The uploader has not made this video available in your country" (yt-dlp raises
    # GeoRestrictedError for it), "This video is not available in your country".
    (Reason.GEO_BLOCKED, ("available in your country", "not available from your location",
                          "geo restriction", "geo-restricted", "blocked it in your country")),
    # "Join this channel to get access to members-only content like this video..."
    (Reason.MEMBERS_ONLY, ("members-only", "members only", "channel's members", "music premium members",
                           "requires payment")),
    # "This live event will begin in 3 hours." / "Premieres in 2 hours" / "Premiere will begin shortly"
    (Reason.NOT_YET_LIVE, ("live event will begin", "premieres in", "premiere will begin",
                           "this live event has ended", "live stream recording is not available")),
    (Reason.DRM, ("drm protected",)),
    # Remaining sign-in demands: "This video is only available for registered users",
    # "Login details are needed to download this content", "Sign in to view this video".
    (Reason.SIGN_IN_REQUIRED, ("sign in", "login required", "login details are needed",
                               "only available for registered users", "this video requires login")),
    # "Video unavailable", "This video is unavailable", "This video is not available",
    # "This video does not exist", "Incomplete YouTube ID", embedding disabled.
    (Reason.UNAVAILABLE, ("video unavailable", "this video is unavailable", "this video is not available",
                          "this video isn't available", "this video does not exist", "incomplete youtube id",
                          "playback on other websites has been disabled", "no longer available")),
    (Reason.NO_SUITABLE_FORMAT, ("requested format is not available", "no video formats found")),
    (Reason.UNSUPPORTED_URL, ("unsupported url",)),
)

_HTTP_STATUS_IN_TEXT = re.compile(
    r"(?:http error|server returned|status code|http status)\s*:?\s*([1-5][0-9]{2})\b", re.IGNORECASE)
# ffmpeg's words for a 5xx it cannot name more exactly.
_FFMPEG_5XX = "5xx server error"
_FFMPEG_OTHER_4XX = "4xx client error"
_TRUNCATION_WORDS = ("stream ends prematurely", "partial file", "incomplete read", "incompleteread",
                     "end of file", "connection closed before", "unexpected eof")
_TIMEOUT_WORDS = ("timed out", "timeout", "time out")
_CONNECTION_WORDS = ("connection reset", "connection refused", "connection aborted", "broken pipe",
                     "input/output error", "network is unreachable", "remote end closed",
                     "name or service not known", "temporary failure in name resolution",
                     "failed to establish a new connection", "connection closed")
_NOT_MEDIA_WORDS = ("invalid data found when processing input", "moov atom not found",
                    "could not find codec parameters", "does not contain any stream",
                    "misdetection possible", "ebml header parsing failed")

# ffmpeg (7+) exits with its error code modulo 256; yt-dlp reports only "ffmpeg
# exited with code N" when the log is not available.
_FFMPEG_EXIT_CODE = re.compile(r"ffmpeg exited with code (-?\d+)", re.IGNORECASE)
_FFMPEG_EXIT_REASONS = {
    183: Reason.NOT_MEDIA,  # AVERROR_INVALIDDATA
    187: Reason.TRUNCATED,  # AVERROR_EOF
    251: Reason.CONNECTION,  # AVERROR(EIO): also what ffmpeg's -rw_timeout gives
    146: Reason.TIMEOUT,  # AVERROR(ETIMEDOUT)
    152: Reason.CONNECTION,  # AVERROR(ECONNRESET)
    145: Reason.CONNECTION,  # AVERROR(ECONNREFUSED)
    8: Reason.SERVER_ERROR,  # any AVERROR_HTTP_*: the log says which; alone, retry once more
}


def normalize_message(text: str) -> str:
  """Lower case with typographic apostrophes made straight, for matching."""
  return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'").lower()


def reason_for_http_status(status: int) -> Reason:
  """The reason an HTTP error status stands for."""
  if status == 404:
    return Reason.HTTP_NOT_FOUND
  if status == 410:
    return Reason.HTTP_GONE
  if status == 403:
    return Reason.HTTP_FORBIDDEN
  if status == 407:
    return Reason.PROXY
  if status == 416:  # nothing at the first byte: an empty file (our requests start at byte 0)
    return Reason.EMPTY
  if status in (408, 425, 429):
    return Reason.RATE_LIMITED if status == 429 else Reason.TIMEOUT
  if status >= 500:
    return Reason.SERVER_ERROR
  return Reason.HTTP_CLIENT_ERROR


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
  """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or bad."""
  if value is None:
    return None
  value = value.strip()
  if re.fullmatch(r"\d+(\.\d+)?", value):
    return float(value)
  try:
    when = email.utils.parsedate_to_datetime(value)
  except (TypeError, ValueError):
    return None
  if when is None:
    return None
  return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _refusal_in(text: str) -> Optional[Reason]:
  """The first _MESSAGE_RULES reason whose wording is in (normalized) text."""
  for reason, phrases in _MESSAGE_RULES:
    if any(phrase in text for phrase in phrases):
      return reason
  return None


def classify_message(message: str) -> Optional[Reason]:
  """The reason a yt-dlp, YouTube or ffmpeg message names, or None if it names none."""
  text = normalize_message(message)
  refusal = _refusal_in(text)
  if refusal is not None:
    return refusal
  status = _HTTP_STATUS_IN_TEXT.search(text)
  if status:
    return reason_for_http_status(int(status.group(1)))
  if _FFMPEG_5XX in text:
    return Reason.SERVER_ERROR
  if _FFMPEG_OTHER_4XX in text:
    return Reason.HTTP_CLIENT_ERROR
  if any(word in text for word in _TRUNCATION_WORDS):
    return Reason.TRUNCATED
  if any(word in text for word in _TIMEOUT_WORDS):
    return Reason.TIMEOUT
  if any(word in text for word in _NOT_MEDIA_WORDS):
    return Reason.NOT_MEDIA
  if any(word in text for word in _CONNECTION_WORDS):
    return Reason.CONNECTION
  exit_code = _FFMPEG_EXIT_CODE.search(text)
  if exit_code:
    return _FFMPEG_EXIT_REASONS.get(int(exit_code.group(1)) % 256, Reason.UNKNOWN)
  return None


# yt-dlp's warnings when YouTube's JavaScript challenges went unsolved ("n challenge solving failed: Some
# formats may be missing. Ensure you have a supported JavaScript runtime ...").
_CHALLENGE_WORDS = ("challenge solving failed", "signature solving failed", "nsig extraction failed",
                    "signature extraction failed")


def challenge_unsolved(warnings: Iterable[str]) -> bool:
  """Whether yt-dlp's warnings say it could not solve YouTube's JavaScript challenge."""
  return any(word in normalize_message(w) for w in warnings for word in _CHALLENGE_WORDS)


def classify_ffmpeg_log(log: str) -> Optional[Reason]:
  """The reason in the log ffmpeg wrote during a section download, or None.

  A truncated transfer can end with ffmpeg exiting 0 and yt-dlp reporting
  success, so the log is read after successful downloads too. Truncation is
  checked first: a cut-off file also fails to parse ("moov atom not found"),
  but the cause is the transfer, not the media.
  """
  text = normalize_message(log)
  if not text.strip():
    return None
  if any(word in text for word in ("stream ends prematurely", "partial file")):
    return Reason.TRUNCATED
  return classify_message(text)


def exception_chain(error: BaseException) -> Iterator[BaseException]:
  """The error and its causes: yt-dlp's exc_info and .cause, then __cause__/__context__."""
  seen = set()
  pending = [error]
  while pending:
    current = pending.pop(0)
    if current is None or id(current) in seen:
      continue
    seen.add(id(current))
    yield current
    exc_info = getattr(current, "exc_info", None)
    if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
      pending.append(exc_info[1])
    cause = getattr(current, "cause", None)
    if isinstance(cause, BaseException):
      pending.append(cause)
    pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _classify_exception_type(error: BaseException) -> Optional[Classification]:
  """A verdict from the type of one exception, or None when the type says nothing."""
  if isinstance(error, ytdlp_net.HTTPError):
    retry_after = None
    response = getattr(error, "response", None)
    if response is not None:
      retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return Classification(reason_for_http_status(error.status), retry_after_s=retry_after)
  if isinstance(error, ytdlp_utils.GeoRestrictedError):
    return Classification(Reason.GEO_BLOCKED)
  if isinstance(error, ytdlp_utils.UnsupportedError):
    return Classification(Reason.UNSUPPORTED_URL)
  if isinstance(error, (ytdlp_net.IncompleteRead, http.client.IncompleteRead, ytdlp_utils.ContentTooShortError)):
    return Classification(Reason.TRUNCATED)
  if isinstance(error, ytdlp_net.ProxyError):
    return Classification(Reason.PROXY)
  if isinstance(error, (TimeoutError, socket.timeout)):
    return Classification(Reason.TIMEOUT)
  if isinstance(error, (ConnectionError, http.client.RemoteDisconnected)):
    return Classification(Reason.CONNECTION)
  if isinstance(error, ytdlp_net.TransportError):
    # The message tells a timeout from a reset; a bare TransportError is a connection problem.
    reason = classify_message(str(error))
    return Classification(reason if reason in (Reason.TIMEOUT, Reason.TRUNCATED) else Reason.CONNECTION)
  return None


def classify_exception(error: BaseException, ffmpeg_log: str = "") -> Classification:
  """Classifies a failed download attempt.

  Looks, in order, at: YouTube's words in the message (they are the most
  specific: a private video also fails with HTTP errors further down); the
  types in the exception chain (HTTPError with its status and Retry-After,
  timeouts, resets, truncation); the ffmpeg log of a section download; then
  any status or error wording left in the messages. What is still unknown is
  TRANSIENT (Reason.UNKNOWN): worth one more try, and a later refresh.

  Args:
    error: what the attempt raised, usually a yt_dlp.utils.DownloadError.
    ffmpeg_log: what ffmpeg wrote to stderr during the attempt, if captured.
  """
  chain = list(exception_chain(error))
  messages = [getattr(e, "msg", None) or str(e) for e in chain]
  # YouTube's refusals first, from the extractor's message (its rate limit aside:
  # the types below carry the Retry-After).
  for message in messages:
    reason = _refusal_in(normalize_message(message))
    if reason is not None and reason.failure_class is not FailureClass.TRANSIENT:
      return Classification(reason)
  for link in chain:
    verdict = _classify_exception_type(link)
    if verdict is not None:
      return verdict
  if ffmpeg_log:
    reason = classify_ffmpeg_log(ffmpeg_log)
    if reason is not None:
      return Classification(reason)
  for message in messages:
    reason = classify_message(message)
    if reason is not None:
      return Classification(reason)
  return Classification(Reason.UNKNOWN)
