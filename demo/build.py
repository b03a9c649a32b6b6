"""The demo's data half: serve the synthetic clips like YouTube, and run the real build on them.

The media server on 127.0.0.1 stands in for YouTube: every id is served at
``/{ytid}`` (mp4 or webm), except the ones the dataset lists without media
(404) and one whose "video" is an HTML page. The build is the real
``pipelines.build_vggsound`` (yt-dlp section downloads, Beam's local runner on
every core, FFmpeg decoding) writing TFRecord and ArrayRecord shards, a
manifest and a failure ledger for each split.
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


def build_splits(dataset: DemoDataset, builds_dir: str, *, frame_short_side: int,
                 beam_args: Sequence[str] = ()) -> dict[str, dict]:
  """Runs build_vggsound for each split; returns split -> manifest."""
  manifests = {}
  with serve(dataset) as server:
    for split in SPLITS:
      manifests[split] = build_vggsound.run([
          "--csv", dataset.annotations, "--split", split, "--clip_seconds", str(dataset.clip_seconds),
          "--output_dir", os.path.join(builds_dir, split), "--url_template", server.base_url + "/{ytid}",
          "--frame_short_side", str(frame_short_side), "--clips_per_shard", "32",
          "--max_attempts", "2", "--retry_base_delay", "0.2", "--progress_interval", "10", *beam_args])
  return manifests
