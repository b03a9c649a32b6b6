"""Clip identity: stable, unique, filesystem-safe ids for every clip.

A YouTube clip (AudioSet, VGGSound) is a span of a video, named by the video's
id and the span's start::

    yt_{ytid}_{start_ms:09d}        e.g. yt_--4gqARaEJE_000030000

* ``yt_`` prefix: YouTube ids may begin with "-" (``--4gqARaEJE``); a clip id
  never does, so it cannot be taken for a command-line option by any tool
  (ffmpeg, yt-dlp, shell globs) and never starts with "." (a hidden file).
  A prefix, rather than putting the start first, keeps one video's clips
  together when ids are sorted.
* start in integer milliseconds, 9 digits zero padded: AudioSet starts have
  three decimals (``417.300``), so whole seconds would not be unique; fixed
  width makes lexical order equal start order within a video. 9 digits cover
  277 hours, far beyond YouTube's 12 hour limit.
* The end is not part of the id: (video, start) already names one clip in
  every dataset here.
* Characters are ``[A-Za-z0-9_-]`` only: no path separator, no space, nothing
  a shell or URL needs to quote. The id parses back to (ytid, start_ms)
  without ambiguity because a YouTube id is exactly 11 characters.

Caveat: YouTube ids are case sensitive, so two ids can differ only in case;
on a case-insensitive filesystem (macOS, Windows defaults) their files would
collide. With 2M random ids the chance of such a pair is about 1e-5; writers
that name files by clip id on such filesystems should check.

An EPIC-KITCHENS clip is one narration, and its id is the narration id
(``P01_11_0``), which already has all these properties.
"""

from __future__ import annotations

import decimal
import re
from typing import NamedTuple

from pipelines.sources.rows import excerpt

YOUTUBE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")
YOUTUBE_CLIP_PREFIX = "yt_"
_START_MS_DIGITS = 9
_MAX_START_MS = 10**_START_MS_DIGITS - 1
_YOUTUBE_CLIP_ID_PATTERN = re.compile(rf"yt_([A-Za-z0-9_-]{{11}})_([0-9]{{{_START_MS_DIGITS}}})")
EPIC_NARRATION_ID_PATTERN = re.compile(r"P[0-9]{2}_[0-9]{2,3}_[0-9]+")
_SECONDS_TEXT_PATTERN = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_SAFE_CLIP_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")


class YouTubeSegment(NamedTuple):
  """What a YouTube clip id names.

  Attributes:
    ytid: the 11-character YouTube video id.
    start_ms: span start in whole milliseconds.
  """

  ytid: str
  start_ms: int

  @property
  def start_s(self) -> float:
    return self.start_ms / 1000


def is_youtube_id(text: str) -> bool:
  """Whether text is a well-formed YouTube video id (11 of [A-Za-z0-9_-])."""
  # fullmatch, not "^...$": "$" would accept a trailing newline.
  return YOUTUBE_ID_PATTERN.fullmatch(text) is not None


def seconds_to_ms(start_s: float | int | decimal.Decimal | str) -> int:
  """A start in seconds as whole milliseconds; refuses sub-millisecond values.

  Floats are read through their shortest decimal form, so 417.3 gives 417300
  exactly.
  """
  try:
    value = decimal.Decimal(start_s if isinstance(start_s, (str, decimal.Decimal)) else str(start_s))
  except decimal.InvalidOperation:
    raise ValueError(f"not a number of seconds: {start_s!r}") from None
  if not value.is_finite():
    raise ValueError(f"not a finite number of seconds: {start_s!r}")
  ms = value * 1000
  if ms != ms.to_integral_value():
    raise ValueError(f"{start_s!r} s is not a whole number of milliseconds")
  return int(ms)


def seconds_text_to_ms(text: str) -> int:
  """Whole milliseconds from a decimal text of seconds ("417.300" -> 417300).

  Exact (no float in between) and fast: the AudioSet parser calls it twice a
  row. Signs, exponents, "nan", "inf" and sub-millisecond values are refused.

  Raises:
    ValueError: text is not DIGITS[.DIGITS], or has a non-zero digit past the
      third decimal.
  """
  match = _SECONDS_TEXT_PATTERN.fullmatch(text)
  if match is None:
    raise ValueError(f"not a number of seconds: {excerpt(text)}")
  whole, fraction = match.group(1), match.group(2) or ""
  if fraction[3:].strip("0"):
    raise ValueError(f"{excerpt(text)} s is not a whole number of milliseconds")
  return int(whole) * 1000 + int((fraction + "000")[:3])


def youtube_clip_id(ytid: str, start_s: float | int | decimal.Decimal | str) -> str:
  """The clip id of the span of YouTube video `ytid` starting at `start_s`.

  Raises:
    ValueError: a malformed YouTube id, or a start that is negative, not a
      whole number of milliseconds or beyond 999999.999 s.
  """
  return youtube_clip_id_from_ms(ytid, seconds_to_ms(start_s))


def youtube_clip_id_from_ms(ytid: str, start_ms: int) -> str:
  """youtube_clip_id with the start in whole milliseconds.

  Raises:
    ValueError: a malformed YouTube id, or start_ms outside [0, 999999999].
  """
  if not is_youtube_id(ytid):
    raise ValueError(f"not a YouTube id: {ytid!r}")
  if not 0 <= start_ms <= _MAX_START_MS:
    raise ValueError(f"start {start_ms} ms is out of range [0, {_MAX_START_MS}]")
  return f"{YOUTUBE_CLIP_PREFIX}{ytid}_{start_ms:0{_START_MS_DIGITS}d}"


def parse_youtube_clip_id(clip_id: str) -> YouTubeSegment:
  """(ytid, start_ms) back from a YouTube clip id.

  Raises:
    ValueError: clip_id is not of the form yt_{ytid}_{start_ms:09d}.
  """
  match = _YOUTUBE_CLIP_ID_PATTERN.fullmatch(clip_id)
  if match is None:
    raise ValueError(f"not a YouTube clip id: {clip_id!r}")
  return YouTubeSegment(ytid=match.group(1), start_ms=int(match.group(2)))


def is_epic_narration_id(text: str) -> bool:
  """Whether text is a well-formed EPIC-KITCHENS narration id (P01_11_0)."""
  return EPIC_NARRATION_ID_PATTERN.fullmatch(text) is not None


def epic_clip_id(narration_id: str) -> str:
  """The clip id of an EPIC-KITCHENS narration: the narration id itself.

  Raises:
    ValueError: narration_id is not of the form PXX_YY_N.
  """
  if not is_epic_narration_id(narration_id):
    raise ValueError(f"not an EPIC-KITCHENS narration id: {narration_id!r}")
  return narration_id


def is_safe_clip_id(clip_id: str) -> bool:
  """Whether clip_id can name a file anywhere: [A-Za-z0-9_-], at most 128
  characters, not starting with "-" or "."."""
  return _SAFE_CLIP_ID_PATTERN.fullmatch(clip_id) is not None
