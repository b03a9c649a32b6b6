"""What the downloader is asked for and what it returns, one typed result per clip."""

from __future__ import annotations

import dataclasses
from typing import Optional, Protocol, Union

from pipelines.download.verify import MediaCheck
from shared.failures import FailureClass, Reason


class ClipSpan(Protocol):
  """Anything naming a span of a YouTube video: pipelines.sources' ClipRequest, or DownloadRequest."""

  clip_id: str
  source_id: str
  start_s: float
  end_s: float


@dataclasses.dataclass(frozen=True)
class DownloadRequest:
  """A span of a YouTube video to fetch.

  Attributes:
    clip_id: unique, filesystem-safe name of the clip; the file is
      ``{clip_id}.{ext}`` in the output directory.
    source_id: the 11-character YouTube id.
    start_s: span start, seconds of the source.
    end_s: span end, seconds of the source.
  """

  clip_id: str
  source_id: str
  start_s: float
  end_s: float


@dataclasses.dataclass(frozen=True)
class DownloadSuccess:
  """A clip whose file is on disk, decodes and covers its span.

  The file keeps the source's clock: presentation time t in the file is second
  t of the source, counted from the source's first timestamp (the clock spans
  are given on). Decode the span with ``clock_origin_s=clock_origin_s`` (0);
  a decoder that measures time from the file's own start (its container start
  time) finds source second t at ``t - source_offset_s`` instead.

  Attributes:
    clip_id: the clip.
    source_id: its YouTube id.
    start_s: span start in the source, seconds.
    end_s: span end in the source, seconds.
    path: the downloaded file (local).
    num_bytes: its size.
    sha256: hex digest of its content.
    source_offset_s: the source second at the file's time zero (its container
      start time): at most section_start_s, earlier when the cut snapped back to
      a keyframe.
    section_start_s: the start of the section requested (span start minus the
      margin, not below 0).
    section_end_s: the end of the section requested (span end plus the margin).
    attempts: download attempts made (0: an existing file was reused).
    media: what verification found (coverage per stream, frame size).
  """

  clip_id: str
  source_id: str
  start_s: float
  end_s: float
  path: str
  num_bytes: int
  sha256: str
  source_offset_s: float
  section_start_s: float
  section_end_s: float
  attempts: int
  media: MediaCheck

  ok = True
  status = "ok"
  # Presentation time in the file of the source's second 0.
  clock_origin_s = 0.0

  @property
  def file_span_s(self) -> tuple[float, float]:
    """The span on the file's own clock (from its container start).

    Negative at the start when the file starts after the span's start (by at
    most the verification's max_missing_s); decoding with clock_origin_s
    needs no such shift.
    """
    return self.start_s - self.source_offset_s, self.end_s - self.source_offset_s


@dataclasses.dataclass(frozen=True)
class DownloadFailure:
  """A clip that could not be fetched, and why.

  Attributes:
    clip_id: the clip.
    source_id: its YouTube id (as given, possibly malformed).
    start_s: span start in the source, seconds.
    end_s: span end in the source, seconds.
    failure_class: permanent, transient, needs_cookies or invalid_media.
    reason: the specific cause.
    message: what went wrong, scrubbed of credentials.
    attempts: download attempts made (0: refused before any request).
    retry_after_s: the last Retry-After the server sent, if any.
  """

  clip_id: str
  source_id: str
  start_s: float
  end_s: float
  failure_class: FailureClass
  reason: Reason
  message: str
  attempts: int
  retry_after_s: Optional[float] = None

  ok = False
  status = "failed"


DownloadResult = Union[DownloadSuccess, DownloadFailure]
