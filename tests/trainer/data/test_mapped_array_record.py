"""Records read in place from mapped ArrayRecord files: the library's bytes exactly, or a refusal."""

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from shared import records
from trainer.data.mapped_array_record import LayoutError, MappedArrayRecordFile

BLOCK = 1 << 16


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
  """Records of every awkward size, written as shared.records writes shards."""
  rng = np.random.default_rng(0)
  sizes = [0, 1, 23, 24, 25, BLOCK - 40, BLOCK, BLOCK + 1, 3 * BLOCK + 17, 2_000_000] + list(rng.integers(0, 300_000,
                                                                                                         40))
  payloads = [rng.bytes(int(size)) for size in sizes]
  path = str(tmp_path_factory.mktemp("mapped") / "shard.array_record")
  records.write_array_record(path, payloads)
  return path, payloads


def test_every_record_and_slice_reads_as_the_library_reads_it(shard):
  path, payloads = shard
  reader = ArrayRecordReader(path)
  mapped = MappedArrayRecordFile(path, len(payloads))
  rng = np.random.default_rng(1)
  for index, payload in enumerate(payloads):
    record = mapped.record(index, lambda: b"")
    assert len(record) == len(payload) and reader.read([index])[0] == payload
    assert record[0:len(record)] == payload
    for _ in range(20):  # slices across block headers included
      begin = int(rng.integers(0, len(payload) + 1))
      end = int(rng.integers(begin, len(payload) + 1))
      assert record[begin:end] == payload[begin:end]
      assert record.head(begin, 20) == payload[begin:begin + 20]
    if len(payload) >= 8:
      assert record[len(payload) - 1] == payload[-1]
      np.testing.assert_array_equal(record.floats(4, (len(payload) - 4) // 4),
                                    np.frombuffer(payload, "<f4", count=(len(payload) - 4) // 4, offset=4))
  mapped.close()


def test_touched_pages_are_counted_when_asked(shard):
  path, payloads = shard
  index = len(payloads) - 41  # the 2 MB record
  record = MappedArrayRecordFile(path, len(payloads)).record(index, lambda: b"", track_pages=True)
  record[0:10]
  record[1_000_000:1_000_010]
  assert record.touched_bytes == 2 * 4096 and record.used_bytes == 20


@pytest.mark.parametrize("options", ["group_size:2,uncompressed", "group_size:1"])  # default: brotli
def test_other_layouts_are_refused(tmp_path, options):
  path = str(tmp_path / "other.array_record")
  writer = ArrayRecordWriter(path, options)
  for payload in (b"x" * 1000, b"y" * 2000):
    writer.write(payload)
  writer.close()
  with pytest.raises(LayoutError, match="not one uncompressed record"):
    MappedArrayRecordFile(path, 2)


def test_a_truncated_file_is_refused(shard, tmp_path):
  path, payloads = shard
  data = open(path, "rb").read()
  truncated = tmp_path / "truncated.array_record"
  truncated.write_bytes(data[: len(data) // 2])
  with pytest.raises(LayoutError, match="past the end"):
    MappedArrayRecordFile(str(truncated), len(payloads))
