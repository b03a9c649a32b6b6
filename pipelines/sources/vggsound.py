"""VGGSound: vggsound.csv, the repo's file lists, and the 309 classes.

Two forms name the same clips:

* ``vggsound.csv`` (the release): no header, ``YTID,start_seconds,label,split``
  with split "train" or "test", e.g. ``---g-f_I2yQ,1,people marching,test``;
  labels holding commas are quoted (``"bird chirping, tweeting"``).
* the repo's ``data/test.csv`` (and train.csv): ``YTID_000300.mp4,label``, the
  start being the integer of the 6 digits.

Every clip is 10 s from its start (CLIP_SECONDS). Class indices are the
positions in the sorted list of the class names (Python's ``sorted``: by code
point), taken from ``stat.csv`` or from the CSV itself; the same map must go
into every build.

Bad input (see rows.py for what every file shares): a line of either form
that is not a row is a bad row, recorded with skip_bad_rows and the rest of
the file read. Fields may carry spaces around them (stripped, as always), but
a label must be words separated by single spaces, so that no label becomes a
class of its own through stray whitespace: "dog  barking" is a bad row, never
a new class, and a label map built from the CSV itself leaves such rows out
(parsing then reports them). stat.csv is never skipped over: an unreadable
line or a label with any stray whitespace stops the load, naming its line.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

from pipelines.sources import clip_id as clip_ids
from pipelines.sources import rows as rows_lib
from pipelines.sources.rows import BadFileError, BadRowError, ClipRequest, ParseResult
from shared import contract

LABEL_MAP_NAME = "vggsound"
CLIP_SECONDS = 10
SPLITS = ("train", "test")
CSV_COLUMNS = ("YTID", "start_seconds", "label", "split")
STAT_COLUMNS = ("label", "count", "group")
_WHOLE_SECONDS_PATTERN = re.compile(r"[0-9]+")
_FILE_NAME_PATTERN = re.compile(r"([A-Za-z0-9_-]{11})_([0-9]{6})\.mp4")


def vggsound_label_map_from_labels(labels: Iterable[str]) -> contract.LabelMap:
  """The label map of these class names: their sorted set."""
  return contract.LabelMap.from_names(LABEL_MAP_NAME, sorted(set(labels)))


def load_vggsound_label_map(stat_path: str | os.PathLike) -> contract.LabelMap:
  """The label map from stat.csv (``label,count,group``, no header).

  Raises:
    BadRowError: an unreadable line (rows.read_csv_file), a row without 3
      columns, an empty label, a label with stray whitespace, a non-integer
      count or a label listed twice.
  """
  file = os.fspath(stat_path)
  labels: list[str] = []
  first_line_of: dict[str, int] = {}
  for line, (label, count, _) in rows_lib.read_csv_file(stat_path, STAT_COLUMNS, header=False):
    if not label.strip():
      raise BadRowError(file, line, "empty label")
    problem = rows_lib.label_whitespace_problem("label", label)
    if problem is not None:
      raise BadRowError(file, line, problem)
    if _WHOLE_SECONDS_PATTERN.fullmatch(count) is None:
      raise BadRowError(file, line, f"bad count {rows_lib.excerpt(count)}")
    if label in first_line_of:
      raise BadRowError(
          file, line, f"label {rows_lib.excerpt(label)} listed twice, first at line {first_line_of[label]}"
      )
    first_line_of[label] = line
    labels.append(label)
  return vggsound_label_map_from_labels(labels)


def vggsound_label_map_from_csv(path: str | os.PathLike) -> contract.LabelMap:
  """The label map of the labels a vggsound.csv or file list uses.

  Lines that are not rows (unreadable, of the wrong shape, a label with
  stray whitespace) are passed over here; parsing reports them.
  """
  file = os.fspath(path)
  labels = set()
  for line_number, line in enumerate(rows_lib.read_lines(path), start=1):
    try:
      fields = rows_lib.split_csv_line(rows_lib.row_text(line, file, line_number), file, line_number)
    except BadRowError:
      continue
    label_column = {len(CSV_COLUMNS): 2, 2: 1}.get(len(fields))
    if label_column is None:
      continue
    label = fields[label_column].strip()
    if label and rows_lib.label_whitespace_problem("label", label) is None:
      labels.add(label)
  if not labels:
    raise BadFileError(file, "no labels found")
  return vggsound_label_map_from_labels(labels)


def _clip_request(
    ytid: str, start_s: int, label_index: int, split: str | None, label_map: contract.LabelMap
) -> ClipRequest:
  return ClipRequest(
      dataset=rows_lib.VGGSOUND,
      clip_id=clip_ids.youtube_clip_id(ytid, start_s),
      source_id=ytid,
      start_s=float(start_s),
      end_s=float(start_s + CLIP_SECONDS),
      label_indices=(label_index,),
      label_names=(label_map.names[label_index],),
      split=split,
  )


class _LineParser:
  """What both forms share: the label lookup and the CSV split of a line."""

  def __init__(self, label_map: contract.LabelMap):
    self.label_map = label_map
    self._index_of_label = {name: i for i, name in enumerate(label_map.names)}

  def _fields(self, line: str, file: str, line_number: int, columns: tuple[str, ...]) -> list[str] | None:
    text = rows_lib.row_text(line, file, line_number)
    if not text.strip():
      return None
    fields = rows_lib.split_csv_line(text, file, line_number)
    if len(fields) != len(columns):
      raise BadRowError(
          file, line_number, f"expected {len(columns)} columns ({', '.join(columns)}), got {len(fields)}"
      )
    return [field.strip() for field in fields]

  def _label_index(self, label: str, file: str, line_number: int) -> int:
    index = self._index_of_label.get(label)
    if index is None:
      problem = rows_lib.label_whitespace_problem("label", label)
      if problem is not None:
        raise BadRowError(file, line_number, problem)
      raise BadRowError(
          file, line_number, f"unknown label {rows_lib.excerpt(label)} (not in label map {self.label_map.name!r})"
      )
    return index


class VggSoundLineParser(_LineParser):
  """Parses vggsound.csv lines (``YTID,start_seconds,label,split``) one at a time."""

  def __call__(self, line: str, file: str, line_number: int) -> ClipRequest | None:
    """The row of one line, or None for a blank line.

    Raises:
      BadRowError: wrong column count, bad YouTube id, start not a whole
        number of seconds, unknown label or split.
    """
    fields = self._fields(line, file, line_number, CSV_COLUMNS)
    if fields is None:
      return None
    ytid, start_text, label, split = fields
    if not clip_ids.is_youtube_id(ytid):
      raise BadRowError(file, line_number, f"bad YouTube id {rows_lib.excerpt(ytid)}")
    if _WHOLE_SECONDS_PATTERN.fullmatch(start_text) is None:
      raise BadRowError(
          file, line_number, f"start_seconds {rows_lib.excerpt(start_text)} is not a whole number of seconds"
      )
    if split not in SPLITS:
      raise BadRowError(file, line_number, f"split {rows_lib.excerpt(split)} is not one of {SPLITS}")
    label_index = self._label_index(label, file, line_number)
    return _clip_request(ytid, int(start_text), label_index, split, self.label_map)


class VggSoundFileListLineParser(_LineParser):
  """Parses file-list lines (``YTID_000300.mp4,label``) one at a time."""

  def __init__(self, label_map: contract.LabelMap, split: str | None = None):
    """Args:
      label_map: the VGGSound label map.
      split: recorded on every row (a file list holds one split).
    """
    super().__init__(label_map)
    self.split = split

  def __call__(self, line: str, file: str, line_number: int) -> ClipRequest | None:
    """The row of one line, or None for a blank line.

    Raises:
      BadRowError: wrong column count, a file name not YTID_NNNNNN.mp4 (so a
        bad YouTube id or start too), unknown label.
    """
    fields = self._fields(line, file, line_number, ("file_name", "label"))
    if fields is None:
      return None
    file_name, label = fields
    match = _FILE_NAME_PATTERN.fullmatch(file_name)
    if match is None:
      raise BadRowError(
          file, line_number, f"file name {rows_lib.excerpt(file_name)} is not YTID_NNNNNN.mp4 with an 11-character YTID"
      )
    label_index = self._label_index(label, file, line_number)
    return _clip_request(match.group(1), int(match.group(2)), label_index, self.split, self.label_map)


def vggsound_file_name(ytid: str, start_s: int) -> str:
  """The name VGGSound's own lists give a clip: YTID_000300.mp4."""
  if not clip_ids.is_youtube_id(ytid):
    raise ValueError(f"not a YouTube id: {ytid!r}")
  if not 0 <= start_s <= 999_999 or start_s != int(start_s):
    raise ValueError(f"start {start_s!r} is not a whole number of seconds in [0, 999999]")
  return f"{ytid}_{int(start_s):06d}.mp4"


def parse_vggsound_line(line: str, *, file: str, line_number: int, label_map: contract.LabelMap) -> ClipRequest | None:
  """One vggsound.csv line; see VggSoundLineParser (prefer it for many lines)."""
  return VggSoundLineParser(label_map)(line, file, line_number)


def parse_vggsound_file_list_line(
    line: str, *, file: str, line_number: int, label_map: contract.LabelMap, split: str | None = None
) -> ClipRequest | None:
  """One file-list line; see VggSoundFileListLineParser."""
  return VggSoundFileListLineParser(label_map, split)(line, file, line_number)


def _parse(lines: Iterable[str], file: str, parse, label_map: contract.LabelMap, skip_bad_rows: bool) -> ParseResult:
  rows, rejected, _ = rows_lib.collect_rows(
      lines,
      file=file,
      parse_line=lambda line, line_number: parse(line, file, line_number),
      clip_id_of=lambda row: row.clip_id,
      skip_bad_rows=skip_bad_rows,
  )
  return ParseResult(rows=tuple(rows), rejected=tuple(rejected), label_map=label_map)


def parse_vggsound_csv_lines(
    lines: Iterable[str], *, file: str, label_map: contract.LabelMap, skip_bad_rows: bool = False
) -> ParseResult:
  """All clips of vggsound.csv given as lines.

  Raises:
    BadRowError: the first bad or duplicate row, unless skip_bad_rows.
  """
  return _parse(lines, file, VggSoundLineParser(label_map), label_map, skip_bad_rows)


def parse_vggsound_csv(
    path: str | os.PathLike, label_map: contract.LabelMap, *, skip_bad_rows: bool = False
) -> ParseResult:
  """All clips of a vggsound.csv file; see parse_vggsound_csv_lines."""
  return parse_vggsound_csv_lines(
      rows_lib.read_lines(path), file=os.fspath(path), label_map=label_map, skip_bad_rows=skip_bad_rows
  )


def parse_vggsound_file_list_lines(
    lines: Iterable[str],
    *,
    file: str,
    label_map: contract.LabelMap,
    split: str | None = None,
    skip_bad_rows: bool = False,
) -> ParseResult:
  """All clips of a file list (``YTID_000300.mp4,label``) given as lines.

  Raises:
    BadRowError: the first bad or duplicate row, unless skip_bad_rows.
  """
  return _parse(lines, file, VggSoundFileListLineParser(label_map, split), label_map, skip_bad_rows)


def parse_vggsound_file_list(
    path: str | os.PathLike, label_map: contract.LabelMap, *, split: str | None = None, skip_bad_rows: bool = False
) -> ParseResult:
  """All clips of a file list such as the repo's test.csv."""
  return parse_vggsound_file_list_lines(
      rows_lib.read_lines(path), file=os.fspath(path), label_map=label_map, split=split, skip_bad_rows=skip_bad_rows
  )
