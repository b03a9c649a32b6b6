"""Clip-level resume: a build that died, its workers' disks gone, fetches no clip it already made, and ends the same."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

from pipelines import build_vggsound, shards
from shared.manifest import read_manifest

from .conftest import FAST_BUILD_ARGS, IN_MEMORY, REPO_ROOT, requests_for, write_lines

NUM_CLIPS = 8


def _digests(output_dir) -> dict[str, str]:
  return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(output_dir.glob("test-*"))}


def _argv(file_list, output_dir, media_dir, url_template, *extra):
  return ["--file_list", file_list, "--output_dir", str(output_dir), "--media_dir", str(media_dir),
          "--url_template", url_template, "--clips_per_shard=3", *FAST_BUILD_ARGS, *extra]


def test_a_killed_build_whose_downloads_are_gone_fetches_no_staged_clip_again(tmp_path, serve, media_server,
                                                                              url_template):
  ytids = [serve("stage", "av.mp4") for _ in range(NUM_CLIPS)]
  file_list = write_lines(tmp_path / "test.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  uninterrupted = tmp_path / "uninterrupted"
  build_vggsound.run(_argv(file_list, uninterrupted, tmp_path / "media_a", url_template, IN_MEMORY))

  output_dir, media_dir = tmp_path / "killed", tmp_path / "media_b"
  argv = _argv(file_list, output_dir, media_dir, url_template, IN_MEMORY)
  # Clip starts spaced by 0.5 s: the kill lands while clips are still being fetched.
  process = subprocess.Popen([sys.executable, "-m", "pipelines.build_vggsound", *argv, "--sleep_interval=0.5"],
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
  try:
    deadline = time.monotonic() + 120
    while len(list((output_dir / "staging").glob("*.record"))) < 3:
      assert process.poll() is None, "the build ended before it could be killed mid-way"
      assert time.monotonic() < deadline, "no staged records after 120 s"
      time.sleep(0.05)
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
  staged = {path.name[:-len(".record")] for path in (output_dir / "staging").glob("*.record")}
  assert 3 <= len(staged) < NUM_CLIPS and not list(output_dir.glob("manifest.json"))
  shutil.rmtree(media_dir)  # the workers' local disks are gone

  before = requests_for(media_server, ytids)
  manifest = build_vggsound.run(argv)
  after = requests_for(media_server, ytids)
  for ytid in ytids:
    if f"yt_{ytid}_000001000" in staged:
      assert after[ytid] == before[ytid], f"staged clip {ytid} was fetched again"
  assert manifest.counts == read_manifest(str(uninterrupted)).counts
  assert _digests(output_dir) == _digests(uninterrupted) and len(_digests(output_dir)) == 2 * 3


def test_a_build_that_died_after_writing_shards_reads_them_back(tmp_path, serve, media_server, url_template):
  ytids = [serve("shard", "av.mp4") for _ in range(NUM_CLIPS)]
  file_list = write_lines(tmp_path / "test.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  output_dir, media_dir = tmp_path / "build", tmp_path / "media"
  argv = _argv(file_list, output_dir, media_dir, url_template, IN_MEMORY)
  build_vggsound.run(argv)
  finished = _digests(output_dir)
  # As if the job died after its shards but before its manifest, its disks and one shard (both formats) lost.
  (output_dir / "manifest.json").unlink()
  shutil.rmtree(media_dir)
  lost = sorted(output_dir.glob("test-00001-of-00003*"))
  for path in lost:
    path.unlink()
  in_lost_shard = {ytid for ytid in ytids if shards.shard_of(f"yt_{ytid}_000001000", 3) == 1}
  assert in_lost_shard and len(lost) == 2

  before = requests_for(media_server, ytids)
  build_vggsound.run(argv)
  after = requests_for(media_server, ytids)
  assert {ytid for ytid in ytids if after[ytid] > before[ytid]} == in_lost_shard
  assert _digests(output_dir) == finished
