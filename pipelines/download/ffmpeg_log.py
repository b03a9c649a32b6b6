"""Capturing what ffmpeg says during a section download, per clip.

For a section download yt-dlp runs ffmpeg itself, with ffmpeg's stderr
inherited from our process: it would land on the worker's console, unscrubbed,
mixed across threads, and out of reach of the failure classifier. Yet only
ffmpeg knows whether the media request got a 404, a 503 or a short body (a
truncated transfer can even end with exit code 0 and a short file).

So yt-dlp is pointed (``ffmpeg_location``) at a small shell wrapper around the
real binary. The downloader adds ``-mbt_stderr_log PATH`` to ffmpeg's input
arguments for each attempt; the wrapper removes that pair and sends ffmpeg's
stderr to PATH. Every other call (yt-dlp's version probe, post-processors) runs
the binary unchanged.

The ffmpeg binary is imageio-ffmpeg's bundled one: no system package needed.
"""

from __future__ import annotations

import atexit
import functools
import os
import shlex
import shutil
import stat
import tempfile
from typing import NamedTuple

import imageio_ffmpeg

LOG_OPTION = "-mbt_stderr_log"

_WRAPPER = """#!/bin/sh
# Written by pipelines.download.ffmpeg_log: runs {real} with stderr sent to the file
# named by "{option} PATH" (removed from the arguments); without it, runs it unchanged.
log=
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1; shift; n=$((n - 1))
  if [ "$arg" = "{option}" ] && [ "$n" -gt 0 ]; then
    log=$1; shift; n=$((n - 1))
  else
    set -- "$@" "$arg"
  fi
done
if [ -n "$log" ]; then
  exec {real} "$@" 2>>"$log"
fi
exec {real} "$@"
"""


def bundled_ffmpeg() -> str:
  """Path of imageio-ffmpeg's ffmpeg binary."""
  return imageio_ffmpeg.get_ffmpeg_exe()


class LoggingFfmpeg(NamedTuple):
  """The ffmpeg yt-dlp is pointed at.

  Attributes:
    path: the executable (the wrapper, or the real binary where no wrapper can run).
    captures_stderr: whether it honours LOG_OPTION.
  """

  path: str
  captures_stderr: bool


@functools.lru_cache(maxsize=None)
def logging_ffmpeg(real_ffmpeg: str) -> LoggingFfmpeg:
  """A wrapper named ``ffmpeg`` around `real_ffmpeg` that honours LOG_OPTION; made once per process.

  Where there is no POSIX shell the real binary is returned: ffmpeg's output
  then goes to the console and failures are classified from exit codes.
  """
  if os.name != "posix" or shutil.which("sh") is None:
    return LoggingFfmpeg(real_ffmpeg, captures_stderr=False)
  directory = tempfile.mkdtemp(prefix="mbt-ffmpeg-")
  atexit.register(shutil.rmtree, directory, ignore_errors=True)
  # yt-dlp recognises the program by its file name: it must contain "ffmpeg".
  path = os.path.join(directory, "ffmpeg")
  with open(path, "w") as wrapper:
    wrapper.write(_WRAPPER.format(real=shlex.quote(real_ffmpeg), option=LOG_OPTION))
  os.chmod(path, stat.S_IRWXU)
  return LoggingFfmpeg(path, captures_stderr=True)


def read_log_tail(path: str, max_chars: int = 4000) -> str:
  """The last `max_chars` characters of a log file ("" if absent)."""
  try:
    with open(path, "rb") as log:
      log.seek(0, os.SEEK_END)
      size = log.tell()
      log.seek(max(0, size - max_chars))
      return log.read().decode("utf-8", errors="replace")
  except OSError:
    return ""
