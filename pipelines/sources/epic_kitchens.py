"""EPIC-KITCHENS-100: narrations, verb/noun/action classes, video info.

A clip is one narration (its id is the narration id) of a local video
``PXX/videos/PXX_YY.MP4``, from start_timestamp to stop_timestamp
(``HH:MM:SS.ff``). The frame columns are ignored on purpose: they were counted
at a rate that is not the videos' native fps, so only the timestamps are exact.

The annotation CSVs have a header row, and the parser finds columns by name:
train and validation have all of narration_id, participant_id, video_id,
narration_timestamp, start_timestamp, stop_timestamp, start_frame,
stop_frame, narration, verb, verb_class, noun, noun_class, all_nouns,
all_noun_classes (the last two are Python list literals); a test file may
lack the label columns, and then every label is contract.NO_LABEL.

Actions: (verb_class, noun_class) pairs. The action label map lists the pairs
seen in the TRAINING annotations, sorted by (verb_class, noun_class); its
names are "verb noun" (class keys) and its ids "verb_class,noun_class". A pair
not in it, in validation for instance, gets action NO_LABEL.

Bad input (see rows.py for what every file shares): a narration line that is
not a row is a bad row, recorded with skip_bad_rows and the rest of the file
read; an unreadable header makes the whole file unusable. Rows name their
classes by index, so the free-text verb, noun and narration can never make a
class. The class files and the video info are never skipped over: an
unreadable line, or a class key holding whitespace (keys are the class ids,
and an action's name joins two of them with a space), stops the load, naming
its line.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import decimal
import os
import re
from typing import Iterable, Mapping, Sequence

from pipelines.sources import clip_id as clip_ids
from pipelines.sources import rows as rows_lib
from pipelines.sources.rows import BadFileError, BadRowError, ClipRequest, EpicAnnotation, ParseResult
from shared import contract

VERB_MAP_NAME = "epic_verb"
NOUN_MAP_NAME = "epic_noun"
ACTION_MAP_NAME = "epic_action"
CLASS_FILE_HEADER = ("id", "key", "instances", "category")
REQUIRED_COLUMNS = ("narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp")
# A labelled file has all four; an unlabelled one none of them.
LABEL_COLUMNS = ("verb", "verb_class", "noun", "noun_class")
VIDEO_INFO_HEADER = ("video_id", "duration", "fps", "resolution")
VIDEO_FILE_EXTENSION = ".MP4"

_PARTICIPANT_PATTERN = re.compile(r"P[0-9]{2}")
_VIDEO_ID_PATTERN = re.compile(r"(P[0-9]{2})_[0-9]{2,3}")
_TIMESTAMP_PATTERN = re.compile(r"([0-9]{2,}):([0-5][0-9]):([0-5][0-9](?:\.[0-9]+)?)")
_INDEX_PATTERN = re.compile(r"[0-9]+")
_RESOLUTION_PATTERN = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")
_NUMBER_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)?")


# ---------------------------------------------------------------------------
# Classes.
# ---------------------------------------------------------------------------
def load_epic_class_map(path: str | os.PathLike, name: str) -> contract.LabelMap:
  """A verb or noun class file (``id,key,instances,category``) as a LabelMap.

  names and ids are both the class keys ("take", "board:chopping"): the key is
  the only name EPIC gives a class, and the contract calls it the id.

  Raises:
    BadFileError: a header other than id,key,instances,category.
    BadRowError: an unreadable line (rows.read_csv_file), a row without 4
      columns, an id out of sequence, an empty key or one holding whitespace.
  """
  file = os.fspath(path)
  keys: list[str] = []
  for line, fields in rows_lib.read_csv_file(path, CLASS_FILE_HEADER, header=True):
    if fields[0] != str(len(keys)):
      raise BadRowError(file, line, f"id {rows_lib.excerpt(fields[0])} out of sequence, expected {len(keys)}")
    if not fields[1]:
      raise BadRowError(file, line, "empty key")
    problem = rows_lib.id_whitespace_problem("key", fields[1])
    if problem is not None:
      raise BadRowError(file, line, problem)
    keys.append(fields[1])
  try:
    return contract.LabelMap.from_names(name, keys, ids=keys)
  except ValueError as error:
    raise BadFileError(file, str(error)) from None


def load_epic_verb_classes(path: str | os.PathLike) -> contract.LabelMap:
  """EPIC_100_verb_classes.csv (97 verbs)."""
  return load_epic_class_map(path, VERB_MAP_NAME)


def load_epic_noun_classes(path: str | os.PathLike) -> contract.LabelMap:
  """EPIC_100_noun_classes.csv (300 nouns)."""
  return load_epic_class_map(path, NOUN_MAP_NAME)


def action_id(verb_class: int, noun_class: int) -> str:
  """The id of an action in the action label map: "verb_class,noun_class"."""
  return f"{verb_class},{noun_class}"


def epic_action_label_map(
    training_rows: Iterable[ClipRequest], verb_map: contract.LabelMap, noun_map: contract.LabelMap
) -> contract.LabelMap:
  """The action label map: the labelled (verb, noun) pairs of the training
  rows, sorted, so the same training file always gives the same indices."""
  pairs = sorted(
      {
          (row.epic.verb_class, row.epic.noun_class)
          for row in training_rows
          if row.epic is not None
          and row.epic.verb_class != contract.NO_LABEL
          and row.epic.noun_class != contract.NO_LABEL
      }
  )
  return contract.LabelMap.from_names(
      ACTION_MAP_NAME,
      [f"{verb_map.names[verb]} {noun_map.names[noun]}" for verb, noun in pairs],
      ids=[action_id(verb, noun) for verb, noun in pairs],
  )


def _action_lookup(action_map: contract.LabelMap | None) -> dict[tuple[int, int], int]:
  if action_map is None:
    return {}
  if action_map.ids is None:
    raise ValueError(f"action map {action_map.name!r} has no ids")
  lookup = {}
  for index, text in enumerate(action_map.ids):
    verb, _, noun = text.partition(",")
    lookup[(int(verb), int(noun))] = index
  return lookup


def with_actions(rows: Iterable[ClipRequest], action_map: contract.LabelMap) -> tuple[ClipRequest, ...]:
  """The rows with action_index and label_indices/names from action_map."""
  lookup = _action_lookup(action_map)
  return tuple(_with_action(row, lookup, action_map) for row in rows)


def _with_action(
    row: ClipRequest, lookup: Mapping[tuple[int, int], int], action_map: contract.LabelMap | None
) -> ClipRequest:
  assert row.epic is not None
  action = lookup.get((row.epic.verb_class, row.epic.noun_class), contract.NO_LABEL)
  has_action = action != contract.NO_LABEL
  return dataclasses.replace(
      row,
      label_indices=(action,) if has_action else (),
      label_names=(action_map.names[action],) if has_action else (),
      epic=dataclasses.replace(row.epic, action_index=action),
  )


# ---------------------------------------------------------------------------
# Narrations.
# ---------------------------------------------------------------------------
def timestamp_to_seconds(text: str) -> float:
  """"HH:MM:SS.ff" as seconds ("00:01:02.50" -> 62.5), computed exactly.

  Raises:
    ValueError: text is not HH:MM:SS[.fraction] with minutes and seconds < 60.
  """
  match = _TIMESTAMP_PATTERN.fullmatch(text)
  if match is None:
    raise ValueError(f"not a HH:MM:SS.ff timestamp: {rows_lib.excerpt(text)}")
  hours, minutes, seconds = match.groups()
  return float(int(hours) * 3600 + int(minutes) * 60 + decimal.Decimal(seconds))


@dataclasses.dataclass(frozen=True)
class EpicColumns:
  """Where each column of an annotation file is, from its header row.

  Attributes:
    names: the header's column names, in order.
    labelled: whether the file has the label columns (LABEL_COLUMNS).
  """

  names: tuple[str, ...]
  labelled: bool

  def index(self, name: str) -> int | None:
    return self.names.index(name) if name in self.names else None


def parse_epic_header(line: str, file: str) -> EpicColumns:
  """The columns of an annotation file from its header line.

  Raises:
    BadFileError: an unreadable header line (rows.row_text), a required
      column missing, a column named twice, or only some of the label
      columns.
  """
  try:
    text = rows_lib.row_text(line, file, 1)
  except BadRowError as error:
    raise BadFileError(file, f"unreadable header (line 1): {error.reason}") from None
  names = tuple(name.strip() for name in next(csv.reader([text])))
  missing = [name for name in REQUIRED_COLUMNS if name not in names]
  if missing:
    raise BadFileError(file, f"header lacks column(s) {', '.join(missing)}: {rows_lib.excerpt(','.join(names))}")
  if len(set(names)) != len(names):
    raise BadFileError(file, f"header names a column twice: {rows_lib.excerpt(','.join(names))}")
  present = [name for name in LABEL_COLUMNS if name in names]
  if present and len(present) != len(LABEL_COLUMNS):
    raise BadFileError(file, f"header has label column(s) {present} but not all of {LABEL_COLUMNS}")
  return EpicColumns(names=names, labelled=bool(present))


class EpicLineParser:
  """Parses EPIC-KITCHENS narration lines one at a time (what a DoFn holds)."""

  def __init__(
      self,
      columns: EpicColumns,
      verb_map: contract.LabelMap,
      noun_map: contract.LabelMap,
      action_map: contract.LabelMap | None = None,
      split: str | None = None,
  ):
    """Args:
      columns: from the file's header (parse_epic_header).
      verb_map: the verb classes.
      noun_map: the noun classes.
      action_map: the action label map built from the training pairs; None
        leaves every action NO_LABEL (e.g. while parsing the training file
        that the map is built from; see parse_epic_training_annotations).
      split: recorded on every row, e.g. "validation".
    """
    self.columns = columns
    self.verb_map = verb_map
    self.noun_map = noun_map
    self.action_map = action_map
    self.split = split
    self._actions = _action_lookup(action_map)
    self._column_index = {name: i for i, name in enumerate(columns.names)}

  def __call__(self, line: str, file: str, line_number: int) -> ClipRequest | None:
    """The row of one line, or None for a blank line.

    Raises:
      BadRowError: an unreadable line (rows.row_text); wrong column count;
        malformed or inconsistent ids
        (narration id not "<video_id>_N", video id not "<participant_id>_NN");
        a bad timestamp; stop <= start; a class index out of range; list
        columns that are not lists of the right types and equal lengths.
    """
    text = rows_lib.row_text(line, file, line_number)
    if not text.strip():
      return None

    def bad(reason: str) -> BadRowError:
      return BadRowError(file, line_number, reason)

    fields = rows_lib.split_csv_line(text, file, line_number)
    if len(fields) != len(self.columns.names):
      raise bad(f"expected {len(self.columns.names)} columns as in the header, got {len(fields)}")

    def field(name: str) -> str | None:
      index = self._column_index.get(name)
      return None if index is None else fields[index].strip()

    narration_id, participant_id, video_id = field("narration_id"), field("participant_id"), field("video_id")
    if _PARTICIPANT_PATTERN.fullmatch(participant_id) is None:
      raise bad(f"bad participant_id {rows_lib.excerpt(participant_id)}")
    video_match = _VIDEO_ID_PATTERN.fullmatch(video_id)
    if video_match is None or video_match.group(1) != participant_id:
      raise bad(f"video_id {rows_lib.excerpt(video_id)} is not {participant_id}_NN")
    if not clip_ids.is_epic_narration_id(narration_id) or not narration_id.startswith(video_id + "_"):
      raise bad(f"narration_id {rows_lib.excerpt(narration_id)} is not {video_id}_N")

    try:
      start_s = timestamp_to_seconds(field("start_timestamp"))
      end_s = timestamp_to_seconds(field("stop_timestamp"))
      spoken = field("narration_timestamp")
      narration_timestamp_s = timestamp_to_seconds(spoken) if spoken else None
    except ValueError as error:
      raise bad(str(error)) from None
    if end_s <= start_s:
      raise bad(f"stop_timestamp {field('stop_timestamp')} <= start_timestamp {field('start_timestamp')}")

    verb_class = noun_class = contract.NO_LABEL
    verb = noun = None
    all_nouns: tuple[str, ...] = ()
    all_noun_classes: tuple[int, ...] = ()
    if self.columns.labelled:
      verb, noun = field("verb"), field("noun")
      if not verb or not noun:
        raise bad("empty verb or noun")
      verb_class = self._class_index(field("verb_class"), self.verb_map, "verb_class", bad)
      noun_class = self._class_index(field("noun_class"), self.noun_map, "noun_class", bad)
      all_nouns_text, all_classes_text = field("all_nouns"), field("all_noun_classes")
      if all_nouns_text is not None:
        all_nouns = self._literal_list(all_nouns_text, str, "all_nouns", bad)
      if all_classes_text is not None:
        all_noun_classes = self._literal_list(all_classes_text, int, "all_noun_classes", bad)
        for index in all_noun_classes:
          self._class_index(str(index), self.noun_map, "all_noun_classes", bad)
      if all_nouns_text is not None and all_classes_text is not None and len(all_nouns) != len(all_noun_classes):
        raise bad(f"all_nouns has {len(all_nouns)} items but all_noun_classes {len(all_noun_classes)}")

    row = ClipRequest(
        dataset=rows_lib.EPIC_KITCHENS,
        clip_id=narration_id,
        source_id=video_id,
        start_s=start_s,
        end_s=end_s,
        label_indices=(),
        label_names=(),
        split=self.split,
        epic=EpicAnnotation(
            narration_id=narration_id,
            participant_id=participant_id,
            video_id=video_id,
            narration_timestamp_s=narration_timestamp_s,
            narration=field("narration"),
            verb=verb,
            verb_class=verb_class,
            noun=noun,
            noun_class=noun_class,
            all_nouns=all_nouns,
            all_noun_classes=all_noun_classes,
        ),
    )
    return _with_action(row, self._actions, self.action_map) if self._actions else row

  @staticmethod
  def _class_index(text: str | None, label_map: contract.LabelMap, column: str, bad) -> int:
    if text is None or _INDEX_PATTERN.fullmatch(text) is None:
      raise bad(f"{column} {'None' if text is None else rows_lib.excerpt(text)} is not a class index")
    index = int(text)
    if index >= len(label_map):
      raise bad(f"unknown label: {column} {index} is not a class of {label_map.name!r} ({len(label_map)} classes)")
    return index

  @staticmethod
  def _literal_list(text: str, item_type: type, column: str, bad) -> tuple:
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise bad(f"{column} {rows_lib.excerpt(text)} is not a Python literal") from None
    # bool is an int subclass; a list of True/False is not a list of classes.
    if not isinstance(value, list) or not all(type(item) is item_type for item in value):
      raise bad(f"{column} {rows_lib.excerpt(text)} is not a list of {item_type.__name__}")
    return tuple(value)


def parse_epic_lines(
    lines: Iterable[str],
    *,
    file: str,
    verb_map: contract.LabelMap,
    noun_map: contract.LabelMap,
    action_map: contract.LabelMap | None = None,
    split: str | None = None,
    skip_bad_rows: bool = False,
) -> ParseResult:
  """All narrations of one annotation file given as lines (header first).

  Args:
    lines: the file's lines; the first is the header.
    file: its name, for messages.
    verb_map: the verb classes.
    noun_map: the noun classes.
    action_map: the training action map, or None (all actions NO_LABEL).
    split: recorded on every row.
    skip_bad_rows: record bad rows in ParseResult.rejected instead of raising.

  Raises:
    BadFileError: no header, or a bad one.
    BadRowError: the first bad or duplicate row, unless skip_bad_rows.
  """
  parse: EpicLineParser | None = None

  def parse_line(line: str, line_number: int) -> ClipRequest | None:
    nonlocal parse
    if parse is None:  # the first line is the header
      parse = EpicLineParser(parse_epic_header(line, file), verb_map, noun_map, action_map, split)
      return None
    return parse(line, file, line_number)

  rows, rejected, _ = rows_lib.collect_rows(
      lines, file=file, parse_line=parse_line, clip_id_of=lambda row: row.clip_id, skip_bad_rows=skip_bad_rows
  )
  if parse is None:
    raise BadFileError(file, "empty file: no header row")
  return ParseResult(rows=tuple(rows), rejected=tuple(rejected), label_map=action_map)


def parse_epic_annotations(
    path: str | os.PathLike,
    verb_map: contract.LabelMap,
    noun_map: contract.LabelMap,
    *,
    action_map: contract.LabelMap | None = None,
    split: str | None = None,
    skip_bad_rows: bool = False,
) -> ParseResult:
  """All narrations of an annotation CSV; see parse_epic_lines."""
  return parse_epic_lines(
      rows_lib.read_lines(path),
      file=os.fspath(path),
      verb_map=verb_map,
      noun_map=noun_map,
      action_map=action_map,
      split=split,
      skip_bad_rows=skip_bad_rows,
  )


def parse_epic_training_annotations(
    path: str | os.PathLike,
    verb_map: contract.LabelMap,
    noun_map: contract.LabelMap,
    *,
    split: str = "train",
    skip_bad_rows: bool = False,
) -> ParseResult:
  """The training file, with the action map built from its own (good) rows.

  The result's label_map is that action map: pass it to the other splits.
  """
  parsed = parse_epic_annotations(path, verb_map, noun_map, split=split, skip_bad_rows=skip_bad_rows)
  action_map = epic_action_label_map(parsed.rows, verb_map, noun_map)
  return ParseResult(rows=with_actions(parsed.rows, action_map), rejected=parsed.rejected, label_map=action_map)


# ---------------------------------------------------------------------------
# Videos.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EpicVideoInfo:
  """One row of EPIC_100_video_info.csv.

  Attributes:
    video_id: e.g. "P01_01".
    duration_s: the video's length in seconds.
    fps: its native frame rate (50, 59.94, ... not always 60).
    width: frame width in pixels.
    height: frame height in pixels.
  """

  video_id: str
  duration_s: float
  fps: float
  width: int
  height: int


def load_epic_video_info(path: str | os.PathLike) -> dict[str, EpicVideoInfo]:
  """EPIC_100_video_info.csv by video id.

  Raises:
    BadFileError: a header other than video_id,duration,fps,resolution.
    BadRowError: an unreadable line (rows.read_csv_file), a row without 4
      columns, a bad video id, number or resolution (WIDTHxHEIGHT), a video
      listed twice.
  """
  file = os.fspath(path)
  videos: dict[str, EpicVideoInfo] = {}
  first_line_of: dict[str, int] = {}
  for line, fields in rows_lib.read_csv_file(path, VIDEO_INFO_HEADER, header=True):
    video_id, duration, fps, resolution = (field.strip() for field in fields)
    if _VIDEO_ID_PATTERN.fullmatch(video_id) is None:
      raise BadRowError(file, line, f"bad video_id {rows_lib.excerpt(video_id)}")
    if video_id in first_line_of:
      raise BadRowError(file, line, f"video {video_id!r} listed twice, first at line {first_line_of[video_id]}")
    for name, text in (("duration", duration), ("fps", fps)):
      if _NUMBER_PATTERN.fullmatch(text) is None or float(text) <= 0:
        raise BadRowError(file, line, f"{name} {rows_lib.excerpt(text)} is not a positive number")
    size = _RESOLUTION_PATTERN.fullmatch(resolution)
    if size is None:
      raise BadRowError(file, line, f"resolution {rows_lib.excerpt(resolution)} is not WIDTHxHEIGHT")
    first_line_of[video_id] = line
    videos[video_id] = EpicVideoInfo(
        video_id=video_id,
        duration_s=float(duration),
        fps=float(fps),
        width=int(size.group(1)),
        height=int(size.group(2)),
    )
  return videos


def epic_video_path(videos_dir: str | os.PathLike, video_id: str) -> str:
  """Where a video lies under the videos directory: ``PXX/videos/PXX_YY.MP4``.

  Joined with "/" so that the directory may be a URL (gs://bucket/epic) too.
  The video id is checked against PXX_YY(Y) first, so no id ("../x",
  "/etc/passwd", "P01_01/..") can lead outside videos_dir.

  Raises:
    ValueError: video_id is not of the form PXX_YY or PXX_YYY, or videos_dir
      is empty.
  """
  match = _VIDEO_ID_PATTERN.fullmatch(video_id)
  if match is None:
    raise ValueError(f"not an EPIC-KITCHENS video id: {video_id!r}")
  directory = os.fspath(videos_dir)
  if not directory:
    raise ValueError("empty videos directory")
  prefix = directory if directory.endswith("/") else directory + "/"
  return f"{prefix}{match.group(1)}/videos/{video_id}{VIDEO_FILE_EXTENSION}"


def check_clips_within_videos(
    rows: Sequence[ClipRequest], videos: Mapping[str, EpicVideoInfo], *, tolerance_s: float = 0.1
) -> list[str]:
  """Problems with clips against the video info: unknown videos, clips that
  end more than tolerance_s past their video's end. Empty when all is well.

  The real validation file has one narration (P29_05_563) that stops 13 ms
  after its video's end, hence a tolerance rather than a strict check.
  """
  problems = []
  for row in rows:
    video = videos.get(row.source_id)
    if video is None:
      problems.append(f"{row.clip_id}: video {row.source_id!r} is not in the video info")
    elif row.end_s > video.duration_s + tolerance_s:
      problems.append(f"{row.clip_id}: ends at {row.end_s} s, past its video's end {video.duration_s} s")
  return problems
