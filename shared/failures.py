"""Why a requested clip is not in a build: the one vocabulary of failure classes and reasons.

Every requested clip ends in a shard or in the failure ledger with a reason,
written ``class/reason`` (``permanent/http_404``). The class decides what
happens next: whether a download is retried, and whether a refresh fetches the
clip again. Each reason belongs to exactly one class and is named here once,
with its meaning; the ledger, the manifest's ``failed_by_reason`` and the
progress lines all speak this vocabulary, and WORKSPACE.md's table is
:func:`markdown_tables` (a test keeps the two equal).

    python -m shared.failures          # prints the tables
"""

from __future__ import annotations

import enum
import sys


class FailureClass(str, enum.Enum):
  """What kind of failure a clip had.

  Attributes:
    meaning: what the class says about the clip, and what happens next.
  """

  def __new__(cls, value: str, meaning: str):
    member = str.__new__(cls, value)
    member._value_ = value
    member.meaning = meaning
    return member

  PERMANENT = ("permanent", "the clip is gone for everyone, or closed to us: never retried; a refresh keeps the "
               "failure unless --recheck_unavailable")
  TRANSIENT = ("transient", "the next try may work: retried with bounded exponential backoff and jitter, "
               "Retry-After honoured; a refresh fetches the clip again")
  NEEDS_COOKIES = ("needs_cookies", "YouTube wants proof of a human: not retried (retrying from the same address "
                   "makes it worse); a refresh with --cookies, or from elsewhere, can fetch it")
  INVALID_MEDIA = ("invalid_media", "bytes arrived but are not a usable clip: a download is retried "
                   "(RetryPolicy.invalid_media_retries); a refresh fetches the clip again")
  BAD_ROW = ("bad_row", "the annotation row could not be read (recorded with --skip_bad_rows): never fetched")

  def __str__(self) -> str:
    return self.value


class Reason(str, enum.Enum):
  """The specific cause of a failure; each belongs to one FailureClass.

  Attributes:
    failure_class: the class the reason belongs to.
    meaning: what happened, in words.
  """

  def __new__(cls, value: str, failure_class: FailureClass, meaning: str):
    member = str.__new__(cls, value)
    member._value_ = value
    member.failure_class = failure_class
    member.meaning = meaning
    return member

  # Permanent: the video is gone or closed to us.
  PRIVATE = ("private", FailureClass.PERMANENT, "the video is private")
  REMOVED_BY_UPLOADER = ("removed_by_uploader", FailureClass.PERMANENT, "the uploader removed the video")
  ACCOUNT_TERMINATED = ("account_terminated", FailureClass.PERMANENT, "the uploader's account was terminated")
  COPYRIGHT = ("copyright", FailureClass.PERMANENT, "removed or blocked over a copyright claim")
  POLICY_VIOLATION = ("policy_violation", FailureClass.PERMANENT,
                      "removed for violating YouTube's policies or terms of service")
  GEO_BLOCKED = ("geo_blocked", FailureClass.PERMANENT, "not available in the country the request came from")
  AGE_RESTRICTED = ("age_restricted", FailureClass.PERMANENT, "needs a signed-in account of an adult")
  SIGN_IN_REQUIRED = ("sign_in_required", FailureClass.PERMANENT, "needs a signed-in account (not the bot check)")
  MEMBERS_ONLY = ("members_only", FailureClass.PERMANENT, "for channel members or paying subscribers only")
  NOT_YET_LIVE = ("not_yet_live", FailureClass.PERMANENT,
                  "a premiere or live event not yet started, or one whose recording is gone")
  DRM = ("drm", FailureClass.PERMANENT, "DRM protected")
  UNAVAILABLE = ("unavailable", FailureClass.PERMANENT, "YouTube says the video is unavailable, not why")
  NO_SUITABLE_FORMAT = ("no_suitable_format", FailureClass.PERMANENT, "no format with the streams asked for")
  UNSUPPORTED_URL = ("unsupported_url", FailureClass.PERMANENT, "yt-dlp does not recognise the URL")
  HTTP_NOT_FOUND = ("http_404", FailureClass.PERMANENT, "the media URL answered 404 Not Found")
  HTTP_GONE = ("http_410", FailureClass.PERMANENT, "the media URL answered 410 Gone")
  HTTP_FORBIDDEN = ("http_403", FailureClass.PERMANENT,
                    "the media URL answered 403 Forbidden (on YouTube also an outdated yt-dlp or a missing PO token)")
  HTTP_CLIENT_ERROR = ("http_4xx", FailureClass.PERMANENT, "the media URL answered another 4xx status")
  INVALID_ID = ("invalid_id", FailureClass.PERMANENT, "the YouTube id is malformed (nothing was requested)")
  UNSAFE_CLIP_ID = ("unsafe_clip_id", FailureClass.PERMANENT,
                    "the clip id would make an unsafe file name (nothing was requested)")
  INVALID_SPAN = ("invalid_span", FailureClass.PERMANENT,
                  "the span is empty, reversed, negative, not finite or longer than --max_span_seconds")
  MISSING_VIDEO = ("missing_video", FailureClass.PERMANENT,
                   "the clip's local video file does not exist (EPIC-KITCHENS' video, or with --sources local no file "
                   "under --videos_dir that --video_pattern names)")
  # Transient: try again later.
  RATE_LIMITED = ("rate_limited", FailureClass.TRANSIENT, "HTTP 429 or YouTube's session rate limit")
  SERVER_ERROR = ("server_error", FailureClass.TRANSIENT, "HTTP 5xx")
  TIMEOUT = ("timeout", FailureClass.TRANSIENT, "no answer within the socket timeout, or HTTP 408/425")
  CONNECTION = ("connection", FailureClass.TRANSIENT, "the connection was refused, reset or closed")
  TRUNCATED = ("truncated", FailureClass.TRANSIENT, "the transfer ended before the file did")
  PROXY = ("proxy", FailureClass.TRANSIENT, "the proxy failed: unreachable, or it refused us (HTTP 407)")
  UNKNOWN = ("unknown", FailureClass.TRANSIENT, "a failure nothing recognised: worth one more try")
  CHALLENGE_UNSOLVED = ("challenge_unsolved", FailureClass.TRANSIENT,
                        "yt-dlp could not solve YouTube's JavaScript challenge (no runtime or solver scripts, or "
                        "outdated ones), so formats were missing")
  SYSTEMIC = ("systemic", FailureClass.TRANSIENT,
              "not fetched, or its failure not trusted: a worker met a run of failures that point at itself (a "
              "wall of 403s, bot checks, sign-in demands, a failing proxy or challenge solver), not at the clips")
  # Needs cookies: YouTube suspects a bot.
  BOT_CHECK = ("bot_check", FailureClass.NEEDS_COOKIES, "\"Sign in to confirm you're not a bot\"")
  # Invalid media: downloaded (or found), but not usable.
  NOT_MEDIA = ("not_media", FailureClass.INVALID_MEDIA, "the bytes are not media (e.g. an HTML page)")
  UNDECODABLE = ("undecodable", FailureClass.INVALID_MEDIA, "the media does not decode")
  SPAN_NOT_COVERED = ("span_not_covered", FailureClass.INVALID_MEDIA, "the media does not cover the clip's span")
  MISSING_STREAM = ("missing_stream", FailureClass.INVALID_MEDIA,
                    "the media has no video stream (a download, an EPIC-KITCHENS video, a local file with "
                    "--require_video), or with --require_audio no audio stream")
  DECODE_TIMEOUT = ("decode_timeout", FailureClass.INVALID_MEDIA, "decoding took longer than --decode_deadline")
  EMPTY = ("empty", FailureClass.INVALID_MEDIA, "the media URL serves an empty file (HTTP 416 to its first range)")
  TRUNCATED_MEDIA = ("truncated_media", FailureClass.INVALID_MEDIA,
                     "the file ended early on every attempt: it is cut short where it is served")
  # Bad row: the annotation itself.
  MALFORMED = ("malformed", FailureClass.BAD_ROW, "the row does not parse; the ledger names its file and line")

  def __str__(self) -> str:
    return self.value

  @property
  def qualified(self) -> str:
    """``class/reason``, as the manifest and the progress lines write it."""
    return f"{self.failure_class.value}/{self.value}"


def qualified_reason(reason_class: str, reason: str) -> str:
  """``class/reason`` of a ledger record's two fields."""
  return f"{reason_class}/{reason}"


def markdown_tables() -> str:
  """The classes and the reasons as Markdown tables (WORKSPACE.md holds exactly this)."""
  lines = ["| class | what it means, what happens next |", "| --- | --- |"]
  lines += [f"| `{c.value}` | {c.meaning} |" for c in FailureClass]
  lines += ["", "| reason | meaning |", "| --- | --- |"]
  lines += [f"| `{r.qualified}` | {r.meaning} |" for r in Reason]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  if len(sys.argv) > 1:
    print("usage: python -m shared.failures\n\nPrints the failure classes and reasons as Markdown tables.",
          file=sys.stdout if sys.argv[1] in ("-h", "--help") else sys.stderr)
    sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
  sys.stdout.write(markdown_tables())
