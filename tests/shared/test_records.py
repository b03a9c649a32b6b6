"""The record format: round trips, Scenic's feature spec, TFRecord and ArrayRecord shards."""

import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from shared import contract, records
from shared.media import generator

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _jpeg(index: int, width: int = 96, height: int = 64) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(generator.paint_frame_code(index, width, height)).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _record(clip_id="abcdefghijk_000001000", seconds=2.5, labels=((3, "dog"), (7, "bark")), **overrides):
  samples = contract.num_audio_samples(seconds)
  rows = contract.num_mel_rows(samples)
  rng = np.random.default_rng(0)
  fields = dict(
      clip_id=clip_id, dataset="vggsound", source_id=clip_id[:11], start_s=1.0, end_s=1.0 + seconds,
      jpeg_frames=[_jpeg(k) for k in range(contract.num_frames(seconds))], frame_width=96, frame_height=64,
      melspec=rng.normal(size=(rows, contract.MEL_NUM_BINS)).astype(np.float32), num_audio_samples=samples,
      label_indices=[i for i, _ in labels], label_names=[n for _, n in labels], has_audio=True,
      decoded_duration_s=seconds, source_fps=29.97, source_width=640, source_height=360)
  fields.update(overrides)
  return records.ClipRecord(**fields)


def _assert_same(a: records.ClipRecord, b: records.ClipRecord):
  for field in a.__dataclass_fields__:
    x, y = getattr(a, field), getattr(b, field)
    if field == "melspec":
      np.testing.assert_array_equal(x, y)
    elif isinstance(x, float):
      assert y == pytest.approx(x, abs=1e-6), field
    else:
      assert list(x) == list(y) if isinstance(x, (list, tuple)) else x == y, field


def test_encode_decode_round_trip():
  record = _record(verb_index=4, noun_index=12, action_index=77, has_audio=False)
  _assert_same(record, records.decode(records.encode(record)))


def test_has_video_round_trips_and_records_written_before_it_read_as_having_video():
  silent_picture = _record(has_video=False)
  assert records.decode(records.encode(silent_picture)).has_video is False
  from shared import example_proto

  example = example_proto.SequenceExample.FromString(records.encode(_record()))
  assert example.context.feature[contract.HAS_VIDEO_KEY].int64_list.value == [1]
  del example.context.feature[contract.HAS_VIDEO_KEY]  # as every record before the key was written
  assert records.decode(example.SerializeToString()).has_video is True


def test_the_same_clip_gives_the_same_bytes_in_every_process():
  # Protobuf orders map entries (the context features) by each process's hash seed unless told otherwise.
  script = (
      "import hashlib, numpy as np\n"
      "from shared import records\n"
      "r = records.ClipRecord(clip_id='c', dataset='d', source_id='s', start_s=0.0, end_s=1.0, jpeg_frames=[b'j'] * 25,"
      " frame_width=2, frame_height=2, melspec=np.ones((100, 128), np.float32), num_audio_samples=16000,"
      " label_indices=[1], label_names=['x'], has_audio=True, decoded_duration_s=1.0, source_fps=25.0,"
      " source_width=2, source_height=2)\n"
      "print(hashlib.sha256(records.encode(r)).hexdigest())\n")
  digests = {subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": seed},
                            capture_output=True, text=True, check=True).stdout for seed in ("1", "2", "3")}
  assert len(digests) == 1, digests


def test_scenic_reader_spec_parses_our_records():
  record = _record()
  context_spec, sequence_spec = records.scenic_feature_spec()
  context, sequence = tf.io.parse_single_sequence_example(
      records.encode(record), context_features=context_spec, sequence_features=sequence_spec)
  assert sorted(tf.sparse.to_dense(context[contract.LABEL_INDEX_KEY]).numpy().tolist()) == [3, 7]
  frames = sequence[contract.IMAGE_KEY].numpy()
  assert len(frames) == 63
  # Frame k decodes to the picture we stored for k.
  for k in (0, 31, 62):
    image = tf.io.decode_jpeg(frames[k]).numpy()
    assert generator.read_frame_code(image) == k
  melspec = sequence[contract.MELSPEC_KEY].numpy()
  assert melspec.shape == (3, contract.MELSPEC_STEP_ROWS, contract.MEL_NUM_BINS)
  rows = record.melspec.shape[0]
  np.testing.assert_array_equal(melspec.reshape(-1, contract.MEL_NUM_BINS)[:rows], record.melspec)
  assert not melspec.reshape(-1, contract.MEL_NUM_BINS)[rows:].any()  # zero padded


def test_validate_refuses_a_melspec_that_does_not_match_the_audio():
  record = _record()
  bad = records.ClipRecord(**{**record.__dict__, "melspec": record.melspec[:-1]})
  with pytest.raises(records.RecordError, match="rows"):
    records.encode(bad)


def test_decode_refuses_garbage_and_other_schemas():
  with pytest.raises(records.RecordError):
    records.decode(b"\x00not a record at all\xff" * 3)
  old = records.encode(_record(schema_version=contract.SCHEMA_VERSION + 1))
  with pytest.raises(records.RecordError, match="schema version"):
    records.decode(old)
  assert records.decode(old, check_schema=False).schema_version == contract.SCHEMA_VERSION + 1


def test_tfrecord_and_array_record_hold_the_same_bytes(tmp_path):
  import grain

  serialized = [records.encode(_record(clip_id=f"clip{i:08d}", seconds=1.0 + i / 10)) for i in range(5)]
  tfrecord_path = str(tmp_path / records.shard_name("train", 0, 1))
  array_path = tfrecord_path + records.ARRAY_RECORD_SUFFIX
  assert records.write_tfrecord(tfrecord_path, serialized) == 5
  assert records.write_array_record(array_path, serialized) == 5
  assert list(records.read_tfrecord(tfrecord_path)) == serialized
  assert records.read_array_record(array_path) == serialized
  assert records.read_array_record(array_path, [3, 1]) == [serialized[3], serialized[1]]
  source = grain.sources.ArrayRecordDataSource([array_path])
  assert len(source) == 5 and source[4] == serialized[4]
  assert not list(tmp_path.glob("*.incomplete"))


@pytest.mark.parametrize("writer", [records.tfrecord_writer, records.array_record_writer])
def test_a_shard_writer_whose_block_fails_leaves_no_file(tmp_path, writer):
  with pytest.raises(RuntimeError, match="killed"):
    with writer(str(tmp_path / "shard")) as write:
      write(b"a" * 100)
      raise RuntimeError("killed mid-shard")
  assert list(tmp_path.iterdir()) == []


def test_shard_names_follow_scenic():
  assert records.shard_name("vggsound-train", 3, 16) == "vggsound-train-00003-of-00016"
  with pytest.raises(ValueError):
    records.shard_name("x", 16, 16)


def test_our_tfrecord_files_match_tensorflows(tmp_path):
  serialized = [records.encode(_record(clip_id=f"clip{i:08d}", seconds=1.0)) for i in range(3)]
  ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
  records.write_tfrecord(ours, serialized)
  with tf.io.TFRecordWriter(theirs) as writer:
    for item in serialized:
      writer.write(item)
  with open(ours, "rb") as a, open(theirs, "rb") as b:
    assert a.read() == b.read()
  assert list(tf.data.TFRecordDataset([ours]).as_numpy_iterator()) == serialized


def test_tensorflows_own_protos_parse_our_bytes():
  from tensorflow.core.example import example_pb2

  record = _record()
  example = example_pb2.SequenceExample.FromString(records.encode(record))
  assert example.context.feature[contract.CLIP_ID_KEY].bytes_list.value[0].decode() == record.clip_id
  assert len(example.feature_lists.feature_list[contract.IMAGE_KEY].feature) == len(record.jpeg_frames)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_tfrecord_files_are_refused_with_the_offset(tmp_path, damage):
  path = tmp_path / "shard"
  records.write_tfrecord(str(path), [b"a" * 100, b"b" * 100])
  data = bytearray(path.read_bytes())
  if damage == "truncate":
    data = data[:-30]
  else:
    data[130] ^= 0xFF  # inside the second record's payload
  path.write_bytes(bytes(data))
  with pytest.raises(records.RecordError, match="byte 116"):
    list(records.read_tfrecord(str(path)))


def test_melspec_steps_are_whole_seconds_row_major():
  rows = 250
  melspec = np.arange(rows * contract.MEL_NUM_BINS, dtype=np.float32).reshape(rows, contract.MEL_NUM_BINS) + 1
  steps = records.melspec_to_steps(melspec)
  assert steps.shape == (3, contract.MELSPEC_STEP_FLOATS) and steps.dtype == np.float32
  np.testing.assert_array_equal(steps[1, :contract.MEL_NUM_BINS], melspec[contract.MELSPEC_STEP_ROWS])
  assert not steps.reshape(-1, contract.MEL_NUM_BINS)[rows:].any()
  for bad in (np.ones((0, contract.MEL_NUM_BINS)), np.ones((10, 64)), np.ones(128)):
    with pytest.raises(ValueError):
      records.melspec_to_steps(bad)


def test_encode_writes_the_message_protobuf_would():
  # encode() writes the feature lists in the wire format itself (no copies of
  # the JPEGs); the bytes must be the same message as one built field by field.
  from shared import example_proto as pb

  record = _record()
  expected = pb.SequenceExample()
  frames = expected.feature_lists.feature_list[contract.IMAGE_KEY].feature
  for jpeg in record.jpeg_frames:
    frames.add().bytes_list.value.append(jpeg)
  steps = expected.feature_lists.feature_list[contract.MELSPEC_KEY].feature
  for step in records.melspec_to_steps(record.melspec):
    steps.add().float_list.value.extend(step.tolist())
  written = pb.SequenceExample.FromString(records.encode(record))
  assert written.feature_lists == expected.feature_lists
  assert written.context.feature[contract.NUM_FRAMES_KEY].int64_list.value == [len(record.jpeg_frames)]
