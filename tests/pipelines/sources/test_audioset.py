"""AudioSet segment CSVs and class list, on samples of the real files."""

import pickle

import pytest

from pipelines.sources import audioset
from pipelines.sources.rows import AUDIOSET, BadFileError, BadRowError, RejectedRow

HEADER = [
    "# Segments csv created Sun Mar  5 10:54:25 2017\n",
    "# num_ytids=3, num_segs=3, num_unique_labels=5, num_positive_labels=6\n",
    "# YTID, start_seconds, end_seconds, positive_labels\n",
]
GOOD = [
    '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr"\n',
    'Arg6lz6Wryw, 417.300, 427.300, "/m/01h8n0"\n',
    '-JzMCtGCh4o, 0.000, 5.000, "/m/07st88b,/m/09ld4"\n',
]


def test_label_map(audioset_labels):
  assert audioset_labels.name == "audioset"
  assert len(audioset_labels) == 527
  assert audioset_labels.names[:2] == ("Speech", "Male speech, man speaking")
  assert audioset_labels.index_of_id("/m/09x0r") == 0
  assert audioset_labels.index_of_name("Male speech, man speaking") == 1


def test_sample_of_eval_segments(samples, audioset_labels):
  path = samples / "audioset" / "eval_segments_sample.csv"
  parsed = audioset.parse_audioset_segments(path, audioset_labels, split="eval")
  assert len(parsed.rows) == 218 and parsed.rejected == ()
  assert parsed.label_map is audioset_labels
  first = parsed.rows[0]
  assert first.dataset == AUDIOSET and first.split == "eval"
  assert first.clip_id == "yt_--4gqARaEJE_000000000"
  assert first.source_id == "--4gqARaEJE"
  assert (first.start_s, first.end_s) == (0.0, 10.0)
  assert first.label_names == ("Domestic animals, pets", "Squeak", "Dog", "Animal")
  assert [audioset_labels.ids[i] for i in first.label_indices] == ["/m/068hy", "/m/07q6cd_", "/m/0bt9lr", "/m/0jbk"]
  assert sum(row.source_id.startswith("-") for row in parsed.rows) == 150
  assert all(not row.clip_id.startswith("-") for row in parsed.rows)
  fractional = [row for row in parsed.rows if row.start_s != int(row.start_s)]
  assert [row.clip_id for row in fractional] == [
      "yt_Arg6lz6Wryw_000417300",
      "yt_CQKSstz9_hs_000202700",
      "yt_EOKUV6hgMhM_000122700",
  ]
  assert all(row.duration_s == 10.0 for row in fractional)
  short = {row.duration_s for row in parsed.rows if row.duration_s != 10.0}
  assert short and short <= {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0}


def test_line_parser_matches_file_parser(samples, audioset_labels):
  path = samples / "audioset" / "eval_segments_sample.csv"
  parse = audioset.AudioSetLineParser(audioset_labels, split="eval")
  with open(path, encoding="utf-8") as handle:
    one_by_one = [parse(line, "eval.csv", n) for n, line in enumerate(handle, start=1)]
  assert one_by_one[:3] == [None, None, None]
  assert tuple(one_by_one[3:]) == audioset.parse_audioset_segments(path, audioset_labels, split="eval").rows


def test_line_function_and_odd_spacing(audioset_labels):
  canonical = audioset.parse_audioset_line(GOOD[0], file="f", line_number=4, label_map=audioset_labels)
  # Not the release's exact spacing, CRLF: the csv path gives the same row.
  loose = audioset.parse_audioset_line(
      '--4gqARaEJE,0.000 ,  10.000,"/m/068hy, /m/07q6cd_,/m/0bt9lr"\r\n',
      file="f",
      line_number=4,
      label_map=audioset_labels,
  )
  assert loose == canonical
  assert audioset.parse_audioset_line("\n", file="f", line_number=9, label_map=audioset_labels) is None
  assert audioset.parse_audioset_line("# comment\n", file="f", line_number=1, label_map=audioset_labels) is None


@pytest.mark.parametrize(
    "line, reason",
    [
        ('--4gqARaEJE, 0.000, 10.000, /m/068hy,/m/07q6cd_\n', "expected 4 columns"),
        ('--4gqARaEJE, 0.000, 10.000\n', "expected 4 columns"),
        ('--4gqARaEJ, 0.000, 10.000, "/m/068hy"\n', "bad YouTube id '--4gqARaEJ'"),
        ('--4gqARaEJE!, 0.000, 10.000, "/m/068hy"\n', "bad YouTube id"),
        ('--4gqARaEJE, zero, 10.000, "/m/068hy"\n', "not a number of seconds: 'zero'"),
        ('--4gqARaEJE, -1.000, 10.000, "/m/068hy"\n', "not a number of seconds"),
        ('--4gqARaEJE, nan, 10.000, "/m/068hy"\n', "not a number of seconds"),
        ('--4gqARaEJE, 0.0001, 10.000, "/m/068hy"\n', "not a whole number of milliseconds"),
        ('--4gqARaEJE, 10.000, 10.000, "/m/068hy"\n', "end 10.000 <= start 10.000"),
        ('--4gqARaEJE, 20.000, 10.000, "/m/068hy"\n', "end 10.000 <= start 20.000"),
        ('--4gqARaEJE, 0.000, 10.000, "/m/nope"\n', "unknown label '/m/nope'"),
        ('--4gqARaEJE, 0.000, 10.000, ""\n', "empty label"),
        ('--4gqARaEJE, 0.000, 10.000, "/m/068hy,,/m/0jbk"\n', "empty label"),
        ('--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/068hy"\n', "repeated label"),
        ('--4gqARaEJE, 0.000, 10.000, "/m/068hy\n', "unreadable CSV"),
    ],
)
def test_malformed_rows(audioset_labels, line, reason):
  with pytest.raises(BadRowError) as caught:
    audioset.parse_audioset_line(line, file="segments.csv", line_number=42, label_map=audioset_labels)
  error = caught.value
  assert (error.file, error.line) == ("segments.csv", 42)
  assert reason in error.reason
  assert str(error).startswith("segments.csv:42: ")
  # Beam ships exceptions between workers.
  assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_first_bad_row_stops_the_parse(audioset_labels):
  lines = HEADER + [GOOD[0], '--4gqARaEJE, 20.000, 10.000, "/m/068hy"\n', GOOD[1]]
  with pytest.raises(BadRowError, match=r"^x\.csv:5: end 10\.000 <= start 20\.000$"):
    audioset.parse_audioset_lines(lines, file="x.csv", label_map=audioset_labels)


def test_skip_bad_rows_keeps_a_ledger(audioset_labels):
  bad_number = 'abcdefghijk, ten, 20.000, "/m/068hy"\n'
  unknown = 'abcdefghijk, 30.000, 40.000, "/m/unknown"\r\n'
  duplicate = '--4gqARaEJE, 0.000, 8.000, "/m/09x0r"\n'
  header = [HEADER[0], HEADER[1].replace("num_segs=3", "num_segs=6"), HEADER[2]]
  lines = header + [GOOD[0], bad_number, GOOD[1], unknown, duplicate, GOOD[2]]
  parsed = audioset.parse_audioset_lines(lines, file="x.csv", label_map=audioset_labels, skip_bad_rows=True)
  assert [row.source_id for row in parsed.rows] == ["--4gqARaEJE", "Arg6lz6Wryw", "-JzMCtGCh4o"]
  assert parsed.rejected == (
      RejectedRow("x.csv", 5, "not a number of seconds: 'ten'", bad_number.rstrip("\n")),
      RejectedRow("x.csv", 7, "unknown label '/m/unknown' (not in label map 'audioset')", unknown.rstrip("\r\n")),
      RejectedRow("x.csv", 8, "duplicate clip id 'yt_--4gqARaEJE_000000000', first at line 4", duplicate.rstrip("\n")),
  )


def test_duplicates_are_errors_not_merges(audioset_labels):
  lines = HEADER + [GOOD[0], GOOD[1], GOOD[0]]
  with pytest.raises(BadRowError, match="x.csv:6: duplicate clip id 'yt_--4gqARaEJE_000000000', first at line 4"):
    audioset.parse_audioset_lines(lines, file="x.csv", label_map=audioset_labels)


def test_declared_count_catches_truncated_files(audioset_labels):
  with pytest.raises(BadFileError, match="declares num_segs=3 but the file has 2 data lines"):
    audioset.parse_audioset_lines(HEADER + GOOD[:2], file="x.csv", label_map=audioset_labels)
  parsed = audioset.parse_audioset_lines(
      HEADER + GOOD[:2], file="x.csv", label_map=audioset_labels, check_declared_count=False
  )
  assert len(parsed.rows) == 2
  # Without a header there is nothing to check against.
  assert len(audioset.parse_audioset_lines(GOOD, file="x.csv", label_map=audioset_labels).rows) == 3


def test_write_then_parse_gives_the_same_rows(tmp_path, samples, audioset_labels):
  parsed = audioset.parse_audioset_segments(samples / "audioset" / "eval_segments_sample.csv", audioset_labels)
  out = tmp_path / "subset.csv"
  audioset.write_audioset_segments(out, parsed.rows, audioset_labels, title="test subset")
  assert audioset.parse_audioset_segments(out, audioset_labels).rows == parsed.rows
  original = (samples / "audioset" / "eval_segments_sample.csv").read_text().splitlines()
  assert out.read_text().splitlines()[1:] == original[1:]


def test_label_map_file_errors(tmp_path):
  bad_header = tmp_path / "a.csv"
  bad_header.write_text("idx,mid,name\n0,/m/09x0r,Speech\n")
  with pytest.raises(BadFileError, match="expected header"):
    audioset.load_audioset_label_map(bad_header)
  gap = tmp_path / "b.csv"
  gap.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n2,/m/05zppz,"Male speech, man speaking"\n')
  with pytest.raises(BadRowError, match=r"b\.csv:3: index '2' out of sequence, expected 1"):
    audioset.load_audioset_label_map(gap)
  repeated = tmp_path / "c.csv"
  repeated.write_text("index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/09x0r,Talk\n")
  with pytest.raises(BadFileError, match="duplicate ids"):
    audioset.load_audioset_label_map(repeated)
