"""grain (ArrayRecord) and tf.data (TFRecord) pipelines: batches, sharding, resume, equality, bad shards."""

import os

import jax
import numpy as np
import pytest

from shared import contract, layout, records
from trainer.data import (grain_input, input_pipeline, manifest as manifest_lib, preprocess, sampling, synthetic,
                          tfdata_input)

NUM_CLIPS = 6


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("build"))
  synthetic.write_synthetic_build(directory, num_clips=NUM_CLIPS, seconds=[3.0, 1.0, 2.0], num_shards=2,
                                  frame_size=(64, 48))
  return manifest_lib.read_manifest(directory)


@pytest.fixture(scope="module")
def prep(build):
  return preprocess.ClipPreprocessor(
      window=sampling.WindowSpec.paper(1.28, 4), modalities=("rgb", "spectrogram"), label_kind=preprocess.ONE_HOT,
      num_classes=4, melspec_mean=build.melspec_mean, melspec_std=build.melspec_std, crop_size=32, min_resize=48,
      num_test_crops=2, seed=11)


def _equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b)))


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_grain_batches_cover_each_epoch_once_and_reshuffle(build, prep):
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  batches = _take(iter(grain_input.train_dataset(source, prep, batch_size=2, seed=0, read_threads=2)), 6)
  assert batches[0]["inputs"]["rgb"].shape == (2, 4, 32, 32, 3)
  assert batches[0]["inputs"]["spectrogram"].shape == (2, 128, 128)
  assert batches[0]["rgb_jitter"].shape == (2, 4) and batches[0]["label"].shape == (2, 4)
  order = np.concatenate([b["index"] for b in batches]).tolist()
  first, second = order[:NUM_CLIPS], order[NUM_CLIPS:]
  assert sorted(first) == sorted(second) == list(range(NUM_CLIPS))
  assert first != second  # a new permutation each epoch


def test_hosts_read_their_own_rows_of_the_one_host_global_batches(build, prep):
  """Two hosts with local batch 2 make, row for row, the batches of one host with batch 4."""
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  one_host = _take(iter(grain_input.train_dataset(source, prep, batch_size=4, seed=0, read_threads=1)), 4)
  hosts = [_take(iter(grain_input.train_dataset(source, prep, batch_size=2, seed=0, process_index=host,
                                                process_count=2, read_threads=1)), 4) for host in range(2)]
  for step, expected in enumerate(one_host):
    joined = jax.tree.map(lambda a, b: np.concatenate([a, b]), hosts[0][step], hosts[1][step])
    assert _equal(joined, expected)
  # Each host reads only its rows (the first global batch lies inside epoch 0: distinct records).
  assert not set(hosts[0][0]["index"]) & set(hosts[1][0]["index"])


def test_records_are_verified_by_the_library_once_then_read_in_place(build, prep):
  from trainer.data.mapped_array_record import MappedRecord

  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  checked = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD), verify_every_read=True)
  for record_id in range(NUM_CLIPS):
    first, second = source[record_id], source[record_id]
    assert isinstance(first, bytes) and isinstance(second, MappedRecord)
    assert second[0:len(second)] == first == checked[record_id] == checked[record_id]
    assert _equal(prep.train_example(second, 1, record_id), prep.train_example(first, 1, record_id))
  assert isinstance(checked[0], bytes)


def test_grain_resume_reproduces_the_same_batches(build, prep):
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  dataset = grain_input.train_dataset(source, prep, batch_size=2, seed=5, read_threads=2)
  iterator = iter(dataset)
  _take(iterator, 2)
  state = iterator.get_state()
  expected = _take(iterator, 4)
  resumed = iter(grain_input.train_dataset(source, prep, batch_size=2, seed=5, read_threads=1))
  resumed.set_state(state)
  assert all(_equal(a, b) for a, b in zip(expected, _take(resumed, 4)))


def test_grain_worker_processes_give_the_same_batches(build, prep):
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  in_process = _take(iter(grain_input.train_dataset(source, prep, batch_size=2, seed=1, read_threads=1)), 3)
  workers = iter(grain_input.train_dataset(source, prep, batch_size=2, seed=1, read_threads=1, worker_count=1))
  try:
    assert all(_equal(a, b) for a, b in zip(in_process, _take(workers, 3)))
  finally:
    workers.close()


def test_tfdata_and_grain_make_identical_examples(build, prep):
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  shards = tfdata_input.TFRecordShards(build.shard_paths(layout.TFRECORD))
  grain_test = list(grain_input.test_dataset(source, prep, batch_size=4, read_threads=2))
  tf_test = list(tfdata_input.numpy_batches(tfdata_input.test_dataset(shards, prep, batch_size=4), shards))
  assert len(grain_test) == len(tf_test) == 2
  assert all(_equal(a, b) for a, b in zip(grain_test, tf_test))
  np.testing.assert_array_equal(np.concatenate([b["mask"] for b in tf_test]), [1] * 6 + [0] * 2)
  # Training: different shuffles, the same example for the same (epoch, record).
  by_index = lambda batches: {int(i): jax.tree.map(lambda x, k=k: x[k], b)  # noqa: E731
                              for b in batches for k, i in enumerate(b["index"])}
  grain_train = by_index(_take(iter(grain_input.train_dataset(source, prep, batch_size=2, seed=0)), 3))
  tf_train = by_index(list(tfdata_input.numpy_batches(tfdata_input.train_dataset(
      shards, prep, batch_size=2, seed=0).take(3), shards)))
  assert sorted(grain_train) == sorted(tf_train) == list(range(NUM_CLIPS))
  assert all(_equal(grain_train[i], tf_train[i]) for i in range(NUM_CLIPS))


def test_tfdata_resume_skips_consumed_batches(build, prep):
  shards = tfdata_input.TFRecordShards(build.shard_paths(layout.TFRECORD))
  full = list(tfdata_input.numpy_batches(tfdata_input.train_dataset(
      shards, prep, batch_size=2, seed=3).take(5), shards))
  resumed = list(tfdata_input.numpy_batches(tfdata_input.train_dataset(
      shards, prep, batch_size=2, seed=3, skip_batches=2).take(3), shards))
  assert all(_equal(a, b) for a, b in zip(full[2:], resumed))


def test_test_pass_pads_hosts_to_equal_batch_counts(build, prep):
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  masks, indices = [], []
  for host in range(4):  # 6 records over 4 hosts: 2, 2, 1, 1 real
    batches = list(grain_input.test_dataset(source, prep, batch_size=2, process_index=host, process_count=4))
    assert len(batches) == grain_input.num_test_batches(NUM_CLIPS, 2, 4) == 1
    masks.append(batches[0]["mask"].tolist())
    indices += [int(i) for i, m in zip(batches[0]["index"], batches[0]["mask"]) if m]
  assert masks == [[1, 1], [1, 1], [1, 0], [1, 0]] and sorted(indices) == list(range(NUM_CLIPS))


# ---------------------------------------------------------------------------
# Bad shards.
# ---------------------------------------------------------------------------
def test_truncated_array_record_shard_is_named(build, tmp_path):
  good, second = build.shard_paths(layout.ARRAYRECORD)
  truncated = tmp_path / os.path.basename(second)
  data = open(second, "rb").read()
  truncated.write_bytes(data[: len(data) // 2])
  with pytest.raises(grain_input.ShardError, match=f"{truncated.name} is truncated"):
    grain_input.ArrayRecordShards([good, str(truncated)])
  with pytest.raises(grain_input.ShardError, match="missing"):
    grain_input.ArrayRecordShards([good, str(tmp_path / "nope.array_record")])


def _damaged_copy(tmp_path, path: str, damage) -> str:
  """A copy of a TFRecord shard with `damage(bytearray)` applied."""
  data = bytearray(open(path, "rb").read())
  damage(data)
  copy = tmp_path / os.path.basename(path)
  copy.write_bytes(bytes(data))
  return str(copy)


def _record_offsets(path: str) -> list[int]:
  """Byte offsets of the records of a TFRecord file."""
  offsets, offset, data = [], 0, open(path, "rb").read()
  while offset < len(data):
    offsets.append(offset)
    offset += 16 + int.from_bytes(data[offset:offset + 8], "little")
  return offsets


def test_damaged_tfrecord_shards_are_refused_when_opened_naming_shard_and_byte(build, tmp_path):
  path = build.shard_paths(layout.TFRECORD)[1]
  second = _record_offsets(path)[1]
  length_flipped = _damaged_copy(tmp_path, path, lambda d: d.__setitem__(second + 2, d[second + 2] ^ 0x10))
  with pytest.raises(grain_input.ShardError, match=rf"{os.path.basename(path)}: corrupt length field of record 1 "
                                                   rf"at byte {second}"):
    tfdata_input.TFRecordShards([length_flipped])
  truncated = _damaged_copy(tmp_path, path, lambda d: d.__delitem__(slice(len(d) - 1000, None)))
  with pytest.raises(grain_input.ShardError, match=r"record 2 at byte \d+ is truncated"):
    tfdata_input.TFRecordShards([truncated])
  with pytest.raises(grain_input.ShardError, match="missing"):
    tfdata_input.TFRecordShards([str(tmp_path / "nope-00000-of-00001")])


def test_a_flipped_data_byte_stops_the_tfdata_pipeline_with_a_shard_error(build, prep, tmp_path):
  path = build.shard_paths(layout.TFRECORD)[0]
  flipped = _damaged_copy(tmp_path, path, lambda d: d.__setitem__(len(d) // 2, d[len(d) // 2] ^ 0xFF))
  intact = build.shard_paths(layout.TFRECORD)[1]
  shards = tfdata_input.TFRecordShards([intact, flipped])  # the headers are intact
  with pytest.raises(grain_input.ShardError, match=rf"truncated or corrupt \({flipped}\): corrupted record"):
    list(tfdata_input.numpy_batches(tfdata_input.test_dataset(shards, prep, batch_size=2), shards))


@pytest.mark.parametrize("file_format", [layout.TFRECORD, layout.ARRAYRECORD])
def test_shards_holding_fewer_records_than_the_manifest_are_refused(build, tmp_path, file_format):
  """A build that lost records must not train silently, whichever format is read."""
  import json
  import shutil

  directory = tmp_path / "short"
  shutil.copytree(build.directory, directory)
  first = str(directory / os.path.basename(build.shard_paths(file_format)[0]))
  kept = records.read_tfrecord(first.removesuffix(records.ARRAY_RECORD_SUFFIX))
  kept = list(kept)[:-1]
  if file_format == layout.TFRECORD:
    records.write_tfrecord(first, kept)
  else:
    records.write_array_record(first, kept)
  manifest = manifest_lib.read_manifest(str(directory))
  assert json.load(open(directory / "manifest.json"))["counts"]["written"] == NUM_CLIPS
  # TFRecord shards are checked by their size, which the manifest records; ArrayRecord ones count their records.
  refused = {layout.TFRECORD: rf"{first}: \d+ bytes, the build's manifest says \d+",
             layout.ARRAYRECORD: rf"manifest counts {NUM_CLIPS} records, the {file_format} shards hold {NUM_CLIPS - 1}"}
  with pytest.raises(grain_input.ShardError, match=refused[file_format]):
    input_pipeline.open_shards(manifest, file_format)


def test_a_record_of_another_schema_is_refused_with_its_shard(prep, tmp_path):
  record = synthetic.synthetic_record(0, dataset="vggsound", seconds=1.0, label=0, num_classes=4,
                                      frame_size=(64, 48), rng=np.random.default_rng(0))
  newer = records.encode(records.ClipRecord(**{**record.__dict__, "schema_version": contract.SCHEMA_VERSION + 1}))
  path = str(tmp_path / "old-00000-of-00001.array_record")
  records.write_array_record(path, [newer])
  source = grain_input.ArrayRecordShards([path])
  with pytest.raises(records.RecordError, match=r"old-00000-of-00001.array_record: record synthetic_000000: schema"):
    next(iter(grain_input.test_dataset(source, prep, batch_size=1, read_threads=1)))
  tf_path = str(tmp_path / "old-00000-of-00001")
  records.write_tfrecord(tf_path, [newer])
  shards = tfdata_input.TFRecordShards([tf_path])
  with pytest.raises(records.RecordError, match=r"^\S*old-00000-of-00001: record synthetic_000000: schema version"):
    list(tfdata_input.numpy_batches(tfdata_input.test_dataset(shards, prep, batch_size=1), shards))
