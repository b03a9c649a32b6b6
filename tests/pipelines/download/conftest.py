"""Real media on a real local server, for running real yt-dlp against.

The media is generated once per session (shared.media.generator: every frame
shows its index, so a test can tell which source frame a downloaded frame is)
and served by one MediaServer; each test gives its clips their own YouTube-like
ids (aliases of the generated files), so faults injected for one test never
touch another.
"""

from __future__ import annotations

import itertools
import os
import random
import string
import threading

import pytest

from pipelines.download.backoff import RetryPolicy
from pipelines.download.downloader import ClipDownloader, DownloadConfig
from shared.media.generator import ClipSpec, write_clip, write_late_start_clips
from testsupport.media_server import MediaServer

# Keyframes at 0, 10 and 20 s (x264's default GOP of 250 frames at 25 fps): a
# section cut snaps back visibly, and a 4 s section is far from the whole file.
LONG_SPEC = ClipSpec(duration_s=24.0, width=320, height=240, fps=25.0)
DASH_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8S" minBufferTime="PT2S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>
  <AdaptationSet mimeType="video/mp4" contentType="video">
   <Representation id="v240" codecs="avc1.42c00d" width="320" height="240" bandwidth="200000">
    <BaseURL>dash_v240.mp4</BaseURL></Representation>
   <Representation id="v368" codecs="avc1.42c01e" width="480" height="368" bandwidth="800000">
    <BaseURL>dash_v368.mp4</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4" contentType="audio">
   <Representation id="a128" codecs="mp4a.40.2" audioSamplingRate="44100" bandwidth="128000">
    <BaseURL>dash_audio.m4a</BaseURL></Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


class Media:
  """The generated files (names in the served directory) and their truths."""

  def __init__(self, directory: str):
    self.directory = directory
    self.long_mp4 = write_clip(os.path.join(directory, "long.mp4"), LONG_SPEC)
    self.short_webm = write_clip(os.path.join(directory, "short.webm"),
                                 ClipSpec(duration_s=10.0, width=320, height=240, fps=25.0, container="webm"))
    self.offset_mp4 = write_clip(os.path.join(directory, "offset.mp4"),
                                 ClipSpec(duration_s=8.0, width=320, height=240, fps=25.0, start_offset_s=1.5))
    # Sources whose first timestamp is 0.54 s (MPEG-PS as FFmpeg writes it, and MP4), with and without audio.
    self.late_start = write_late_start_clips(directory, duration_s=8.0)
    # A YouTube-like set of separate streams: two video heights around the 360 cap, one audio.
    write_clip(os.path.join(directory, "dash_v240.mp4"),
               ClipSpec(duration_s=8.0, width=320, height=240, fps=25.0, audio=False))
    write_clip(os.path.join(directory, "dash_v368.mp4"),
               ClipSpec(duration_s=8.0, width=480, height=368, fps=25.0, audio=False))
    write_clip(os.path.join(directory, "dash_audio.m4a"), ClipSpec(duration_s=8.0, video=False))
    with open(os.path.join(directory, "dash.mpd"), "w") as manifest:
      manifest.write(DASH_MANIFEST)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Media:
  return Media(str(tmp_path_factory.mktemp("media")))


@pytest.fixture(scope="session")
def server(media) -> MediaServer:
  with MediaServer(media.directory) as running:
    yield running


_id_counter = itertools.count()
_id_lock = threading.Lock()


def fresh_ytid(prefix: str = "") -> str:
  """An unused, valid 11-character YouTube id (optionally starting with `prefix`)."""
  with _id_lock:
    number = next(_id_counter)
  alphabet = string.ascii_letters + string.digits
  tail = "".join(random.Random(number).choice(alphabet) for _ in range(11))
  return (prefix + f"{number:03d}" + tail)[:11]


@pytest.fixture
def serve_as(server):
  """serve_as(target, ytid=None, ext="mp4") -> ytid: serves file `target` as /{ytid}.{ext}."""

  def alias(target: str, ytid: str | None = None, ext: str = "mp4") -> str:
    ytid = ytid or fresh_ytid()
    server.alias(f"{ytid}.{ext}", target)
    return ytid

  return alias


# Retries fast enough for a test suite, still exponential and jittered.
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2, jitter=0.5, max_retry_after_s=5.0)


@pytest.fixture
def make_downloader(tmp_path, server):
  """make_downloader(**config overrides) -> ClipDownloader writing under tmp_path/clips."""

  def make(**overrides) -> ClipDownloader:
    settings = dict(output_dir=str(tmp_path / "clips"), url_template=server.url_template("{ytid}.mp4"),
                    socket_timeout_s=2.0, retry=FAST_RETRY, reuse_existing=False)
    settings.update(overrides)
    return ClipDownloader(DownloadConfig(**settings), rng=random.Random(0))

  return make


@pytest.fixture
def new_ytid():
  """new_ytid(prefix="") -> an unused, valid YouTube id."""
  return fresh_ytid
