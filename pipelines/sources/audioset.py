"""AudioSet: the segment CSVs and the class list.

The segment files (balanced_train, eval, unbalanced_train) look like::

    # Segments csv created Sun Mar  5 10:54:25 2017
    # num_ytids=20371, num_segs=20371, num_unique_labels=527, num_positive_labels=51804
    # YTID, start_seconds, end_seconds, positive_labels
    --4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr,/m/0jbk"

Fields are separated by ", ", the labels are always quoted MIDs, YouTube ids
may begin with "-", and segments are not always 10 s (a clip cut short by the
video's end) nor always start on a whole second. The second header line
declares the segment count; a file whose data lines disagree is reported as
truncated (:class:`BadFileError`).

class_labels_indices.csv (``index,mid,display_name``) gives the 527 classes;
its label map has the display names as names and the MIDs as ids.

Bad input (see rows.py for what every file shares): a segment line that is
not a row is a bad row, recorded with skip_bad_rows and the rest of the file
read; "#" lines are comments, never rows, so their text is not checked. A
class file is never skipped over: a MID holding whitespace, a display name
with stray whitespace or any unreadable line stops the load, naming its line.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

from pipelines.sources import clip_id as clip_ids
from pipelines.sources import rows as rows_lib
from pipelines.sources.rows import BadFileError, BadRowError, ClipRequest, ParseResult
from shared import contract

LABEL_MAP_NAME = "audioset"
SEGMENT_COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")
CLASS_FILE_COLUMNS = ("index", "mid", "display_name")
_CANONICAL_LINE_PATTERN = re.compile(
    r'([A-Za-z0-9_-]{11}), ([0-9]+)\.([0-9]{3}), ([0-9]+)\.([0-9]{3}), "([^",]+(?:,[^",]+)*)"'
)
_LABELS_CACHE_SIZE = 1_000_000  # distinct label sets kept; bounds memory on odd input
_DECLARED_COUNT_PATTERN = re.compile(r"\b(num_ytids|num_segs|num_unique_labels|num_positive_labels)=([0-9]+)")


def load_audioset_label_map(path: str | os.PathLike) -> contract.LabelMap:
  """The AudioSet classes from class_labels_indices.csv.

  Raises:
    BadRowError: an unreadable line (rows.read_csv_file), a row without 3
      columns, an index out of sequence, an empty MID or name, a MID holding
      whitespace, a name with stray whitespace.
    BadFileError: a missing or different header.
  """
  file = os.fspath(path)
  mids: list[str] = []
  names: list[str] = []
  for line, (index_text, mid, name) in rows_lib.read_csv_file(path, CLASS_FILE_COLUMNS, header=True):
    if index_text != str(len(mids)):
      raise BadRowError(file, line, f"index {rows_lib.excerpt(index_text)} out of sequence, expected {len(mids)}")
    if not mid or not name:
      raise BadRowError(file, line, "empty mid or display_name")
    problem = rows_lib.id_whitespace_problem("mid", mid) or rows_lib.label_whitespace_problem("display_name", name)
    if problem is not None:
      raise BadRowError(file, line, problem)
    mids.append(mid)
    names.append(name)
  try:
    return contract.LabelMap.from_names(LABEL_MAP_NAME, names, ids=mids)
  except ValueError as error:
    raise BadFileError(file, str(error)) from None


class AudioSetLineParser:
  """Parses AudioSet segment lines one at a time (what a Beam DoFn holds).

  Build one per label map and reuse it: it precomputes the MID lookup.
  """

  def __init__(self, label_map: contract.LabelMap, split: str | None = None):
    """Args:
      label_map: the AudioSet label map (ids are MIDs).
      split: the split to record on every row, e.g. "eval".
    """
    if label_map.ids is None:
      raise ValueError(f"label map {label_map.name!r} has no ids (MIDs)")
    self.label_map = label_map
    self.split = split
    self._index_of_mid = {mid: i for i, mid in enumerate(label_map.ids)}
    # labels text -> (indices, names). Label sets repeat across rows, so this
    # saves both the lookups and a tuple pair per row (2M rows share them).
    self._labels_cache: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}

  def __call__(self, line: str, file: str, line_number: int) -> ClipRequest | None:
    """The row of one line, or None for a "#" header line or a blank line.

    Raises:
      BadRowError: the line is unreadable (rows.row_text) or malformed
        (column count, YouTube id, number, end <= start, empty, repeated or
        unknown label).
    """
    try:
      text = rows_lib.row_text(line, file, line_number)
    except BadRowError:
      if rows_lib.strip_line_ending(line).lstrip().startswith("#"):
        return None  # a comment holds no row, whatever its bytes
      raise
    # Nearly every line has the release's exact shape (3 decimals, ", "): one
    # regex then does all the splitting and checking a csv reader, number
    # parsing and id checks would; anything else takes the general path.
    match = _CANONICAL_LINE_PATTERN.fullmatch(text)
    if match is not None:
      ytid, start_whole, start_ms, end_whole, end_ms, labels_text = match.groups()
      start = int(start_whole) * 1000 + int(start_ms)
      end = int(end_whole) * 1000 + int(end_ms)
      return self._row(ytid, start, end, labels_text, file, line_number)
    if not text.strip() or text.lstrip().startswith("#"):
      return None
    fields = rows_lib.split_csv_line(text, file, line_number, skipinitialspace=True)
    if len(fields) != len(SEGMENT_COLUMNS):
      raise BadRowError(file, line_number, f"expected 4 columns ({', '.join(SEGMENT_COLUMNS)}), got {len(fields)}")
    ytid, start_text, end_text, labels_text = (field.strip() for field in fields)
    if not clip_ids.is_youtube_id(ytid):
      raise BadRowError(file, line_number, f"bad YouTube id {rows_lib.excerpt(ytid)}")
    try:
      start = clip_ids.seconds_text_to_ms(start_text)
      end = clip_ids.seconds_text_to_ms(end_text)
    except ValueError as error:
      raise BadRowError(file, line_number, str(error)) from None
    return self._row(ytid, start, end, labels_text, file, line_number)

  def _row(
      self, ytid: str, start_ms: int, end_ms: int, labels_text: str, file: str, line_number: int
  ) -> ClipRequest:
    try:
      clip_id = clip_ids.youtube_clip_id_from_ms(ytid, start_ms)
    except ValueError as error:
      raise BadRowError(file, line_number, str(error)) from None
    if end_ms <= start_ms:
      raise BadRowError(file, line_number, f"end {end_ms / 1000:.3f} <= start {start_ms / 1000:.3f}")
    labels = self._labels_cache.get(labels_text)
    if labels is None:
      labels = self._labels(labels_text, file, line_number)
      if len(self._labels_cache) < _LABELS_CACHE_SIZE:
        self._labels_cache[labels_text] = labels
    return ClipRequest(
        dataset=rows_lib.AUDIOSET,
        clip_id=clip_id,
        source_id=ytid,
        start_s=start_ms / 1000,
        end_s=end_ms / 1000,
        label_indices=labels[0],
        label_names=labels[1],
        split=self.split,
    )

  def _labels(self, labels_text: str, file: str, line_number: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    indices = []
    for mid in labels_text.split(","):
      mid = mid.strip()
      index = self._index_of_mid.get(mid)
      if index is None:
        if not mid:
          raise BadRowError(file, line_number, f"empty label in {rows_lib.excerpt(labels_text)}")
        raise BadRowError(
            file, line_number, f"unknown label {rows_lib.excerpt(mid)} (not in label map {self.label_map.name!r})"
        )
      indices.append(index)
    if len(set(indices)) != len(indices):
      raise BadRowError(file, line_number, f"repeated label in {rows_lib.excerpt(labels_text)}")
    return tuple(indices), tuple(self.label_map.names[i] for i in indices)


def parse_audioset_line(
    line: str, *, file: str, line_number: int, label_map: contract.LabelMap, split: str | None = None
) -> ClipRequest | None:
  """One segment line; see AudioSetLineParser (prefer it for many lines)."""
  return AudioSetLineParser(label_map, split)(line, file, line_number)


def declared_counts(line: str) -> dict[str, int]:
  """The counts a "#" header line declares, e.g. {"num_segs": 20371, ...}."""
  return {key: int(value) for key, value in _DECLARED_COUNT_PATTERN.findall(line)}


def parse_audioset_lines(
    lines: Iterable[str],
    *,
    file: str,
    label_map: contract.LabelMap,
    split: str | None = None,
    skip_bad_rows: bool = False,
    check_declared_count: bool = True,
) -> ParseResult:
  """All segments of one file given as lines.

  Args:
    lines: the file's lines.
    file: its name, for messages.
    label_map: the AudioSet label map.
    split: recorded on every row.
    skip_bad_rows: record bad rows in ParseResult.rejected instead of raising.
    check_declared_count: compare the data lines (good and bad) with the
      header's num_segs, where the file has one.

  Raises:
    BadRowError: the first bad row, unless skip_bad_rows.
    BadFileError: the data lines disagree with the declared num_segs.
  """
  parse = AudioSetLineParser(label_map, split)
  declared: dict[str, int] = {}

  def parse_line(line: str, line_number: int) -> ClipRequest | None:
    if line.startswith("#"):
      declared.update(declared_counts(line))
    return parse(line, file, line_number)

  rows, rejected, data_lines = rows_lib.collect_rows(
      lines, file=file, parse_line=parse_line, clip_id_of=lambda row: row.clip_id, skip_bad_rows=skip_bad_rows
  )
  if check_declared_count and "num_segs" in declared and declared["num_segs"] != data_lines:
    raise BadFileError(
        file, f"header declares num_segs={declared['num_segs']} but the file has {data_lines} data lines"
    )
  return ParseResult(rows=tuple(rows), rejected=tuple(rejected), label_map=label_map)


def parse_audioset_segments(
    path: str | os.PathLike,
    label_map: contract.LabelMap,
    *,
    split: str | None = None,
    skip_bad_rows: bool = False,
    check_declared_count: bool = True,
) -> ParseResult:
  """All segments of an AudioSet segment CSV; see parse_audioset_lines."""
  return parse_audioset_lines(
      rows_lib.read_lines(path),
      file=os.fspath(path),
      label_map=label_map,
      split=split,
      skip_bad_rows=skip_bad_rows,
      check_declared_count=check_declared_count,
  )


def format_audioset_line(row: ClipRequest, label_map: contract.LabelMap) -> str:
  """The segment line of a row, in the release's exact format (no newline)."""
  if label_map.ids is None:
    raise ValueError(f"label map {label_map.name!r} has no ids (MIDs)")
  mids = ",".join(label_map.ids[i] for i in row.label_indices)
  return f'{row.source_id}, {row.start_s:.3f}, {row.end_s:.3f}, "{mids}"'


def write_audioset_segments(
    path: str | os.PathLike, rows: Sequence[ClipRequest], label_map: contract.LabelMap, *, title: str
) -> None:
  """Writes rows as an AudioSet segment CSV, header counts included.

  Args:
    path: the file to write.
    rows: the segments, written in this order.
    label_map: the AudioSet label map (for the MIDs).
    title: the first header line's text, e.g. "AS-500K subset (as500k-v1)".
  """
  num_ytids = len({row.source_id for row in rows})
  num_labels = len({i for row in rows for i in row.label_indices})
  num_positive = sum(len(row.label_indices) for row in rows)
  with open(path, "w", encoding="utf-8", newline="\n") as handle:
    handle.write(f"# {title}\n")
    handle.write(
        f"# num_ytids={num_ytids}, num_segs={len(rows)}, num_unique_labels={num_labels}, "
        f"num_positive_labels={num_positive}\n"
    )
    handle.write("# " + ", ".join(SEGMENT_COLUMNS) + "\n")
    for row in rows:
      handle.write(format_audioset_line(row, label_map) + "\n")
