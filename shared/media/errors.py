"""Why a clip could not be decoded.

Every failure that comes from the media itself is a :class:`MediaError`, so a
pipeline can catch one type, record the clip as lost with the message, and go
on. Each message names the file and the reason. A malformed request (an empty
or negative span) is a caller's mistake, not the media's, and is an
:class:`InvalidSpanError`, a ValueError.
"""

from __future__ import annotations


class MediaError(Exception):
  """The media could not be decoded into a clip.

  Attributes:
    path: the file that failed.
    reason: what went wrong, in words.
  """

  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = path
    self.reason = reason

  def __reduce__(self):
    # Beam pickles exceptions across workers; keep both constructor arguments.
    return type(self), (self.path, self.reason)


class UnreadableMediaError(MediaError):
  """The file cannot be read at all: missing, a directory, no permission, I/O error."""


class CorruptMediaError(MediaError):
  """The bytes are not media FFmpeg can read, or decoding them fails."""


class TruncatedMediaError(CorruptMediaError):
  """The media ends before its own header says it does, inside the span asked for."""


class NoVideoStreamError(MediaError):
  """The file holds no video stream (e.g. audio only)."""


class NoAudioStreamError(MediaError):
  """The file holds no audio stream, and the caller requires one (silence is otherwise allowed)."""


class DecodeTimeoutError(MediaError):
  """Decoding took longer than the allowed deadline."""


class InvalidSpanError(ValueError):
  """The requested span is empty, reversed, negative or not finite."""
