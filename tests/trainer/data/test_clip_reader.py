"""The lazy record reader gives exactly what a full protobuf parse gives, and falls back when unsure."""

import numpy as np
import pytest

from shared import contract, example_proto, records
from trainer.data import clip_reader, synthetic
from trainer.data.mapped_array_record import MappedArrayRecordFile

SOURCES = ("bytes", "mapped")


@pytest.fixture
def as_source(tmp_path):
  """Serialized bytes -> the same record as bytes, or in place in an ArrayRecord shard."""
  whole_reads = []

  def make(serialized: bytes, source: str):
    if source == "bytes":
      return serialized
    path = str(tmp_path / f"shard{len(whole_reads)}.array_record")
    records.write_array_record(path, [b"a record before it" * 5000, serialized])
    whole_reads.append(0)
    return MappedArrayRecordFile(path, 2).record(1, lambda: whole_reads.append(1) or serialized)

  make.whole_reads = whole_reads
  return make


def _serialized(index=0, seconds=2.3, dataset="vggsound", **overrides):
  record = synthetic.synthetic_record(index, dataset=dataset, seconds=seconds, label=index % 4, num_classes=4,
                                      frame_size=(32, 24), rng=np.random.default_rng(index),
                                      verb_noun=(1, 2) if dataset == "epic_kitchens" else None)
  if overrides:
    record = records.ClipRecord(**{**record.__dict__, **overrides})
  return records.encode(record)


def _contents(clip):
  rows = np.zeros((clip.mel_rows + 50, contract.MEL_NUM_BINS), np.float32)
  clip.melspec_rows(0, rows)
  return (clip.clip_id, clip.num_frames, clip.frame_width, clip.frame_height, clip.mel_rows, clip.label_indices,
          clip.verb_index, clip.noun_index, [clip.jpeg(k) for k in range(clip.num_frames)], rows)


def _assert_same(a, b):
  *head_a, frames_a, rows_a = _contents(a)
  *head_b, frames_b, rows_b = _contents(b)
  assert head_a == head_b and frames_a == frames_b
  np.testing.assert_array_equal(rows_a, rows_b)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("seconds, dataset", [(0.3, "vggsound"), (2.3, "audioset"), (4.0, "epic_kitchens")])
def test_lazy_and_full_parse_agree(seconds, dataset, source, as_source):
  serialized = _serialized(seconds=seconds, dataset=dataset)
  lazy = clip_reader.parse_clip(as_source(serialized, source))
  assert isinstance(lazy._record, clip_reader._LazyRecord)
  _assert_same(lazy, clip_reader.parse_clip(serialized, lazy=False))
  decoded = records.decode(serialized)
  assert [lazy.jpeg(k) for k in range(lazy.num_frames)] == list(decoded.jpeg_frames)
  assert 1 not in as_source.whole_reads  # nothing made the mapped record read itself whole


def test_merged_messages_fall_back_to_protobuf_semantics():
  # Concatenated messages merge in protobuf (fields repeat): the lazy reader must not guess.
  merged = _serialized(0) + _serialized(1)
  clip = clip_reader.parse_clip(merged)
  assert isinstance(clip._record, clip_reader._ParsedRecord)
  _assert_same(clip, clip_reader.parse_clip(merged, lazy=False))


@pytest.mark.parametrize("source", SOURCES)
def test_an_odd_feature_deep_inside_switches_to_the_full_parse(source, as_source):
  example = example_proto.SequenceExample.FromString(_serialized())
  frames = example.feature_lists.feature_list[contract.IMAGE_KEY].feature
  frames[3].bytes_list.value.append(b"a second value")
  odd = example.SerializeToString()
  clip = clip_reader.parse_clip(as_source(odd, source))
  assert clip.jpeg(0) == frames[0].bytes_list.value[0]
  assert clip.jpeg(3) == frames[3].bytes_list.value[0]  # protobuf's answer: the first value
  assert isinstance(clip._record, clip_reader._ParsedRecord)
  if source == "mapped":  # the full parse reads the record whole, through the library's checked read
    assert as_source.whole_reads.count(1) == 1


def test_truncated_and_foreign_records_are_refused():
  serialized = _serialized()
  with pytest.raises(records.RecordError):
    clip_reader.parse_clip(serialized[: len(serialized) // 3])
  with pytest.raises(records.RecordError, match="no clip id"):
    clip_reader.parse_clip(example_proto.SequenceExample().SerializeToString())
  with pytest.raises(records.RecordError, match="schema version"):
    clip_reader.parse_clip(_serialized(schema_version=contract.SCHEMA_VERSION + 1))


@pytest.mark.parametrize("source", SOURCES)
def test_the_feature_list_scan_reads_lengths_of_every_varint_size(as_source, source):
  def feature(length: int) -> bytes:  # field 1, length-delimited, `length` bytes of payload
    varint = bytearray()
    while True:
      varint.append((length & 0x7F) | (0x80 if length >= 0x80 else 0))
      length >>= 7
      if not length:
        break
    return b"\x0a" + bytes(varint) + b"x" * sum((b & 0x7F) << (7 * i) for i, b in enumerate(varint))

  lengths = [0, 1, 127, 128, 16383, 16384, 40_000, 2**21 - 1, 2**21, 0, 1]
  message = b"".join(feature(n) for n in lengths)
  # Bytes after the list belong to the next field: the scan must stop at `end`.
  buffer = as_source(b"\x0a\x05" + message + b"\x0a\x7f\x7f", source)
  spans = clip_reader._feature_spans(buffer, 2, 2 + len(message))
  assert [end - start for start, end in spans] == lengths
  with pytest.raises(clip_reader.WireFormatError):
    clip_reader._feature_spans(buffer, 2, 1 + len(message))
