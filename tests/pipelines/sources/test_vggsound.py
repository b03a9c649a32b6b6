"""VGGSound: vggsound.csv, the repo's file lists and the 309 classes."""

import pytest

from pipelines.sources import vggsound
from pipelines.sources.rows import VGGSOUND, BadRowError, RejectedRow
from shared import contract


def test_label_map_is_the_sorted_classes(vggsound_labels, samples):
  assert vggsound_labels.name == "vggsound"
  assert len(vggsound_labels) == 309
  assert list(vggsound_labels.names) == sorted(vggsound_labels.names)
  assert vggsound_labels.names[0] == "air conditioning noise"
  assert "bird chirping, tweeting" in vggsound_labels.names
  # stat.csv is not sorted; its order must not leak into the indices.
  assert vggsound_labels == vggsound.vggsound_label_map_from_labels(reversed(vggsound_labels.names))
  # The label map survives the contract's JSON round trip (written into builds).
  assert contract.LabelMap.loads(vggsound_labels.dumps()) == vggsound_labels


def test_label_map_from_a_csv_is_its_labels_sorted(samples):
  from_list = vggsound.vggsound_label_map_from_csv(samples / "vggsound" / "test_sample.csv")
  from_csv = vggsound.vggsound_label_map_from_csv(samples / "vggsound" / "vggsound_sample.csv")
  assert list(from_list.names) == sorted(from_list.names)
  # vggsound_sample.csv is the same rows plus "people marching".
  assert from_csv.names == tuple(sorted({*from_list.names, "people marching"}))


def test_file_list_sample(samples, vggsound_labels):
  parsed = vggsound.parse_vggsound_file_list(samples / "vggsound" / "test_sample.csv", vggsound_labels, split="test")
  assert len(parsed.rows) == 266 and parsed.rejected == ()
  first = parsed.rows[0]
  assert first.dataset == VGGSOUND
  assert (first.clip_id, first.source_id) == ("yt_glLQrEijrKg_000300000", "glLQrEijrKg")
  assert (first.start_s, first.end_s) == (300.0, 310.0)
  assert first.label_names == ("playing hammond organ",)
  assert first.label_indices == (vggsound_labels.index_of_name("playing hammond organ"),)
  assert all(row.duration_s == 10 and row.split == "test" for row in parsed.rows)
  assert any(row.source_id.startswith("-") for row in parsed.rows)
  commas = {row.label_names[0] for row in parsed.rows if "," in row.label_names[0]}
  assert "heart sounds, heartbeat" in commas and "engine accelerating, revving, vroom" in commas


def test_vggsound_csv_sample(samples, vggsound_labels):
  parsed = vggsound.parse_vggsound_csv(samples / "vggsound" / "vggsound_sample.csv", vggsound_labels)
  first = parsed.rows[0]
  assert (first.clip_id, first.start_s, first.end_s, first.label_names, first.split) == (
      "yt_---g-f_I2yQ_000001000",
      1.0,
      11.0,
      ("people marching",),
      "test",
  )
  assert {row.split for row in parsed.rows} == {"train", "test"}
  # Both forms name the same clips with the same labels.
  listed = vggsound.parse_vggsound_file_list(samples / "vggsound" / "test_sample.csv", vggsound_labels)
  assert [(r.clip_id, r.label_indices) for r in parsed.rows[1:]] == [(r.clip_id, r.label_indices) for r in listed.rows]


def test_quoted_label_with_commas(vggsound_labels):
  row = vggsound.parse_vggsound_line(
      '-XxUW9gW6mc,60,"engine accelerating, revving, vroom",train\r\n',
      file="v.csv",
      line_number=3,
      label_map=vggsound_labels,
  )
  assert row.label_names == ("engine accelerating, revving, vroom",)
  assert row.clip_id == "yt_-XxUW9gW6mc_000060000"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("---g-f_I2yQ,1,bird chirping, tweeting,test", "expected 4 columns"),
        ("---g-f_I2yQ,1,people marching", "expected 4 columns"),
        ("---g-f_I2y,1,people marching,test", "bad YouTube id '---g-f_I2y'"),
        ("---g-f_I2yQ,1.5,people marching,test", "not a whole number of seconds"),
        ("---g-f_I2yQ,-1,people marching,test", "not a whole number of seconds"),
        ("---g-f_I2yQ,one,people marching,test", "not a whole number of seconds"),
        ("---g-f_I2yQ,1,people marching,validation", "split 'validation'"),
        ("---g-f_I2yQ,1,people dancing,test", "unknown label 'people dancing'"),
        ('---g-f_I2yQ,1,"people marching,test', "unreadable CSV"),
    ],
)
def test_malformed_csv_rows(vggsound_labels, line, reason):
  with pytest.raises(BadRowError) as caught:
    vggsound.parse_vggsound_line(line, file="vggsound.csv", line_number=7, label_map=vggsound_labels)
  assert reason in caught.value.reason
  assert str(caught.value).startswith("vggsound.csv:7: ")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("glLQrEijrKg_000300.mp4", "expected 2 columns"),
        ("glLQrEijrKg_300.mp4,playing hammond organ", "is not YTID_NNNNNN.mp4"),
        ("glLQrEijrK_000300.mp4,playing hammond organ", "is not YTID_NNNNNN.mp4"),
        ("glLQrEijrKg_000300.avi,playing hammond organ", "is not YTID_NNNNNN.mp4"),
        ("glLQrEijrKg_000300.mp4,playing pipe organ", "unknown label"),
    ],
)
def test_malformed_file_list_rows(vggsound_labels, line, reason):
  with pytest.raises(BadRowError, match=f"^test.csv:2: .*{reason}"):
    vggsound.parse_vggsound_file_list_line(line, file="test.csv", line_number=2, label_map=vggsound_labels)


def test_skip_bad_rows_and_duplicates(vggsound_labels):
  lines = [
      "glLQrEijrKg_000300.mp4,playing hammond organ\r\n",
      "LDoXsip0BEQ_000177.mp4,parrot shouting\r\n",
      "\r\n",
      "glLQrEijrKg_000300.mp4,playing hammond organ\r\n",
      "glLQrEijrKg_000310.mp4,playing hammond organ\r\n",
  ]
  parsed = vggsound.parse_vggsound_file_list_lines(lines, file="t.csv", label_map=vggsound_labels, skip_bad_rows=True)
  assert [row.clip_id for row in parsed.rows] == ["yt_glLQrEijrKg_000300000", "yt_glLQrEijrKg_000310000"]
  assert parsed.rejected == (
      RejectedRow("t.csv", 2, "unknown label 'parrot shouting' (not in label map 'vggsound')", lines[1].rstrip()),
      RejectedRow("t.csv", 4, "duplicate clip id 'yt_glLQrEijrKg_000300000', first at line 1", lines[3].rstrip()),
  )
  with pytest.raises(BadRowError, match="t.csv:2: unknown label"):
    vggsound.parse_vggsound_file_list_lines(lines, file="t.csv", label_map=vggsound_labels)


def test_vggsound_file_name():
  assert vggsound.vggsound_file_name("-XxUW9gW6mc", 60) == "-XxUW9gW6mc_000060.mp4"
  with pytest.raises(ValueError):
    vggsound.vggsound_file_name("-XxUW9gW6mc", 1_000_000)


def test_stat_file_errors(tmp_path):
  twice = tmp_path / "stat.csv"
  twice.write_text("dog barking,1050,animals\ncat meowing,1050,animals\ndog barking,3,animals\n")
  with pytest.raises(BadRowError, match="stat.csv:3: label 'dog barking' listed twice, first at line 1"):
    vggsound.load_vggsound_label_map(twice)
