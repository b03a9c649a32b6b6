"""The typed rows every dataset parser yields, and how bad rows are reported.

Each parser turns one annotation line into a frozen :class:`ClipRequest` (what
to fetch: which source, which span, which labels) or raises
:class:`BadRowError` naming the file, the line number and the reason. The
file-level parsers drive the line parsers through :func:`collect_rows`, which
either stops at the first bad row or, with ``skip_bad_rows=True``, records it
as a :class:`RejectedRow` and goes on. Nothing is dropped silently: a clip id
seen twice is a bad row too (the second occurrence is rejected, naming the
line of the first), never a merge.

Every annotation file, class lists included, is read here the same way:

* One physical line is one row. A quoted field never spans lines: a line whose
  quote does not close is a bad row at its own line, and the next line is read
  as the next row, so one stray quote cannot swallow the rest of the file.
* Bytes are decoded line by line (:func:`read_lines`): an invalid UTF-8 byte
  makes its line a bad row ("invalid UTF-8 byte 0xFF at column 12"), never
  an exception that ends the parse.
* :func:`row_text` refuses, before any field is split, a line longer than
  MAX_LINE_CHARS and any control character (NUL, TAB, ESC, DEL, C1 controls,
  line separators) or invisible format character (zero-width space, a BOM
  inside a line): none of the formats uses them, and in a label they would
  make a class that looks like another one.
* A message quotes a field through :func:`excerpt`: at most EXCERPT_CHARS
  characters of it, so a 2 MB field never reaches stderr or the ledger.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import os
import re
import unicodedata
from typing import Callable, Iterable, Iterator, TypeVar

from shared import contract

# Dataset names, as written under contract.DATASET_KEY.
AUDIOSET = "audioset"
VGGSOUND = "vggsound"
EPIC_KITCHENS = "epic_kitchens"

# The longest line (without its ending) an annotation file may have. The
# longest real one, a noun's instance list in EPIC_100_noun_classes.csv, is
# 3,353 characters; the limit also keeps every field far below the csv
# module's own 131,072-character field limit, which it reports as an error.
MAX_LINE_CHARS = 16_384
# How much of a field a message quotes.
EXCERPT_CHARS = 60


class AnnotationError(ValueError):
  """An annotation file or row that cannot be trusted."""


class BadRowError(AnnotationError):
  """A malformed annotation row.

  Attributes:
    file: the file the row came from, as the caller named it.
    line: 1-based physical line number in that file.
    reason: what is wrong with the row.
  """

  def __init__(self, file: str, line: int, reason: str):
    super().__init__(f"{file}:{line}: {reason}")
    self.file = file
    self.line = line
    self.reason = reason

  def __reduce__(self):
    # Beam pickles exceptions across workers; keep the three fields.
    return (type(self), (self.file, self.line, self.reason))


class BadFileError(AnnotationError):
  """A whole annotation file is unusable (bad header, truncated, wrong shape).

  Attributes:
    file: the file, as the caller named it.
    reason: what is wrong with it.
  """

  def __init__(self, file: str, reason: str):
    super().__init__(f"{file}: {reason}")
    self.file = file
    self.reason = reason

  def __reduce__(self):
    return (type(self), (self.file, self.reason))


@dataclasses.dataclass(frozen=True)
class RejectedRow:
  """A row left out of a parse, and why (the ledger of ``skip_bad_rows=True``).

  Attributes:
    file: the file the row came from.
    line: 1-based physical line number.
    reason: why it was rejected (the message of its BadRowError).
    raw: the line as read, without its line ending; an invalid UTF-8 byte
      is shown as U+FFFD, and a line over MAX_LINE_CHARS is cut to an
      excerpt.
  """

  file: str
  line: int
  reason: str
  raw: str


@dataclasses.dataclass(frozen=True)
class EpicAnnotation:
  """The EPIC-KITCHENS fields of a narration beyond its span.

  Attributes:
    narration_id: e.g. "P01_11_0"; also the clip id.
    participant_id: e.g. "P01".
    video_id: e.g. "P01_11"; the video is ``PXX/videos/PXX_YY.MP4``.
    narration_timestamp_s: when the narration was spoken, or None where the
      file leaves it empty.
    narration: the free-text narration, or None in unlabelled (test) files.
    verb: the verb as narrated (a class instance, e.g. "put-down"), or None.
    verb_class: index into the verb classes, or contract.NO_LABEL.
    noun: the main noun as narrated (e.g. "bin:other"), or None.
    noun_class: index into the noun classes, or contract.NO_LABEL.
    all_nouns: every noun narrated, main noun first where the file says so.
    all_noun_classes: their noun class indices, same order.
    action_index: index of (verb_class, noun_class) in the action label map
      built from the training pairs, or contract.NO_LABEL when the pair is not
      in it, the row has no labels, or no action map was given.
  """

  narration_id: str
  participant_id: str
  video_id: str
  narration_timestamp_s: float | None
  narration: str | None
  verb: str | None
  verb_class: int
  noun: str | None
  noun_class: int
  all_nouns: tuple[str, ...]
  all_noun_classes: tuple[int, ...]
  action_index: int = contract.NO_LABEL


@dataclasses.dataclass(frozen=True)
class ClipRequest:
  """One clip a build should hold: a span of a source with its labels.

  Attributes:
    dataset: AUDIOSET, VGGSOUND or EPIC_KITCHENS.
    clip_id: unique within the dataset, filesystem safe, never starting with
      "-" or "." (see clip_id.py); the EPIC narration id.
    source_id: the YouTube id, or the EPIC video id.
    start_s: span start in the source, seconds.
    end_s: span end in the source, seconds (> start_s).
    label_indices: indices into the parse's label map (AudioSet: every
      positive class, file order; VGGSound: the one class; EPIC: the action
      index, or empty when the action is NO_LABEL).
    label_names: the class names of label_indices, same order.
    split: "train", "test", "eval", ... where known, else None.
    epic: the EPIC-KITCHENS fields, None for other datasets.
  """

  dataset: str
  clip_id: str
  source_id: str
  start_s: float
  end_s: float
  label_indices: tuple[int, ...]
  label_names: tuple[str, ...]
  split: str | None = None
  epic: EpicAnnotation | None = None

  @property
  def duration_s(self) -> float:
    """end_s - start_s, rounded to the microsecond so 427.3 - 417.3 is 10.0."""
    return round(self.end_s - self.start_s, 6)


@dataclasses.dataclass(frozen=True)
class ParseResult:
  """Everything a file parse produced.

  Attributes:
    rows: the good rows, in file order.
    rejected: the rows left out, in file order (always empty unless the parse
      ran with skip_bad_rows=True, since otherwise the first bad row raises).
    label_map: the label map that rows' label_indices index into, or None
      (EPIC parsed without an action map).
  """

  rows: tuple[ClipRequest, ...]
  rejected: tuple[RejectedRow, ...]
  label_map: contract.LabelMap | None


def strip_line_ending(line: str) -> str:
  """The line without its "\\n" or "\\r\\n" (several real files are CRLF), and
  without a byte order mark (files read line by line elsewhere keep theirs)."""
  return line.rstrip("\r\n").lstrip("\ufeff")


def read_lines(path: str | os.PathLike) -> Iterator[str]:
  """Lines of a UTF-8 text file, a leading byte order mark removed.

  An invalid UTF-8 byte does not raise: it arrives in its line as a lone
  surrogate (U+DC80..U+DCFF, Python's "surrogateescape"), and row_text
  reports that line, and only that line, as a bad row.

  Raises:
    BadFileError: the file cannot be opened (missing, a directory, no permission).
  """
  try:
    # newline="" keeps "\r\n" whole so that physical line numbers stay exact.
    handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
  except OSError as error:
    raise BadFileError(os.fspath(path), f"cannot be read: {error.strerror or error}") from None
  with handle:
    yield from handle


def excerpt(text: str) -> str:
  """text quoted as repr() quotes it, or, when longer than EXCERPT_CHARS, its
  first EXCERPT_CHARS characters quoted, an ellipsis and its length."""
  if len(text) <= EXCERPT_CHARS:
    return repr(text)
  return f"{text[:EXCERPT_CHARS]!r}... ({len(text):,} characters)"


# What text_problem refuses, by Unicode category (see the module docstring).
_UNREADABLE_CATEGORIES = {
    "Cc": "control character",  # C0 (NUL, TAB, ESC...), DEL and C1
    "Cf": "invisible format character",  # zero-width space and joiners, bidi marks, U+FEFF
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Cs": "lone surrogate",  # read_lines' stand-ins for invalid bytes are reported as those bytes
}
_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # surrogateescape's stand-ins for bytes 0x80..0xFF
_SURROGATE_PATTERN = re.compile(r"[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
  """Why a line (without its ending) cannot be an annotation row, or None.

  The reasons: longer than MAX_LINE_CHARS; an invalid UTF-8 byte (as
  read_lines passes it on); a control, separator or invisible format
  character. Each names the first offending column (1-based, in characters).
  """
  if len(text) > MAX_LINE_CHARS:
    return f"line of {len(text):,} characters is longer than the limit of {MAX_LINE_CHARS:,}: {excerpt(text)}"
  # Every refused character is non-printable, so nearly every line passes
  # with one C-speed scan; the others (a no-break space is non-printable
  # too, and allowed) are looked at character by character.
  if text.isprintable():
    return None
  for column, char in enumerate(text):
    if not char.isprintable() and unicodedata.category(char) in _UNREADABLE_CATEGORIES:
      return _char_problem(char, column)
  return None


def _char_problem(char: str, column: int) -> str:
  if ord(char) in _ESCAPED_BYTES:
    return f"invalid UTF-8 byte 0x{ord(char) - 0xDC00:02X} at column {column + 1}"
  kind = _UNREADABLE_CATEGORIES.get(unicodedata.category(char), "control character")
  return f"{kind} U+{ord(char):04X} {char!r} at column {column + 1}"


def row_text(line: str, file: str, line_number: int) -> str:
  """The line without its ending, checked by text_problem: what every line
  parser starts from.

  Raises:
    BadRowError: the line is over-long, holds an invalid UTF-8 byte or a
      control or invisible character.
  """
  text = line.rstrip("\r\n").lstrip("\ufeff")  # strip_line_ending, inline: every row of every file comes here
  if text.isprintable() and len(text) <= MAX_LINE_CHARS:
    return text
  problem = text_problem(text)
  if problem is not None:
    raise BadRowError(file, line_number, problem)
  return text


def split_csv_line(text: str, file: str, line_number: int, *, skipinitialspace: bool = False,
                   strict: bool = True) -> list[str]:
  """The fields of one CSV line (a row never spans lines).

  Raises:
    BadRowError: quoting csv cannot read, e.g. a quote that does not close
      on its line.
  """
  try:
    return next(csv.reader([text], skipinitialspace=skipinitialspace, strict=strict))
  except csv.Error as error:
    raise BadRowError(file, line_number, f"unreadable CSV: {error}") from None


def read_csv_file(path: str | os.PathLike, columns: tuple[str, ...], *,
                  header: bool) -> Iterator[tuple[int, list[str]]]:
  """(line number, fields) of every row of a small CSV read whole (a class
  list, the video info), in file order.

  Args:
    path: the file.
    columns: the names of its columns.
    header: whether its first line names them (then it must, exactly).

  Raises:
    BadFileError: the first line is not the header.
    BadRowError: at the first line that row_text or split_csv_line refuses,
      or that has another number of columns (a blank line has none). These
      files are not skipped over: a class left out would move every index
      after it.
  """
  file = os.fspath(path)
  header_missing = header
  for line_number, line in enumerate(read_lines(path), start=1):
    fields = split_csv_line(row_text(line, file, line_number), file, line_number)
    if header_missing:
      if tuple(fields) != columns:
        raise BadFileError(file, f"expected header {','.join(columns)}, got {excerpt(','.join(fields))}")
      header_missing = False
      continue
    if len(fields) != len(columns):
      raise BadRowError(file, line_number, f"expected {len(columns)} columns ({', '.join(columns)}), got {len(fields)}")
    yield line_number, fields
  if header_missing:
    raise BadFileError(file, f"expected header {','.join(columns)}, got an empty file")


def label_whitespace_problem(what: str, text: str) -> str | None:
  """Why a label or class name has stray whitespace, or None when it is
  words separated by single spaces. Leading, trailing or repeated spaces, a
  tab or a no-break space make a label that looks like another one and
  would silently be a class of its own."""
  if text == " ".join(text.split()):
    return None
  return f"{what} {excerpt(text)} has stray whitespace (only single spaces between words)"


def id_whitespace_problem(what: str, text: str) -> str | None:
  """Why a class id (an AudioSet MID, an EPIC class key) holds whitespace,
  or None when it holds none."""
  if not any(char.isspace() for char in text):
    return None
  return f"{what} {excerpt(text)} holds whitespace"


def _shown_raw(line: str) -> str:
  """RejectedRow.raw of a line: printable, and short when the line is not."""
  text = _SURROGATE_PATTERN.sub("\ufffd", strip_line_ending(line))
  return text if len(text) <= MAX_LINE_CHARS else text[:EXCERPT_CHARS] + "..."


Row = TypeVar("Row")


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
  # Millions of new rows trigger a full cyclic collection again and again
  # (a third of a 2M-row parse); rows hold no cycles, so nothing is lost by
  # pausing it, and reference counting still frees everything as usual.
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()


def collect_rows(
    lines: Iterable[str],
    *,
    file: str,
    parse_line: Callable[[str, int], Row | None],
    clip_id_of: Callable[[Row], str],
    skip_bad_rows: bool,
) -> tuple[list[Row], list[RejectedRow], int]:
  """Runs a line parser over a file, keeping a ledger of what it left out.

  Args:
    lines: the file's lines, line endings included or not.
    file: the file's name for messages.
    parse_line: (line, line_number) -> row, or None for a line that holds no
      row (a comment, a blank line); raises BadRowError for a bad one.
    clip_id_of: the row's identity; a second row with the same one is a bad
      row ("duplicate clip id ...").
    skip_bad_rows: record bad rows and go on instead of raising.

  Returns:
    (rows, rejected, data_lines): data_lines counts the lines that were meant
    to hold a row, good or bad, so callers can check a declared row count.

  Raises:
    BadRowError: on the first bad row, unless skip_bad_rows.
  """
  rows: list[Row] = []
  rejected: list[RejectedRow] = []
  first_line_of: dict[str, int] = {}
  data_lines = 0

  def reject(error: BadRowError, line: str) -> None:
    if not skip_bad_rows:
      raise error
    rejected.append(RejectedRow(file=error.file, line=error.line, reason=error.reason, raw=_shown_raw(line)))

  with _cyclic_gc_paused():
    for line_number, line in enumerate(lines, start=1):
      try:
        row = parse_line(line, line_number)
      except BadRowError as error:
        data_lines += 1
        reject(error, line)
        continue
      if row is None:
        continue
      data_lines += 1
      clip_id = clip_id_of(row)
      if clip_id in first_line_of:
        reason = f"duplicate clip id {clip_id!r}, first at line {first_line_of[clip_id]}"
        reject(BadRowError(file, line_number, reason), line)
        continue
      first_line_of[clip_id] = line_number
      rows.append(row)
  return rows, rejected, data_lines

