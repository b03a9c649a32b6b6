"""What `trainer.predict` reads: INPUT[@START[-END]] resolved to media FFmpeg can open.

An INPUT is one of

  path/to/clip.mp4              a local media file (anything FFmpeg reads);
  http://host/clip.webm         an http(s) URL, read by FFmpeg directly
                                (seeking with Range requests, no download);
  yt:VIDEO_ID                   a YouTube id, fetched with yt-dlp (at most
                                360p, only the span when one is given);
  VIDEO_ID                      the same, when no such file exists. Ids may
                                begin with "-": write `yt:-abc...` then, or
                                the command line takes them for options.

followed by an optional span in seconds of the source:

  @START-END                    e.g. clip.mp4@30-40, yt:dQw4w9WgXcQ@12.5-20.5;
  @START                        from START to the end of the media.

Without a span the whole media is read. A '@' that is not followed by a span
belongs to the input (URLs may hold one).

YouTube ids go through a URL template, https://www.youtube.com/watch?v={ytid}
by default; tests and mirrors point it at a local server instead. Section
downloads keep the source's clock in the file (ffmpeg's -copyts
-start_at_zero, as the builds do), so second t of the source is presentation
time t in the file, whatever keyframe the cut snapped to: trainer.predict
decodes it with clock_origin_s=0, as the builds decode their sections.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
import string
import urllib.parse
from typing import Optional

import av

YOUTUBE_PREFIX = "yt:"
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"
FILE, URL, YOUTUBE = "file", "url", "youtube"
# Fetched around a span so that the keyframe cut and the codec's warm-up lie outside it.
SECTION_MARGIN_S = 1.0
MAX_HEIGHT = 360

_SECONDS = r"\d+(?:\.\d*)?"
_SPAN = re.compile(rf"(?P<start>{_SECONDS})(?:-(?P<end>{_SECONDS}))?")
_logger = logging.getLogger(__name__)


class InputError(ValueError):
  """An input cannot be read: malformed, missing, not fetched or not decodable media."""


@dataclasses.dataclass(frozen=True)
class MediaInput:
  """One parsed INPUT.

  Attributes:
    text: the INPUT as given.
    kind: FILE, URL or YOUTUBE.
    location: the path, the URL or the YouTube id.
    start_s: span start in the source (0 without a span).
    end_s: span end, or None for the end of the media.
  """

  text: str
  kind: str
  location: str
  start_s: float = 0.0
  end_s: Optional[float] = None


def parse_input(text: str) -> MediaInput:
  """Parses INPUT[@START[-END]]; raises InputError saying what is wrong."""
  base, start, end = text, 0.0, None
  head, at, tail = text.rpartition("@")
  span = _SPAN.fullmatch(tail) if at else None
  if span:
    base, start = head, float(span.group("start"))
    end = float(span.group("end")) if span.group("end") is not None else None
    if end is not None and end <= start:
      raise InputError(f"{text}: the span {tail} is empty; write @START-END with END > START (seconds)")
  if not base:
    raise InputError(f"{text!r}: no media before the span")
  if base.startswith(YOUTUBE_PREFIX):
    ytid = base[len(YOUTUBE_PREFIX):]
    if not YOUTUBE_ID.fullmatch(ytid):
      raise InputError(f"{text}: {ytid!r} is not a YouTube id (11 of A-Z a-z 0-9 _ -)")
    return MediaInput(text, YOUTUBE, ytid, start, end)
  if urllib.parse.urlsplit(base).scheme in ("http", "https"):
    return MediaInput(text, URL, base, start, end)
  if os.path.exists(base):
    if os.path.isdir(base):
      raise InputError(f"{text}: {base} is a directory, not a media file")
    return MediaInput(text, FILE, base, start, end)
  if YOUTUBE_ID.fullmatch(base):
    return MediaInput(text, YOUTUBE, base, start, end)
  raise InputError(f"{text}: no such file, and not an http(s) URL or a YouTube id (yt:ID)")


def youtube_url(template: str, ytid: str) -> str:
  """The URL of a video id under a template with one {ytid} field."""
  fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
  if fields != ["ytid"]:
    raise InputError(f"the URL template needs exactly one {{ytid}} field, got {template!r}")
  url = template.format(ytid=ytid)
  if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
    raise InputError(f"the URL template must give http(s) URLs, got {url!r}")
  return url


class _YtDlpLog:
  """yt-dlp's messages, into this module's logger (debug) instead of the console."""

  def debug(self, message: str) -> None:
    _logger.debug("yt-dlp: %s", message)

  info = debug

  def warning(self, message: str) -> None:
    _logger.debug("yt-dlp warning: %s", message)

  def error(self, message: str) -> None:
    _logger.debug("yt-dlp error: %s", message)


def fetch_youtube(media: MediaInput, url_template: str, work_dir: str) -> str:
  """Downloads a YouTube input (its span with a margin, or all of it) into work_dir; returns the file."""
  import imageio_ffmpeg
  import yt_dlp
  import yt_dlp.utils
  from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

  url = youtube_url(url_template, media.location)
  params = {
      "format": f"bestvideo[height<={MAX_HEIGHT}]+bestaudio/best[height<={MAX_HEIGHT}]/best",
      "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
      "paths": {"home": work_dir, "temp": work_dir},
      "outtmpl": {"default": "media.%(ext)s"},
      "logger": _YtDlpLog(),
      "noprogress": True,
      "noplaylist": True,
      "socket_timeout": 30,
  }
  if media.end_s is not None:
    section = (max(0.0, media.start_s - SECTION_MARGIN_S), media.end_s + SECTION_MARGIN_S)
    params["download_ranges"] = yt_dlp.utils.download_range_func(None, [section])
    params["external_downloader_args"] = {"ffmpeg_i": ["-copyts", "-start_at_zero"]}
  # yt-dlp checks for ffmpeg before a section download through this context
  # variable, not through the ffmpeg_location parameter.
  token = FFmpegPostProcessor._ffmpeg_location.set(params["ffmpeg_location"])
  try:
    with yt_dlp.YoutubeDL(params) as downloader:
      downloader.extract_info(url, download=True)
  except yt_dlp.utils.DownloadError as error:
    raise InputError(f"{media.text}: yt-dlp could not fetch {url}: {error}") from error
  finally:
    FFmpegPostProcessor._ffmpeg_location.reset(token)
  files = [path for path in glob.glob(os.path.join(work_dir, "media.*")) if not path.endswith((".part", ".ytdl"))]
  if not files:
    raise InputError(f"{media.text}: yt-dlp reported success for {url} but wrote no file")
  return files[0]


def media_clock(location: str, timeout_s: float = 30.0) -> tuple[float, Optional[float]]:
  """(start time, duration) of media in seconds, from its container; duration None if unknown.

  Raises:
    InputError: FFmpeg cannot open it.
  """
  try:
    with av.open(location, mode="r", timeout=(timeout_s, timeout_s)) as container:
      start = (container.start_time or 0) / av.time_base
      duration = container.duration / av.time_base if container.duration else None
  except (av.FFmpegError, OSError) as error:
    raise InputError(f"{location}: FFmpeg cannot read it as media ({error})") from error
  return start, duration
