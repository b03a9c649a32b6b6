"""Bad bytes in annotation files: invalid UTF-8, over-long fields, control characters, stray whitespace.

Every test writes a real file holding the bad bytes and reads it with the real
parser or loader. A bad row is named ``file:line: reason``, recorded with
skip_bad_rows while the rest of the file is read, and its message quotes at
most an excerpt of the offending field.
"""

from __future__ import annotations

import dataclasses
import pathlib
import pickle
from typing import Callable

import pytest

from pipelines.download import cli
from pipelines.sources import as500k, audioset, epic_kitchens, rows, vggsound
from pipelines.sources.rows import BadFileError, BadRowError, ParseResult

BIG_FIELD = b"x" * (2 * 1024 * 1024)  # the 2 MB field a user's file had
EPIC_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,stop_frame,"
    "narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"
)


def _write(path: pathlib.Path, lines: list[bytes], ending: bytes = b"\n") -> pathlib.Path:
  path.write_bytes(b"".join(line + ending for line in lines))
  return path


def _assert_short(message: str) -> None:
  """A message quotes an excerpt of a field, never the whole of it."""
  assert len(message) < 400 and "x" * (rows.EXCERPT_CHARS + 1) not in message, message[:500]


# ---------------------------------------------------------------------------
# The annotation files: every bad row is reported, the rest is read.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Format:
  """One annotation file format, as its parser reads it.

  Attributes:
    name: for test ids.
    header: the lines before the rows.
    row: (n, field) -> the n-th row, `field` in its label (or narration) column.
    field: a good value of that column.
    parse: (path, labels, skip_bad_rows) -> ParseResult, labels being the
      label maps of the fixtures.
  """

  name: str
  header: tuple[bytes, ...]
  row: Callable[[int, bytes], bytes]
  field: bytes
  parse: Callable[..., ParseResult]


def _epic_row(n: int, narration: bytes) -> bytes:
  return (b"P01_11_%d,P01,P01_11,00:00:52.620,00:00:%02d.00,00:00:%02d.50,3118,3181," % (n, n, n) + narration
          + b",throw-into,13,paper,49,\"['paper', 'bin']\",\"[49, 36]\"")


FORMATS = (
    Format("audioset_segments",
           (b"# Segments csv created Sun Mar  5 10:54:25 2017", b"# YTID, start_seconds, end_seconds, positive_labels"),
           lambda n, mids: b'--4gqARaEJE, %d.000, %d.000, "' % (n, n + 10) + mids + b'"', b"/m/09x0r,/m/04rlf",
           lambda path, labels, skip: audioset.parse_audioset_segments(path, labels["audioset"], skip_bad_rows=skip)),
    Format("vggsound_csv", (), lambda n, label: b"--4gqARaEJE,%d," % n + label + b",test", b"dog barking",
           lambda path, labels, skip: vggsound.parse_vggsound_csv(path, labels["vggsound"], skip_bad_rows=skip)),
    Format("vggsound_file_list", (), lambda n, label: b"--4gqARaEJE_%06d.mp4," % n + label, b"dog barking",
           lambda path, labels, skip: vggsound.parse_vggsound_file_list(path, labels["vggsound"], skip_bad_rows=skip)),
    Format("epic_annotations", (EPIC_HEADER.encode(),), _epic_row, b"throw paper into bin",
           lambda path, labels, skip: epic_kitchens.parse_epic_annotations(
               path, labels["verbs"], labels["nouns"], skip_bad_rows=skip)),
)

# name -> (the good field -> a bad one, the reason the row gets).
BAD_FIELDS = {
    "invalid_utf8": (lambda good: good[:3] + b"\xff" + good[3:], "invalid UTF-8 byte 0xFF at column "),
    "latin1": (lambda good: good[:3] + b"\xe9" + good[3:], "invalid UTF-8 byte 0xE9 at column "),
    "truncated_sequence": (lambda good: good[:3] + b"\xe2\x82" + good[3:], "invalid UTF-8 byte 0xE2 at column "),
    "nul": (lambda good: good[:3] + b"\x00" + good[3:], "control character U+0000 '\\x00' at column "),
    "escape": (lambda good: good[:3] + b"\x1b[31m" + good[3:], "control character U+001B"),
    "tab": (lambda good: good[:3] + b"\t" + good[3:], "control character U+0009 '\\t' at column "),
    "c1_control": (lambda good: good[:3] + "\x85".encode() + good[3:], "control character U+0085"),
    "zero_width_space": (lambda good: good[:3] + "\u200b".encode() + good[3:], "invisible format character U+200B"),
    "big_field": (lambda good: BIG_FIELD, "line of 2,097,"),
}


@pytest.fixture(scope="module")
def label_maps(audioset_labels, vggsound_labels, epic_verbs, epic_nouns):
  return {"audioset": audioset_labels, "vggsound": vggsound_labels, "verbs": epic_verbs, "nouns": epic_nouns}


@pytest.mark.parametrize("form", FORMATS, ids=lambda form: form.name)
def test_every_bad_row_is_named_and_the_rest_of_the_file_is_read(tmp_path, label_maps, form):
  bad = [make(form.field) for make, _ in BAD_FIELDS.values()]
  lines = [*form.header, form.row(1, form.field), *(form.row(2 + i, field) for i, field in enumerate(bad)),
           form.row(40, form.field)]
  path = _write(tmp_path / "annotations.csv", lines, ending=b"\r\n")
  good = form.parse(_write(tmp_path / "good.csv", [*form.header, lines[len(form.header)], lines[-1]]), label_maps,
                    False)
  assert len(good.rows) == 2

  parsed = form.parse(path, label_maps, True)

  assert parsed.rows == good.rows
  first_bad_line = len(form.header) + 2
  assert [(r.file, r.line) for r in parsed.rejected] == [
      (str(path), first_bad_line + i) for i in range(len(BAD_FIELDS))]
  for rejected, (name, (_, reason)) in zip(parsed.rejected, BAD_FIELDS.items()):
    assert rejected.reason.startswith(reason), (name, rejected.reason)
    _assert_short(rejected.reason)
    _assert_short(rejected.raw)
  # Without skip_bad_rows the first bad row stops the parse, naming its line.
  with pytest.raises(BadRowError) as caught:
    form.parse(path, label_maps, False)
  assert str(caught.value).startswith(f"{path}:{first_bad_line}: invalid UTF-8 byte 0xFF at column ")
  assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)


def test_the_column_of_an_invalid_byte_is_that_of_its_character(tmp_path, vggsound_labels):
  path = _write(tmp_path / "v.csv", ["--4gqARaEJE,1,café\xa0bar,test".encode() + b"\xff,x"])
  with pytest.raises(BadRowError, match=r"v\.csv:1: invalid UTF-8 byte 0xFF at column 28$"):
    vggsound.parse_vggsound_csv(path, vggsound_labels)


def test_a_quoted_field_across_lines_is_two_bad_rows_at_their_own_lines(tmp_path, audioset_labels):
  lines = [b"# YTID, start_seconds, end_seconds, positive_labels",
           b'--4gqARaEJE, 1.000, 11.000, "/m/09x0r,',  # the quote closes on the next line,
           b'/m/04\xffrlf"',  # which also holds an invalid byte
           b'--4gqARaEJE, 2.000, 12.000, "/m/09x0r"']
  path = _write(tmp_path / "segments.csv", lines)
  parsed = audioset.parse_audioset_segments(path, audioset_labels, skip_bad_rows=True)
  assert [(r.line, r.reason.split(":")[0]) for r in parsed.rejected] == [
      (2, "unreadable CSV"), (3, "invalid UTF-8 byte 0xFF at column 6")]
  assert [row.clip_id for row in parsed.rows] == ["yt_--4gqARaEJE_000002000"]


def test_a_comment_line_is_never_a_row_whatever_its_bytes(tmp_path, audioset_labels):
  lines = [b"# Segments csv created \xff\x00 by someone's editor",
           b"# num_ytids=1, num_segs=1, num_unique_labels=1, num_positive_labels=1",
           b'--4gqARaEJE, 1.000, 11.000, "/m/09x0r"']
  parsed = audioset.parse_audioset_segments(_write(tmp_path / "segments.csv", lines), audioset_labels)
  assert [row.clip_id for row in parsed.rows] == ["yt_--4gqARaEJE_000001000"] and parsed.rejected == ()


def test_an_unreadable_epic_header_makes_the_file_unusable(tmp_path, epic_verbs, epic_nouns):
  path = _write(tmp_path / "v.csv", [EPIC_HEADER.encode().replace(b"narration,", b"narra\x00tion,"),
                                     _epic_row(1, b"take plate")])
  with pytest.raises(BadFileError, match=r"v\.csv: unreadable header \(line 1\): control character U\+0000"):
    epic_kitchens.parse_epic_annotations(path, epic_verbs, epic_nouns, skip_bad_rows=True)


def test_long_fields_under_the_line_limit_are_quoted_as_excerpts(tmp_path, vggsound_labels):
  long_label = b"y" * (rows.MAX_LINE_CHARS - 100)
  path = _write(tmp_path / "v.csv", [b"--4gqARaEJE,1," + long_label + b",test"])
  with pytest.raises(BadRowError) as caught:
    vggsound.parse_vggsound_csv(path, vggsound_labels)
  assert caught.value.reason == (
      f"unknown label {'y' * rows.EXCERPT_CHARS!r}... (16,284 characters) (not in label map 'vggsound')")


# ---------------------------------------------------------------------------
# Labels never become classes through control characters or whitespace.
# ---------------------------------------------------------------------------
LOOK_ALIKE_LABELS = {  # a label that looks like "dog barking" -> why its row is bad
    b"dog\x00barking": "control character U+0000",
    b"dog  barking": "label 'dog  barking' has stray whitespace",
    "dog\xa0barking".encode(): "label 'dog\\xa0barking' has stray whitespace",
    "dog\u200bbarking".encode(): "invisible format character U+200B",
    b"dog\tbarking": "control character U+0009",
}


def test_look_alike_labels_are_bad_rows_not_new_classes(tmp_path):
  lines = [b"--4gqARaEJE,1,dog barking,test", b"--4gqARaEJE,2, dog barking ,test", b"--4gqARaEJE,3,cat meowing,train"]
  lines += [b"--4gqARaEJE,%d," % (10 + i) + label + b",test" for i, label in enumerate(LOOK_ALIKE_LABELS)]
  path = _write(tmp_path / "vggsound.csv", lines)
  label_map = vggsound.vggsound_label_map_from_csv(path)
  assert label_map.names == ("cat meowing", "dog barking")
  parsed = vggsound.parse_vggsound_csv(path, label_map, skip_bad_rows=True)
  assert [row.label_names for row in parsed.rows] == [("dog barking",), ("dog barking",), ("cat meowing",)]
  assert [(r.line, r.reason[:len(reason)]) for r, reason in zip(parsed.rejected, LOOK_ALIKE_LABELS.values())] == [
      (4 + i, reason) for i, reason in enumerate(LOOK_ALIKE_LABELS.values())]


# ---------------------------------------------------------------------------
# Label and class files: never skipped over, the first bad line stops the load.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClassFile:
  name: str
  sample: str  # under tests/data/annotations
  load: Callable[[pathlib.Path], object]
  line: int  # the line the cases change
  text: bytes  # a field on it to change


CLASS_FILES = {
    "audioset": ClassFile("audioset", "audioset/class_labels_indices.csv", audioset.load_audioset_label_map, 3,
                          b"Male speech, man speaking"),
    "audioset_mid": ClassFile("audioset_mid", "audioset/class_labels_indices.csv", audioset.load_audioset_label_map,
                              3, b"/m/05zppz"),
    "stat": ClassFile("stat", "vggsound/stat.csv", vggsound.load_vggsound_label_map, 126, b"dog barking"),
    "verbs": ClassFile("verbs", "epic_kitchens/EPIC_100_verb_classes.csv", epic_kitchens.load_epic_verb_classes, 3,
                       b"put"),
    "nouns": ClassFile("nouns", "epic_kitchens/EPIC_100_noun_classes.csv", epic_kitchens.load_epic_noun_classes, 4,
                       b"plate"),
    "video_info": ClassFile("video_info", "epic_kitchens/EPIC_100_video_info.csv", epic_kitchens.load_epic_video_info,
                            5, b"1920x1080"),
}
CLASS_FILE_CASES = [
    *[(kind, b"ab\xffcd", "invalid UTF-8 byte 0xFF at column ") for kind in CLASS_FILES],
    *[(kind, b"ab\x00cd", "control character U+0000") for kind in CLASS_FILES],
    *[(kind, BIG_FIELD, "line of 2,097,") for kind in CLASS_FILES],
    ("audioset", b"Male speech,  man speaking", "display_name 'Male speech,  man speaking' has stray whitespace"),
    ("audioset", b"Male speech, man speaking ", "display_name 'Male speech, man speaking ' has stray whitespace"),
    ("audioset_mid", b"/m/05zppz ", "mid '/m/05zppz ' holds whitespace"),
    ("stat", "dog\xa0barking".encode(), "label 'dog\\xa0barking' has stray whitespace"),
    ("stat", b" dog barking", "label ' dog barking' has stray whitespace"),
    ("verbs", b"put down", "key 'put down' holds whitespace"),
]


def _sample_with(tmp_path: pathlib.Path, samples: pathlib.Path, kind: ClassFile, new: bytes) -> pathlib.Path:
  lines = (samples / kind.sample).read_bytes().splitlines(keepends=True)
  assert kind.text in lines[kind.line - 1]
  lines[kind.line - 1] = lines[kind.line - 1].replace(kind.text, new, 1)
  path = tmp_path / pathlib.Path(kind.sample).name
  path.write_bytes(b"".join(lines))
  return path


@pytest.mark.parametrize("kind, new, reason", CLASS_FILE_CASES,
                         ids=[f"{kind}-{reason.split(' ')[0]}-{i}" for i, (kind, _, reason) in
                              enumerate(CLASS_FILE_CASES)])
def test_a_bad_line_of_a_class_file_stops_its_load(tmp_path, samples, kind, new, reason):
  kind = CLASS_FILES[kind]
  kind.load(_sample_with(tmp_path, samples, kind, kind.text))  # the file itself loads
  path = _sample_with(tmp_path, samples, kind, new)
  with pytest.raises(BadRowError) as caught:
    kind.load(path)
  assert (caught.value.file, caught.value.line) == (str(path), kind.line)
  assert caught.value.reason.startswith(reason), caught.value.reason
  _assert_short(str(caught.value))


# ---------------------------------------------------------------------------
# The command lines that read the same files.
# ---------------------------------------------------------------------------
def test_clip_list_names_an_unreadable_line_and_downloads_nothing(tmp_path, capsys):
  clips = _write(tmp_path / "clips.csv", [b"# a comment \xff", b'--4gqARaEJE, 1.000, 11.000, "/m/09x0r"',
                                          b"--BfvyPmVMo,2,dog\x00barking,test", b"-0CamVQdP_Y, 3.000, 13.000"])
  with pytest.raises(cli.ClipListError, match=r"clips\.csv:3: control character U\+0000 '\\x00' at column 18$"):
    list(cli.read_clip_list(str(clips)))
  big = _write(tmp_path / "big.csv", [b"--4gqARaEJE, 1.000, 11.000, " + BIG_FIELD])
  with pytest.raises(cli.ClipListError, match=r"big\.csv:1: line of 2,097,") as caught:
    list(cli.read_clip_list(str(big)))
  _assert_short(str(caught.value))

  assert cli.main([str(clips), "--output_dir", str(tmp_path / "out"), "--ledger_dir", str(tmp_path / "ledger"),
                   "--url_template", "http://127.0.0.1:9/{ytid}.mp4"]) == 2
  printed = capsys.readouterr()
  assert printed.err == f"error: {clips}:3: control character U+0000 '\\x00' at column 18\n"
  assert not (tmp_path / "ledger").exists()


def test_as500k_command_line_reports_bad_files_and_rows(tmp_path, samples, capsys):
  labels = _sample_with(tmp_path, samples, CLASS_FILES["audioset"], b"Male\xffspeech")
  segments = _write(tmp_path / "segments.csv", [b'--4gqARaEJE, 1.000, 11.000, "/m/09x0r"',
                                                b'--BfvyPmVMo, 1.000, 11.000, "/m/09\xffx0r"'])
  argv = ["--segments", str(segments), "--out", str(tmp_path / "subset.csv"), "--target", "1"]
  assert as500k.main(argv + ["--labels", str(labels)]) == 2
  assert capsys.readouterr().err == f"error: {labels}:3: invalid UTF-8 byte 0xFF at column 18\n"
  good_labels = str(samples / "audioset" / "class_labels_indices.csv")
  assert as500k.main(argv + ["--labels", good_labels]) == 2
  assert capsys.readouterr().err == f"error: {segments}:2: invalid UTF-8 byte 0xFF at column 35\n"
  assert as500k.main(argv + ["--labels", good_labels, "--skip-bad-rows"]) == 0
  printed = capsys.readouterr()
  assert printed.err == f"rejected {segments}:2: invalid UTF-8 byte 0xFF at column 35\n"
  assert "1 rows rejected" in printed.out


def test_an_annotation_file_that_cannot_be_opened_is_a_clear_error(tmp_path, capsys):
  from pipelines import build_vggsound

  with pytest.raises(BadFileError, match=r"absent\.csv: cannot be read: No such file or directory"):
    list(rows.read_lines(str(tmp_path / "absent.csv")))
  assert build_vggsound.main(["--csv", str(tmp_path / "absent.csv"), "--output_dir", str(tmp_path / "out")]) == 2
  assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'absent.csv'}: cannot be read: No such file or directory"
  assert not (tmp_path / "out").exists()
