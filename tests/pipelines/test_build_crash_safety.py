"""A build killed mid-way leaves nothing that looks finished, and a re-run completes it without re-downloading."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from pipelines import build_vggsound
from pipelines.download.ledger import read_ledger

from .conftest import (FAST_BUILD_ARGS, IN_MEMORY, REPO_ROOT, assert_frames_match, counters, pipeline_results,
                       read_build, requests_for, write_lines)

NUM_CLIPS = 8
SHARD_FILE = re.compile(r"test-\d{5}-of-\d{5}(\.array_record)?")


def _wait_for_ledger_records(ledger_dir: str, process: subprocess.Popen, at_least: int, timeout_s: float) -> int:
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise AssertionError(f"the build ended (exit {process.returncode}) before it could be killed mid-way")
    checked = len(read_ledger(ledger_dir, missing_ok=True).records)
    if checked >= at_least:
      return checked
    time.sleep(0.05)
  raise AssertionError(f"no {at_least} ledger records after {timeout_s} s")


def test_killed_build_leaves_no_finished_looking_files_and_resumes_without_downloading_again(
    tmp_path, serve, media_server, url_template, source_media):
  ytids = [serve("crash", "av.mp4") for _ in range(NUM_CLIPS)]
  file_list = write_lines(tmp_path / "test.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  output_dir = tmp_path / "build"
  argv = ["--file_list", file_list, "--output_dir", str(output_dir), "--url_template", url_template,
          *FAST_BUILD_ARGS, IN_MEMORY]

  # Clip starts spaced by at least 0.5 s: the kill lands while clips are still downloading.
  process = subprocess.Popen([sys.executable, "-m", "pipelines.build_vggsound", *argv, "--sleep_interval=0.5"],
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
  try:
    _wait_for_ledger_records(str(output_dir / "ledger"), process, at_least=3, timeout_s=90)
  finally:
    os.killpg(process.pid, signal.SIGKILL)  # the build's own process group: nothing else
    process.wait(timeout=30)

  names = os.listdir(output_dir)
  assert "manifest.json" not in names and "label_map.json" not in names
  assert not [name for name in names if SHARD_FILE.fullmatch(name)], names
  ledger = read_ledger(str(output_dir / "ledger"))
  fetched_before = {clip_id for clip_id, record in ledger.records.items() if record.status == "ok"}
  assert 3 <= len(fetched_before) < NUM_CLIPS, "the kill did not land mid-way"

  # What a kill can leave besides: a shard being written, a record staged for a clip no longer asked for,
  # a half-done download attempt (names as the build and the downloader make them).
  (output_dir / "test-00000-of-00001.incomplete-0123456789abcdef").write_bytes(b"half a shard")
  (output_dir / "staging").mkdir(exist_ok=True)
  (output_dir / "staging" / "yt_gone_000001000.record").write_bytes(b"a record")
  attempt = output_dir / "media" / ".partial" / f"yt_{ytids[-1]}_000001000.1.abcd1234"
  attempt.mkdir(parents=True, exist_ok=True)
  (attempt / "media.mp4.part").write_bytes(b"half a download")

  before = requests_for(media_server, ytids)
  with pipeline_results() as results:
    manifest = build_vggsound.run(argv).to_json_dict()
  after = requests_for(media_server, ytids)

  assert manifest["counts"] == {"requested": NUM_CLIPS, "written": NUM_CLIPS, "failed": 0, "failed_by_reason": {}}
  for ytid in ytids:
    clip_id = f"yt_{ytid}_000001000"
    if clip_id in fetched_before:
      assert after[ytid] == before[ytid], f"{clip_id} was downloaded again"
    else:
      assert after[ytid] > before[ytid]
  # A clip fetched before is reused: its record from staging, or else its download from the media directory.
  found = counters(results[-1])
  reused = found.get("resume/records_reused_from_staging", 0) + found.get("fetch/reused_from_media_dir", 0)
  assert reused >= len(fetched_before)
  assert reused + found.get("fetch/downloaded", 0) == NUM_CLIPS
  # Nothing temporary or partial is left in the finished build.
  left = [os.path.relpath(os.path.join(root, name), output_dir) for root, dirs, names in os.walk(output_dir)
          for name in dirs + names if "incomplete" in name or ".partial" in root or name == ".partial"]
  assert not left, left
  assert os.listdir(output_dir / "staging") == []
  # The reused downloads hold the right media.
  stored = read_build(output_dir)
  for clip_id in sorted(fetched_before)[:2]:
    assert_frames_match(stored[clip_id], source_media.av_mp4, 1.0, 11.0)
