"""``python -m pipelines.download`` end to end against the local mirror."""

from __future__ import annotations

import os
import subprocess
import sys

from pipelines.download import cli
from pipelines.download.ledger import read_ledger
from testsupport.media_server import Fault

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_downloads_a_segment_list_into_files_and_the_ledger(tmp_path, server, serve_as, capsys):
  audioset_style, vggsound_style, private = serve_as("long.mp4"), serve_as("long.mp4"), serve_as("long.mp4")
  server.inject(f"{private}.mp4", Fault.http_status(403))
  clips = tmp_path / "segments.csv"
  clips.write_text("# Segments csv created Sun Mar  5 10:54:31 2017\n"
                   "# num_ytids=3, num_segs=3, num_unique_labels=2, num_positive_labels=2\n"
                   "# YTID, start_seconds, end_seconds, positive_labels\n"
                   f'{audioset_style}, 2.000, 4.000, "/m/09x0r,/m/04rlf"\n'
                   f"{vggsound_style},12,dog barking,test\n"
                   f"{private}, 1.000, 3.000, \"/m/09x0r\"\n"
                   "not-an-id, 1.000, 3.000, \"/m/09x0r\"\n")
  out_dir, ledger_dir = tmp_path / "clips", tmp_path / "ledger"

  code = cli.main([str(clips), "--output_dir", str(out_dir), "--ledger_dir", str(ledger_dir),
                   "--url_template", server.url_template("{ytid}.mp4"), "--concurrency", "2",
                   "--retry_base_delay", "0.05", "--socket_timeout", "5", "--duration", "2"])

  assert code == 0
  printed = capsys.readouterr().out
  assert "4 clips" in printed and "2 ok" in printed
  assert sorted(os.listdir(out_dir)) == [".partial", f"yt_{audioset_style}_000002000.mp4",
                                         f"yt_{vggsound_style}_000012000.mp4"]
  ledger = read_ledger(str(ledger_dir))
  assert ledger[f"yt_{vggsound_style}_000012000"].end_s == 14.0  # --duration for VGGSound lines
  assert (ledger[f"yt_{private}_000001000"].reason_class, ledger[f"yt_{private}_000001000"].reason) == (
      "permanent", "http_403")
  refused = [r for r in ledger.records.values() if r.source_id == "not-an-id"]
  assert [(r.reason, r.attempts) for r in refused] == [("invalid_id", 0)]


def test_help_runs_as_a_module():
  done = subprocess.run([sys.executable, "-m", "pipelines.download", "--help"], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=60)
  assert done.returncode == 0
  assert "--url_template" in done.stdout and "--cookies" in done.stdout
