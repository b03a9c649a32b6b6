"""Cuts the annotation samples in this folder from the real files.

    python tests/data/annotations/make_samples.py [DATA_DIR]

DATA_DIR defaults to ../shared/data beside the repository root. Each sample
keeps the first rows of its file plus the quirky rows the tests need; bytes
of the copied lines are unchanged (CRLF stays CRLF). See README.md.
"""

import csv
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]


def lines_of(path):
  with open(path, encoding="utf-8", newline="") as handle:
    return handle.readlines()


def write(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as handle:
    handle.writelines(lines)


def audioset_sample(data):
  lines = lines_of(data / "audioset/eval_segments.csv")
  header, body = lines[:3], lines[3:]
  picked = set(range(150))  # sorted by YTID: the first rows begin with "-"
  picked |= {i for i, line in enumerate(body) if not line.split(", ")[1].endswith(".000")}  # 417.300 starts
  short = [i for i, line in enumerate(body) if float(line.split(", ")[2]) - float(line.split(", ")[1]) < 9.9995]
  picked |= set(short[::8])
  picked |= set(range(len(body) - 20, len(body)))
  rows = [body[i] for i in sorted(picked)]
  positive = sum(len(line.split(", ", 3)[3].strip().strip('"').split(",")) for line in rows)
  unique = {mid for line in rows for mid in line.split(", ", 3)[3].strip().strip('"').split(",")}
  # The counts line is rewritten to the sample's true counts (the parser checks num_segs).
  counts = (
      f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels={len(unique)}, "
      f"num_positive_labels={positive}\n"
  )
  write(HERE / "audioset/eval_segments_sample.csv", [header[0], counts, header[2]] + rows)
  write(HERE / "audioset/class_labels_indices.csv", lines_of(data / "audioset/class_labels_indices.csv"))


def vggsound_sample(data):
  lines = lines_of(data / "vggsound/test.csv")
  picked = set(range(200))
  picked |= set([i for i, line in enumerate(lines) if line.startswith('-')][:25])
  picked |= set([i for i, line in enumerate(lines) if '"' in line][:60])
  rows = [lines[i] for i in sorted(picked)]
  write(HERE / "vggsound/test_sample.csv", rows)
  write(HERE / "vggsound/stat.csv", lines_of(data / "vggsound/stat.csv"))
  # vggsound.csv itself is not in shared/data: the same real rows, in its form.
  converted = ["---g-f_I2yQ,1,people marching,test\n"]
  for (file_name, label), line in zip(csv.reader(rows), rows):
    label_field = f'"{label}"' if "," in label else label
    split = "train" if len(converted) % 3 == 0 else "test"
    converted.append(f"{file_name[:11]},{int(file_name[12:18])},{label_field},{split}\n")
  write(HERE / "vggsound/vggsound_sample.csv", converted)


def epic_sample(data):
  lines = lines_of(data / "epic_kitchens/EPIC_100_validation.csv")
  header, body = lines[0], lines[1:]
  parsed = list(csv.reader(body))
  picked = set(range(200))
  picked |= set([i for i, row in enumerate(parsed) if row[13].count(",") >= 1][:60])  # several nouns
  picked |= {i for i, row in enumerate(parsed) if row[13].count(",") >= 3}  # four nouns
  picked |= set([i for i, row in enumerate(parsed) if not row[3]][:10])  # no narration_timestamp
  picked |= {i for i, row in enumerate(parsed) if row[0] == "P29_05_563"}  # stops past its video's end
  rows = [body[i] for i in sorted(picked)]
  write(HERE / "epic_kitchens/EPIC_100_validation_sample.csv", [header] + rows)
  # A test-set-like file without labels, made from the same rows.
  columns = [
      "narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame", "stop_frame"
  ]
  names = next(csv.reader([header]))
  unlabelled = [",".join(columns) + "\n"]
  for row in csv.reader(rows[:50]):
    unlabelled.append(",".join(row[names.index(c)] for c in columns) + "\n")
  write(HERE / "epic_kitchens/EPIC_100_test_timestamps_sample.csv", unlabelled)
  for name in ("EPIC_100_verb_classes.csv", "EPIC_100_noun_classes.csv", "EPIC_100_video_info.csv"):
    write(HERE / "epic_kitchens" / name, lines_of(data / "epic_kitchens" / name))


def main():
  data = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT.parent / "shared" / "data"
  audioset_sample(data)
  vggsound_sample(data)
  epic_sample(data)


if __name__ == "__main__":
  main()
