"""WriteShards: deterministic assignment, complete shard sets, atomic files."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from pipelines import shards
from shared import records


def _clip(i: int) -> shards.EncodedClip:
  return shards.EncodedClip(f"clip{i:04d}", f"payload {i}".encode(), float(i), float(i * i), 1)


def test_assignment_depends_only_on_the_clip_id():
  assert [shards.shard_of(f"c{i}", 7) for i in range(50)] == [shards.shard_of(f"c{i}", 7) for i in range(50)]
  assert len({shards.shard_of(f"c{i}", 7) for i in range(200)}) == 7
  assert shards.num_shards_for(0, 10) == 1 and shards.num_shards_for(21, 10) == 3


def test_write_shards_writes_every_index_with_sorted_records(tmp_path):
  clips = [_clip(i) for i in range(23)]
  num_shards = 4

  def check(infos):
    infos = sorted(infos, key=lambda info: info.index)
    assert [info.index for info in infos] == list(range(num_shards))
    all_ids = [clip_id for info in infos for clip_id in info.clip_ids]
    assert sorted(all_ids) == sorted(c.clip_id for c in clips)
    for info in infos:
      assert list(info.clip_ids) == sorted(info.clip_ids)
      assert all(shards.shard_of(clip_id, num_shards) == info.index for clip_id in info.clip_ids)

  with TestPipeline() as pipeline:
    infos = (pipeline
             | beam.Create(list(reversed(clips)))
             | shards.WriteShards(str(tmp_path), "train", num_shards))
    assert_that(infos, check)

  by_id = {c.clip_id: c.serialized for c in clips}
  for index in range(num_shards):
    name = records.shard_name("train", index, num_shards)
    from_tfrecord = list(records.read_tfrecord(str(tmp_path / name)))
    from_array = records.read_array_record(str(tmp_path / (name + records.ARRAY_RECORD_SUFFIX)))
    assert from_tfrecord == from_array
    assert all(payload in by_id.values() for payload in from_tfrecord)
  assert not [p for p in tmp_path.iterdir() if "incomplete" in p.name]


def test_empty_build_still_writes_a_complete_shard_set(tmp_path):
  with TestPipeline() as pipeline:
    _ = (pipeline | beam.Create([], reshuffle=False).with_output_types(shards.EncodedClip)
         | shards.WriteShards(str(tmp_path), "test", 2, formats=[shards.TFRECORD]))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["test-00000-of-00002", "test-00001-of-00002"]


def test_staged_clips_reach_their_shard_and_their_files_go(tmp_path):
  clips = [_clip(i) for i in range(6)]
  staging = tmp_path / "staging"
  out = tmp_path / "out"
  out.mkdir()
  with TestPipeline() as pipeline:
    _ = (pipeline
         | beam.Create(clips)
         | shards.StageClips(str(staging))
         # Only ids, paths and moments travel on: the bytes left the element.
         | beam.Filter(lambda clip: clip.serialized == b"" and clip.staged_path is not None)
         | shards.WriteShards(str(out), "train", 2, formats=[shards.TFRECORD]))
  written = sorted(p for name in ("train-00000-of-00002", "train-00001-of-00002")
                   for p in records.read_tfrecord(str(out / name)))
  assert written == sorted(c.serialized for c in clips)
  assert list(staging.iterdir()) == []


def test_a_shard_is_written_holding_one_staged_record_at_a_time(tmp_path):
  # Each record is read back once and goes into every format before the next is read:
  # a shard of 64 long clips (gigabytes) never sits in a worker's memory whole.
  import tracemalloc

  record_size = 4 << 20
  staging = tmp_path / "staging"
  staging.mkdir()
  payloads = [bytes([i]) * record_size for i in range(8)]
  clips = [shards.stage_clip(str(staging), shards.EncodedClip(f"clip{i:04d}", payload, 0.0, 0.0, 1))
           for i, payload in enumerate(payloads)]
  tracemalloc.start()
  try:
    info = shards.write_shard_files(str(tmp_path), "train", 0, 1, reversed(clips), shards.FORMATS)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 2 * record_size  # all of them at once would be 8
  name = records.shard_name("train", 0, 1)
  assert list(records.read_tfrecord(str(tmp_path / name))) == payloads
  assert records.read_array_record(str(tmp_path / (name + records.ARRAY_RECORD_SUFFIX))) == payloads
  assert (info.clip_ids, info.num_bytes) == (tuple(c.clip_id for c in clips), 8 * record_size)
  assert list(staging.iterdir()) == []
