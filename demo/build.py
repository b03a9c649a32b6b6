"""The demo's data half: serve the synthetic clips like YouTube, and run the real build on them.

The media server on 127.0.0.1 stands in for YouTube: every id is served at
``/{ytid}`` (mp4 or webm), except the ones the dataset lists without media
(404) and one whose "video" is an HTML page. The build is the real
``pipelines.build_vggsound`` (yt-dlp section downloads, Beam's local runner on
every core, FFmpeg decoding) writing TFRecord and ArrayRecord shards, a
manifest and a failure ledger for each task and split, into
``BUILDS/TASK/SPLIT``. Both tasks label the same clips, so the second task's
build reuses the sections the first one downloaded (``--media_dir``) and only
decodes and writes.
"""

from __future__ import annotations

import os
from typing import Sequence

from demo.dataset import DemoDataset, media_name
from pipelines import build_vggsound
from testsupport.media_server import MediaServer

SPLITS = ("train", "test")


def serve(dataset: DemoDataset) -> MediaServer:
  """A media server (use it as a context manager) mapping ``/{ytid}`` onto each clip's file."""
  server = MediaServer(dataset.media_dir)
  for clip in dataset.clips:
    server.alias(clip.ytid, media_name(dataset.media_dir, clip.ytid))
  for ytid in dataset.not_media_ids:
    server.alias(ytid, f"{ytid}.mp4")
  return server


def split_dir(builds_dir: str, task: str, split: str) -> str:
  """Where the build of one task's split lies."""
  return os.path.join(builds_dir, task, split)


def build_tasks(dataset: DemoDataset, builds_dir: str, tasks: Sequence[str], *, frame_short_side: int,
                beam_args: Sequence[str] = ()) -> dict[str, dict[str, dict]]:
  """Runs build_vggsound for each task and split; returns task -> split -> manifest."""
  manifests: dict[str, dict[str, dict]] = {}
  with serve(dataset) as server:
    for task in tasks:
      manifests[task] = {}
      for split in SPLITS:
        media_dir = os.path.join(builds_dir, "media", split)  # shared by the tasks: one download per clip
        manifests[task][split] = build_vggsound.run([
            "--csv", dataset.annotations[task], "--split", split, "--clip_seconds", str(dataset.clip_seconds),
            "--output_dir", split_dir(builds_dir, task, split), "--media_dir", media_dir,
            "--url_template", server.base_url + "/{ytid}", "--frame_short_side", str(frame_short_side),
            "--clips_per_shard", "32", "--max_attempts", "2", "--retry_base_delay", "0.2",
            "--progress_interval", "10", *beam_args])
  return manifests
