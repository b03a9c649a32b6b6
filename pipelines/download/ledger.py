"""The availability ledger: one durable record per clip of whether it could be fetched.

YouTube datasets erode, so every build must say exactly which clips it holds
and why the others are missing. Builds write a :class:`LedgerRecord` per clip
checked; refreshes read the ledger to see which clips to try again (transient
failures, needs-cookies) and which to leave alone (permanent ones).

Layout. A ledger is a directory of JSON Lines files, one per writer: each
:class:`LedgerWriter` creates its own uniquely named file, so any number of
Beam workers (threads, processes, machines) write without coordination.
:func:`read_ledger` globs the files and merges them: for each clip the record
with the latest ``checked_at`` wins, so later checks supersede earlier ones.

Durability. On a local filesystem every record is appended, flushed and
fsync'ed before ``append`` returns; a crash can only cut the last line short,
and readers skip such a line (counted in :attr:`Ledger.corrupt_lines`). On
object stores (``gs://``, via ``apache_beam.io.filesystems``) a file becomes
visible when its writer closes, so there a writer's records are durable per
writer lifetime (in Beam: per bundle, which Beam retries as a whole).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import logging
import os
import re
import socket
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

from shared import files
from shared.failures import qualified_reason
from shared.manifest import ClipOrigin

if TYPE_CHECKING:  # the ledger CLI must not pay for importing yt-dlp and PyAV
  from pipelines.download.results import DownloadResult

logger = logging.getLogger(__name__)

LEDGER_SCHEMA_VERSION = 1
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_FAILED)
LEDGER_FILE_SUFFIX = ".jsonl"


class LedgerError(ValueError):
  """A ledger path that holds no ledger, or a record that breaks the schema."""


def utc_now_iso() -> str:
  """The current UTC time as ISO 8601 with microseconds, e.g. 2026-11-26T20:55:01.123456+00:00."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_utc(text: str) -> datetime.datetime:
  """An ISO 8601 time; one without a zone is taken as UTC."""
  value = datetime.datetime.fromisoformat(text)
  return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class LedgerRecord:
  """Whether one clip could be fetched, as of one check.

  Attributes:
    clip_id: the clip.
    source_id: its YouTube id.
    status: "ok" or "failed".
    reason_class: for failures: permanent, transient, needs_cookies or
      invalid_media; None when ok.
    reason: for failures, the specific cause (e.g. "private", "http_404",
      "rate_limited"); None when ok.
    message: what went wrong, scrubbed of credentials ("" when ok).
    attempts: download attempts made in this check (0: refused before any
      request, or an existing file was reused).
    checked_at: when the check ended, UTC ISO 8601.
    num_bytes: size of the downloaded file, when ok.
    sha256: hex SHA-256 of the downloaded file's content, when ok.
    start_s: span start in the source, seconds.
    end_s: span end in the source, seconds.
    source_offset_s: when ok, the source second at the downloaded file's time
      zero (see DownloadSuccess).
    origin: when ok, where the clip's media came from: a shared.manifest.ClipOrigin
      value, "downloaded" or "local" (a refresh copies the records of the clips
      it carries over as they are; its manifest says carried_over); None in
      records written before origins were recorded (downloads, all of them).
    media_file: for a clip made from a local file, that file (nothing is
      copied; num_bytes is its size, sha256 is not computed: it would read
      whole videos).
    passed_over: sources tried before the one this record is about, and why
      each was passed over: [{"source", "reason" (class/reason), "message"}],
      e.g. a local file that does not cover the span before the download.
  """

  clip_id: str
  source_id: str
  status: str
  reason_class: Optional[str]
  reason: Optional[str]
  message: str
  attempts: int
  checked_at: str
  num_bytes: Optional[int] = None
  sha256: Optional[str] = None
  start_s: Optional[float] = None
  end_s: Optional[float] = None
  source_offset_s: Optional[float] = None
  origin: Optional[str] = None
  media_file: Optional[str] = None
  passed_over: tuple[Mapping[str, str], ...] = ()

  def __post_init__(self):
    if not self.clip_id:
      raise LedgerError("a ledger record needs a clip_id")
    if self.status not in STATUSES:
      raise LedgerError(f"status must be one of {STATUSES}, got {self.status!r} (clip {self.clip_id})")
    if self.status == STATUS_FAILED and not self.reason_class:
      raise LedgerError(f"a failed record needs a reason_class (clip {self.clip_id})")
    parse_utc(self.checked_at)  # raises ValueError on a malformed time

  @property
  def checked_at_time(self) -> datetime.datetime:
    return parse_utc(self.checked_at)

  def to_json_dict(self) -> dict[str, Any]:
    document = {"v": LEDGER_SCHEMA_VERSION, **dataclasses.asdict(self)}
    # Written only where they say something: most records are a download's, as before they existed.
    for name in _WRITTEN_WHEN_SET:
      if not document[name]:
        del document[name]
    return document

  def to_json_line(self) -> str:
    """One line of JSON, newline included."""
    return json.dumps(self.to_json_dict(), ensure_ascii=False, sort_keys=False) + "\n"

  @classmethod
  def from_json_dict(cls, data: Mapping[str, Any]) -> "LedgerRecord":
    version = data.get("v", LEDGER_SCHEMA_VERSION)
    if version != LEDGER_SCHEMA_VERSION:
      raise LedgerError(f"ledger schema version {version}, this code reads {LEDGER_SCHEMA_VERSION}")
    names = {field.name for field in dataclasses.fields(cls)}
    # Unknown keys are ignored: a newer writer may add fields.
    fields = {key: value for key, value in data.items() if key in names}
    if "passed_over" in fields:
      fields["passed_over"] = tuple(dict(entry) for entry in fields["passed_over"] or ())
    return cls(**fields)

  def with_passed_over(self, passed_over: Iterable[Mapping[str, str]]) -> "LedgerRecord":
    """This record, after the sources that passed the clip over (see passed_over)."""
    passed_over = tuple(passed_over)
    return dataclasses.replace(self, passed_over=passed_over) if passed_over else self

  @classmethod
  def from_result(cls, result: "DownloadResult", checked_at: Optional[str] = None) -> "LedgerRecord":
    """The record of a downloader result, checked now unless `checked_at` is given."""
    checked_at = checked_at or utc_now_iso()
    common = dict(clip_id=result.clip_id, source_id=result.source_id, attempts=result.attempts,
                  checked_at=checked_at, start_s=_plain_float(result.start_s), end_s=_plain_float(result.end_s))
    if result.ok:
      return cls(status=STATUS_OK, reason_class=None, reason=None, message="", num_bytes=result.num_bytes,
                 sha256=result.sha256, source_offset_s=result.source_offset_s, origin=ClipOrigin.DOWNLOADED.value,
                 **common)
    return cls(status=STATUS_FAILED, reason_class=result.failure_class.value, reason=result.reason.value,
               message=result.message, **common)


# Fields a record's JSON line holds only when they are set.
_WRITTEN_WHEN_SET = ("origin", "media_file", "passed_over")


def passed_over_entry(source: str, reason_class: str, reason: str, message: str) -> dict[str, str]:
  """One entry of LedgerRecord.passed_over: a source that did not give the clip, and why."""
  return {"source": source, "reason": qualified_reason(reason_class, reason), "message": message}


def _plain_float(value: Any) -> Optional[float]:
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


# ---------------------------------------------------------------------------
# Files (local or gs://, through shared.files).
# ---------------------------------------------------------------------------
def _writer_file_name() -> str:
  """A name no other writer will pick: time, host, process, random."""
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
  host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
  return f"ledger-{stamp}-{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}{LEDGER_FILE_SUFFIX}"


class LedgerWriter:
  """Appends records to a new file of its own in a ledger directory. Not thread-safe: one per thread.

  Args:
    ledger_dir: the ledger directory (local or gs://...); created if missing.
    file_name: the file's name; default unique per writer. Two writers must
      never share one.
  """

  def __init__(self, ledger_dir: str, file_name: Optional[str] = None):
    name = file_name or _writer_file_name()
    if "/" in name or not name.endswith(LEDGER_FILE_SUFFIX):
      raise LedgerError(f"a ledger file name is one path segment ending in {LEDGER_FILE_SUFFIX}, got {name!r}")
    self.path = files.join(ledger_dir, name)
    self._remote = files.is_remote(ledger_dir)
    self.records_written = 0
    files.makedirs(ledger_dir)
    self._file = files.open_new(self.path)

  def append(self, record: LedgerRecord) -> None:
    """Writes one record; on local disk it is on disk when this returns."""
    if self._file is None:
      raise LedgerError(f"ledger writer for {self.path} is closed")
    self._file.write(record.to_json_line().encode("utf-8"))
    if not self._remote:
      self._file.flush()
      os.fsync(self._file.fileno())
    self.records_written += 1

  def append_result(self, result: "DownloadResult", checked_at: Optional[str] = None) -> LedgerRecord:
    """Records a downloader result; returns the record written."""
    record = LedgerRecord.from_result(result, checked_at)
    self.append(record)
    return record

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> "LedgerWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


# ---------------------------------------------------------------------------
# Reading and merging.
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Ledger:
  """A ledger as read: the latest record per clip, and what reading found.

  Attributes:
    records: clip_id -> the latest record for that clip.
    files: the ledger files read.
    lines: record lines read (all files).
    corrupt_lines: lines skipped because they do not parse (a crash can cut a
      writer's last line short).
    superseded: records replaced by a later check of the same clip.
  """

  records: dict[str, LedgerRecord]
  files: list[str]
  lines: int = 0
  corrupt_lines: int = 0
  superseded: int = 0

  def __len__(self) -> int:
    return len(self.records)

  def __contains__(self, clip_id: str) -> bool:
    return clip_id in self.records

  def __getitem__(self, clip_id: str) -> LedgerRecord:
    return self.records[clip_id]

  def select(self, status: Optional[str] = None, reason: Optional[str] = None) -> list[LedgerRecord]:
    """Records with this status and reason (a reason class, or a specific reason), sorted by clip id."""
    chosen = []
    for clip_id in sorted(self.records):
      record = self.records[clip_id]
      if status is not None and record.status != status:
        continue
      if reason is not None and reason not in (record.reason_class, record.reason):
        continue
      chosen.append(record)
    return chosen

  def counts(self) -> collections.Counter:
    """(status, reason_class, reason) -> clips."""
    return collections.Counter((r.status, r.reason_class, r.reason) for r in self.records.values())


def ledger_files(path: str) -> list[str]:
  """The ledger files at `path`: a directory's ``*.jsonl``, one file, or a glob pattern."""
  if any(ch in path for ch in "*?["):
    return files.match(path)
  if files.is_file(path):
    return [path]
  return files.list_files(path, LEDGER_FILE_SUFFIX)


def read_ledger(path: str, missing_ok: bool = False) -> Ledger:
  """Reads and merges a ledger; later checks of a clip supersede earlier ones.

  Args:
    path: a ledger directory, one ledger file, or a glob pattern (local or gs://).
    missing_ok: an absent or empty ledger reads as empty instead of raising.

  Raises:
    LedgerError: no ledger files at `path` (unless missing_ok).
  """
  found = ledger_files(path)
  if not found and not missing_ok:
    raise LedgerError(f"no ledger files (*{LEDGER_FILE_SUFFIX}) at {path}")
  ledger = Ledger(records={}, files=found)
  order: dict[str, tuple] = {}
  for file_index, file_path in enumerate(found):
    lines = files.read_bytes(file_path).split(b"\n")
    for line_index, raw in enumerate(lines):
      if not raw.strip():
        continue
      ledger.lines += 1
      try:
        record = LedgerRecord.from_json_dict(json.loads(raw.decode("utf-8")))
      except (ValueError, TypeError, LedgerError) as error:
        ledger.corrupt_lines += 1
        is_last = line_index == len(lines) - 1  # no newline after it: cut short by a crash
        logger.log(logging.DEBUG if is_last else logging.WARNING, "skipping unreadable ledger line %d of %s: %s",
                   line_index + 1, file_path, error)
        continue
      rank = (record.checked_at_time, file_index, line_index)
      previous = order.get(record.clip_id)
      if previous is not None:
        ledger.superseded += 1
        if previous > rank:
          continue
      order[record.clip_id] = rank
      ledger.records[record.clip_id] = record
  return ledger


def write_records(ledger_dir: str, records: Iterable[LedgerRecord]) -> str:
  """Writes records to a new ledger file; returns its path."""
  with LedgerWriter(ledger_dir) as writer:
    for record in records:
      writer.append(record)
    return writer.path


# ---------------------------------------------------------------------------
# Summaries.
# ---------------------------------------------------------------------------
def format_summary(ledger: Ledger, source: str = "") -> str:
  """A readable table of clips by status, reason class and reason."""
  total = len(ledger)
  counts = ledger.counts()
  by_status = collections.Counter(r.status for r in ledger.records.values())
  by_class = collections.Counter(r.reason_class for r in ledger.records.values() if r.status == STATUS_FAILED)

  def share(count: int) -> str:
    return f"{100.0 * count / total:5.1f}%" if total else "    -"

  lines = []
  notes = [f"{len(ledger.files)} file{'s' if len(ledger.files) != 1 else ''}", f"{ledger.lines} records"]
  if ledger.superseded:
    notes.append(f"{ledger.superseded} superseded by later checks")
  if ledger.corrupt_lines:
    notes.append(f"{ledger.corrupt_lines} unreadable lines skipped")
  lines.append(f"ledger {source}".rstrip() + f" ({', '.join(notes)})")
  lines.append(f"clips: {total}")
  lines.append("")
  rows = [("status", "reason class", "reason", "clips", "share")]
  for status in STATUSES:
    if by_status[status]:
      rows.append((status, "", "", str(by_status[status]), share(by_status[status])))
  for reason_class, class_count in sorted(by_class.items(), key=lambda item: (-item[1], item[0])):
    rows.append((STATUS_FAILED, reason_class, "", str(class_count), share(class_count)))
    reasons = [(key[2], count) for key, count in counts.items() if key[0] == STATUS_FAILED and key[1] == reason_class]
    for reason, count in sorted(reasons, key=lambda item: (-item[1], item[0] or "")):
      rows.append((STATUS_FAILED, reason_class, reason or "", str(count), share(count)))
  lines.extend(_table(rows))
  return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  numeric = {3, 4}
  formatted = []
  for index, row in enumerate(rows):
    cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
    formatted.append("  ".join(cells).rstrip())
    if index == 0:
      formatted.append("  ".join("-" * width for width in widths))
  return formatted
