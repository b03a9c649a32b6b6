"""The file layer: joins, atomic writes that leave nothing behind on failure, reads and matches."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from shared import files

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_gs_directories_join_like_paths():
  assert files.join("gs://bucket/as/train/", "x-00000-of-00001") == "gs://bucket/as/train/x-00000-of-00001"


def test_local_and_remote_paths_are_told_apart():
  assert files.is_remote("gs://bucket/x") and files.is_remote("s3://bucket/x")
  assert not files.is_remote("/data/x") and not files.is_remote("relative/x") and not files.is_remote("file:///x")


def test_local_paths_are_made_absolute_and_urls_kept(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert files.absolute("runs/demo") == str(tmp_path / "runs" / "demo")
  assert files.absolute("file://runs/x") == str(tmp_path / "runs" / "x")
  assert files.absolute("~/x") == os.path.join(os.path.expanduser("~"), "x")
  assert files.absolute("gs://bucket/runs/x") == "gs://bucket/runs/x"
  assert files.absolute(None) is None


def test_atomic_writer_replaces_a_file_only_when_complete(tmp_path):
  path = str(tmp_path / "out" / "manifest.json")
  files.write_json(path, {"a": 1, "é": "ü"})
  assert json.loads(open(path, encoding="utf-8").read()) == {"a": 1, "é": "ü"}
  with pytest.raises(RuntimeError):
    with files.atomic_writer(path) as f:
      f.write(b"half a file")
      raise RuntimeError("killed mid-write")
  assert files.read_json(path) == {"a": 1, "é": "ü"}  # the old file, untouched
  assert os.listdir(tmp_path / "out") == ["manifest.json"]  # no temporary left behind


def test_open_new_refuses_to_replace_a_file(tmp_path):
  path = str(tmp_path / "log.jsonl")
  with files.open_new(path) as f:
    f.write(b"line\n")
  with pytest.raises(FileExistsError):
    files.open_new(path)
  assert files.read_text(path) == "line\n"


def test_match_list_delete_and_local_copy(tmp_path):
  for name in ("a.jsonl", "b.jsonl", "c.txt"):
    files.write_bytes(str(tmp_path / name), name.encode())
  (tmp_path / "sub").mkdir()
  files.write_bytes(str(tmp_path / "sub" / "d.jsonl"), b"d")
  assert [os.path.basename(p) for p in files.match(str(tmp_path / "*.jsonl"))] == ["a.jsonl", "b.jsonl"]
  assert [os.path.basename(p) for p in files.list_files(str(tmp_path), ".jsonl")] == ["a.jsonl", "b.jsonl"]
  assert files.list_files(str(tmp_path / "absent")) == []
  files.delete(str(tmp_path / "a.jsonl"))
  files.delete(str(tmp_path / "a.jsonl"))  # absent: fine
  with pytest.raises(FileNotFoundError):
    files.delete(str(tmp_path / "a.jsonl"), missing_ok=False)
  with files.local_copy("file://" + str(tmp_path / "b.jsonl")) as local:
    assert open(local, "rb").read() == b"b.jsonl"
  assert files.size(str(tmp_path / "b.jsonl")) == len(b"b.jsonl")
  with pytest.raises(FileNotFoundError):
    files.size(str(tmp_path / "absent.jsonl"))


def test_upload_copies_atomically(tmp_path):
  source = tmp_path / "local.bin"
  source.write_bytes(os.urandom(3 << 20))
  files.upload(str(source), str(tmp_path / "copy.bin"))
  assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
  assert sorted(os.listdir(tmp_path)) == ["copy.bin", "local.bin"]


# ---------------------------------------------------------------------------
# gs://, against the emulator.
# ---------------------------------------------------------------------------
def test_gs_files_are_written_atomically_read_matched_and_deleted(gcs):
  path = gcs.url("files", "manifest.json")
  files.write_json(path, {"a": 1})
  assert files.read_json(path) == {"a": 1} and files.exists(path) and files.is_file(path)
  with pytest.raises(RuntimeError):
    with files.atomic_writer(path) as f:
      f.write(b"half a file")
      raise RuntimeError("killed mid-write")
  assert files.read_json(path) == {"a": 1}
  files.write_bytes(gcs.url("files", "sub", "deeper.json"), b"{}")
  assert files.list_files(gcs.url("files")) == [path]  # not what lies deeper, nor temporaries
  assert files.match(gcs.url("files", "*.json")) == [path]
  files.rename(path, gcs.url("files", "moved.json"))
  assert not files.exists(path) and files.read_json(gcs.url("files", "moved.json")) == {"a": 1}
  files.delete(gcs.url("files", "moved.json"))
  files.delete(gcs.url("files", "moved.json"))  # absent: fine
  assert not files.exists(gcs.url("files", "moved.json"))


def test_gs_local_copy_and_upload(gcs, tmp_path):
  source = tmp_path / "local.bin"
  source.write_bytes(os.urandom(3 << 20))
  files.upload(str(source), gcs.url("copies", "blob.bin"))
  files.upload(str(source), gcs.url("copies", "blob.bin.longer"))
  assert files.size(gcs.url("copies", "blob.bin")) == 3 << 20  # not its neighbour's, which the name prefixes
  with pytest.raises(FileNotFoundError):
    files.size(gcs.url("copies", "blob"))
  with files.local_copy(gcs.url("copies", "blob.bin")) as local:
    assert open(local, "rb").read() == source.read_bytes()
  assert not os.path.exists(local)  # the download was temporary


def test_shards_go_to_gs_without_tensorflow(gcs):
  # A Beam worker writing shards: TFRecord and ArrayRecord on gs://, read back, and TensorFlow never imported.
  script = f"""
import sys
from testsupport.gcs_emulator import configure_beam_without_credentials
configure_beam_without_credentials()
from pipelines import shards
from shared import records
info = shards.write_shard_files({gcs.url("shards")!r}, "test", 0, 1,
                                [shards.EncodedClip("b", b"two", 0.0, 0.0, 1), shards.EncodedClip("a", b"one", 0.0, 0.0, 1)],
                                shards.FORMATS)
assert list(records.read_tfrecord({gcs.url("shards", "test-00000-of-00001")!r})) == [b"one", b"two"]
assert records.read_array_record({gcs.url("shards", "test-00000-of-00001.array_record")!r}) == [b"one", b"two"]
print(sorted(info.files.values()), "tensorflow" in sys.modules)
"""
  done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.split() == ["['test-00000-of-00001',", "'test-00000-of-00001.array_record']", "False"]
