"""The availability ledger: durable per-writer files, merged by last check; its command line."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading

import pytest

from pipelines import ledger as ledger_cli
from shared.failures import FailureClass, Reason
from pipelines.download.ledger import (LedgerError, LedgerRecord, LedgerWriter, format_summary, read_ledger,
                                       write_records)
from pipelines.download.results import DownloadFailure

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def record(clip_id: str, status: str = "ok", checked_at: str = "2026-01-01T00:00:00+00:00", reason_class=None,
           reason=None, message: str = "", **extra) -> LedgerRecord:
  if status == "failed" and reason_class is None:
    reason_class, reason = "permanent", "private"
  return LedgerRecord(clip_id=clip_id, source_id=clip_id[-11:], status=status, reason_class=reason_class,
                      reason=reason, message=message, attempts=1, checked_at=checked_at, **extra)


def test_round_trip(tmp_path):
  written = [record("a", num_bytes=10, sha256="0" * 64, start_s=1.0, end_s=2.0, source_offset_s=0.5),
             record("b", "failed", message="Private video")]
  path = write_records(str(tmp_path), written)
  assert os.path.dirname(path) == str(tmp_path) and path.endswith(".jsonl")
  ledger = read_ledger(str(tmp_path))
  assert [ledger["a"], ledger["b"]] == written
  assert (ledger.lines, ledger.corrupt_lines, ledger.superseded) == (2, 0, 0)


def test_later_check_supersedes_regardless_of_file_order(tmp_path):
  # The newer check sits in the file that sorts first.
  write_records(str(tmp_path), [record("clip", "ok", checked_at="2026-03-01T00:00:00+00:00")])
  write_records(str(tmp_path), [record("clip", "failed", checked_at="2026-02-01T00:00:00+00:00"),
                                record("other", "ok")])
  ledger = read_ledger(str(tmp_path))
  assert ledger["clip"].status == "ok"
  assert ledger.superseded == 1 and len(ledger) == 2


def test_later_line_wins_a_tie(tmp_path):
  write_records(str(tmp_path), [record("clip", "failed"), record("clip", "ok")])
  assert read_ledger(str(tmp_path))["clip"].status == "ok"


def test_truncated_last_line_after_a_crash_is_skipped(tmp_path):
  path = write_records(str(tmp_path), [record("a"), record("b")])
  with open(path, "ab") as damaged:
    damaged.write(record("c").to_json_line().encode()[:37])  # the crash cut the append short
  ledger = read_ledger(str(tmp_path))
  assert sorted(ledger.records) == ["a", "b"]
  assert ledger.corrupt_lines == 1


def test_writer_records_are_on_disk_before_close(tmp_path):
  writer = LedgerWriter(str(tmp_path))
  writer.append(record("a"))
  assert "a" in read_ledger(str(tmp_path))  # another reader sees it while the writer is open
  writer.close()
  with pytest.raises(LedgerError):
    writer.append(record("b"))


def test_writers_never_share_a_file(tmp_path):
  with LedgerWriter(str(tmp_path), file_name="fixed.jsonl"):
    with pytest.raises(FileExistsError):
      LedgerWriter(str(tmp_path), file_name="fixed.jsonl")


def _write_many(ledger_dir: str, worker: int, count: int) -> None:
  with LedgerWriter(ledger_dir) as writer:
    for index in range(count):
      writer.append(record(f"w{worker}_{index:03d}"))


def test_many_threads_and_processes_write_one_ledger(tmp_path):
  threads = [threading.Thread(target=_write_many, args=(str(tmp_path), worker, 40)) for worker in range(4)]
  context = multiprocessing.get_context("fork")
  processes = [context.Process(target=_write_many, args=(str(tmp_path), worker, 40)) for worker in range(4, 7)]
  for runner in threads + processes:
    runner.start()
  for runner in threads + processes:
    runner.join()
  assert all(process.exitcode == 0 for process in processes)
  ledger = read_ledger(str(tmp_path))
  assert len(ledger.files) == 7
  assert len(ledger) == 7 * 40 and ledger.corrupt_lines == 0


def test_records_from_results_and_validation():
  failure = DownloadFailure(clip_id="c", source_id="abcdefghijk", start_s=1, end_s=2,
                            failure_class=FailureClass.TRANSIENT, reason=Reason.RATE_LIMITED, message="429",
                            attempts=3, retry_after_s=7.0)
  made = LedgerRecord.from_result(failure, checked_at="2026-05-05T05:05:05+00:00")
  assert (made.status, made.reason_class, made.reason, made.attempts) == ("failed", "transient", "rate_limited", 3)
  assert json.loads(made.to_json_line())["v"] == 1
  assert LedgerRecord.from_result(failure).checked_at.endswith("+00:00")
  with pytest.raises(LedgerError):
    record("x", status="maybe")
  with pytest.raises(LedgerError):
    LedgerRecord(clip_id="x", source_id="y", status="failed", reason_class=None, reason=None, message="",
                 attempts=1, checked_at="2026-01-01T00:00:00+00:00")
  with pytest.raises(ValueError):
    record("x", checked_at="yesterday")


def test_missing_ledger(tmp_path):
  with pytest.raises(LedgerError, match="no ledger files"):
    read_ledger(str(tmp_path / "nothing"))
  assert len(read_ledger(str(tmp_path / "nothing"), missing_ok=True)) == 0


def _sample_ledger(directory) -> None:
  write_records(str(directory), [
      record("ok1"), record("ok2"),
      record("gone1", "failed", reason_class="permanent", reason="private", message="Private video"),
      record("gone2", "failed", reason_class="permanent", reason="http_404"),
      record("later", "failed", reason_class="transient", reason="rate_limited", message="HTTP Error 429"),
  ])


def test_summary_table(tmp_path):
  _sample_ledger(tmp_path)
  text = format_summary(read_ledger(str(tmp_path)))
  lines = text.splitlines()
  assert "clips: 5" in lines
  rows = [line.split() for line in lines if line.startswith(("ok", "failed"))]
  assert ["ok", "2", "40.0%"] in rows
  assert ["failed", "3", "60.0%"] in rows
  assert ["failed", "permanent", "2", "40.0%"] in rows
  assert ["failed", "permanent", "private", "1", "20.0%"] in rows
  assert ["failed", "transient", "rate_limited", "1", "20.0%"] in rows


def test_cli_summary_and_list(tmp_path, capsys):
  _sample_ledger(tmp_path)
  assert ledger_cli.main(["summary", str(tmp_path)]) == 0
  assert "permanent" in capsys.readouterr().out

  assert ledger_cli.main(["list", str(tmp_path), "--status", "failed", "--reason", "permanent", "--format", "ids"]) == 0
  assert capsys.readouterr().out.split() == ["gone1", "gone2"]

  assert ledger_cli.main(["list", str(tmp_path), "--reason", "rate_limited"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("later\t") and "HTTP Error 429" in out

  assert ledger_cli.main(["list", str(tmp_path), "--status", "ok", "--format", "jsonl"]) == 0
  assert [json.loads(line)["clip_id"] for line in capsys.readouterr().out.splitlines()] == ["ok1", "ok2"]

  assert ledger_cli.main(["summary", str(tmp_path / "absent")]) == 2


def test_cli_help_runs_as_a_module():
  done = subprocess.run([sys.executable, "-m", "pipelines.ledger", "--help"], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=60)
  assert done.returncode == 0
  assert "summary" in done.stdout and "list" in done.stdout
