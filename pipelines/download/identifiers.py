"""YouTube ids and the URLs built from them.

yt-dlp is only ever handed an absolute http(s) URL built from a validated id,
never the bare id: an id may begin with "-" (``-4gqARaEJE..``), which yt-dlp
(and anything else with a command line) would read as an option.
"""

from __future__ import annotations

import re
import string
import urllib.parse

# fullmatch() with this, not match() with "^...$": "$" would accept a trailing newline.
YOUTUBE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")
DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"


class InvalidYoutubeIdError(ValueError):
  """Not an 11-character YouTube id of [A-Za-z0-9_-]."""


class InvalidUrlTemplateError(ValueError):
  """A URL template that does not yield an absolute http(s) URL per id."""


def validate_youtube_id(ytid: str) -> str:
  """Returns `ytid` if it is a well-formed YouTube id, else raises InvalidYoutubeIdError."""
  if not isinstance(ytid, str) or YOUTUBE_ID_PATTERN.fullmatch(ytid) is None:
    raise InvalidYoutubeIdError(f"not a YouTube id (11 of [A-Za-z0-9_-]): {ytid!r}")
  return ytid


class UrlTemplate:
  """Where to fetch a video: a template with one ``{ytid}`` field.

  The default is YouTube's watch page; a mirror is e.g.
  ``http://127.0.0.1:8000/{ytid}.mp4`` (what the tests use).

  Args:
    template: an absolute http or https URL containing ``{ytid}`` exactly once
      and no other fields.
  """

  def __init__(self, template: str = DEFAULT_URL_TEMPLATE):
    fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    if fields != ["ytid"]:
      raise InvalidUrlTemplateError(f"a URL template needs exactly one {{ytid}} field, got {fields} in {template!r}")
    example = template.format(ytid="A" * 11)
    parts = urllib.parse.urlsplit(example)
    if parts.scheme not in ("http", "https") or not parts.netloc:
      raise InvalidUrlTemplateError(f"a URL template must give an absolute http(s) URL, got {template!r}")
    self.template = template

  def url_for(self, ytid: str) -> str:
    """The URL of video `ytid` (validated first)."""
    return self.template.format(ytid=validate_youtube_id(ytid))

  def __repr__(self) -> str:
    return f"UrlTemplate({self.template!r})"

  def __eq__(self, other) -> bool:
    return isinstance(other, UrlTemplate) and other.template == self.template

  def __hash__(self) -> int:
    return hash(self.template)
