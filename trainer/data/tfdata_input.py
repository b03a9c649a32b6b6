"""The tf.data input pipeline over TFRecord shards, with the same preprocessing.

Records are numbered in file order across the shards (the same ids as the
ArrayRecord copy of a build), enumerated before this host's slice is taken, and
turned into examples by the same `ClipPreprocessor` through `tf.numpy_function`
(`deterministic=True`), so an example is a function of (seed, epoch, record id)
exactly as in the grain pipeline. The shuffle order itself differs from
grain's (tf.data's buffer shuffle with a fixed seed; deterministic).

Resuming: the stream is deterministic, so a run restarted at step s skips the
first s * batch_size (epoch, record id, bytes) triples before any decoding.

Opening the shards (`TFRecordShards`) walks the record headers of every shard
(12 bytes per record, the data skipped): it counts the records, so a build
that lost records is refused against its manifest exactly as the ArrayRecord
copy is, and it checks each length field's CRC and that no record runs past
the end of its file. Record data is CRC-checked by tf.data as it is read.

Errors: a missing, truncated or corrupt shard surfaces as `ShardError` naming
the shard; a record the preprocessing refuses as `RecordError` naming its
shard. Either way the tf.data iterator is shut down before the error is
raised, so the process can exit (see `numpy_batches`).
"""

from __future__ import annotations

import bisect
import concurrent.futures
import gc
import math
import re
import struct
from typing import Any, Iterator, Optional, Sequence

import google_crc32c
import numpy as np
import tensorflow as tf

from shared import files
from shared.records import RecordError
from trainer.data.grain_input import ShardError
from trainer.data.preprocess import ClipPreprocessor


# TFRecord framing per record: uint64 length, masked CRC-32C of the length,
# data, masked CRC-32C of the data.
_HEADER_BYTES, _FOOTER_BYTES = 12, 4
_CRC_MASK_DELTA = 0xA282EAD8


def _masked_crc32c(data: bytes) -> int:
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _records(path: str) -> Iterator[tuple[int, int]]:
  """(offset, data length) of every record of a TFRecord file, from its headers alone (local or gs://).

  Raises:
    ShardError: a length field fails its CRC, or a record (or header) runs
      past the end of the file.
  """
  size = files.size(path)
  count = offset = 0
  with files.open_read(path) as f:
    while offset < size:
      f.seek(offset)
      header = f.read(_HEADER_BYTES)
      if len(header) < _HEADER_BYTES:
        raise ShardError(f"{path}: truncated header of record {count} at byte {offset}")
      length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
      if _masked_crc32c(length_bytes) != length_crc:
        raise ShardError(f"{path}: corrupt length field of record {count} at byte {offset}")
      (length,) = struct.unpack("<Q", length_bytes)
      end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
      if end > size:
        raise ShardError(f"{path}: record {count} at byte {offset} is truncated "
                         f"({max(0, size - offset - _HEADER_BYTES)} of {length + _FOOTER_BYTES} bytes there)")
      yield offset, length
      offset, count = end, count + 1


def count_records(path: str) -> int:
  """Records in one TFRecord file, from its headers alone; ShardError if they are damaged."""
  return sum(1 for _ in _records(path))


def _data_intact(path: str, offset: int, length: int) -> bool:
  """Whether the data of the record at `offset` matches its CRC."""
  with files.open_read(path) as f:
    f.seek(offset + _HEADER_BYTES)
    data, footer = f.read(length), f.read(_FOOTER_BYTES)
  return len(footer) == _FOOTER_BYTES and _masked_crc32c(data) == struct.unpack("<I", footer)[0]


class TFRecordShards:
  """A split's TFRecord shards, checked and counted when opened.

  Record ids run through the shards in the order given (the ids of the
  ArrayRecord copy of the same build).

  With the sizes and record counts the build's manifest gives, a shard is
  checked by its size alone: one metadata read, where counting its records
  reads every record's header, and on gs:// a read after a seek fetches a
  16 MB block (Beam's GCS reader), so counting would download every shard on
  every host. A shard of another size is damaged, or not the build's. Without
  them (builds from before manifests had sizes) the records are counted.

  Attributes:
    paths: the shard files.
    counts: records per shard.
  """

  def __init__(self, paths: Sequence[str], max_threads: int = 16, sizes: Optional[Sequence[int]] = None,
               counts: Optional[Sequence[int]] = None):
    self.paths = list(paths)
    missing = [p for p in self.paths if not files.exists(p)]
    if missing:
      raise ShardError(f"{len(missing)} TFRecord shard(s) missing, e.g. {missing[0]}")
    # Remote shards cost a round trip per file (or per record): ask side by side.
    with concurrent.futures.ThreadPoolExecutor(min(max_threads, max(len(self.paths), 1))) as pool:
      if sizes is not None and counts is not None:
        for path, size, expected in zip(self.paths, pool.map(files.size, self.paths), sizes):
          if size != expected:
            raise ShardError(f"{path}: {size} bytes, the build's manifest says {expected}: the shard is truncated, "
                             "damaged or not this build's")
        self.counts = list(counts)
      else:
        self.counts = list(pool.map(count_records, self.paths))
    self._ends = np.cumsum(self.counts).tolist()

  def __len__(self) -> int:
    return int(sum(self.counts))

  def shard_of(self, record_id: int) -> str:
    return self.paths[min(bisect.bisect_right(self._ends, record_id), len(self.paths) - 1)]

  def describe(self) -> str:
    """The shards in a few words, for error messages."""
    return f"{', '.join(self.paths[:3])}{' ...' if len(self.paths) > 3 else ''}"

  def damaged_at(self, offset: int) -> list[str]:
    """The shards with a damaged record at byte `offset` (header or data start).

    tf.data names a corrupt record by its offset alone; this checks the record
    there in each shard that has one, to name the damaged file.
    """
    damaged = []
    for path in self.paths:
      try:
        record = next(((start, length) for start, length in _records(path)
                       if offset in (start, start + _HEADER_BYTES)), None)
      except ShardError:
        damaged.append(path)
        continue
      if record is not None and not _data_intact(path, *record):
        damaged.append(path)
    return damaged


def _tensor_specs(spec: Any) -> Any:
  """(shape, dtype) leaves of an element spec -> tf.TensorSpec leaves."""
  if isinstance(spec, dict):
    return {key: _tensor_specs(value) for key, value in spec.items()}
  shape, dtype = spec
  return tf.TensorSpec(shape, tf.as_dtype(dtype))


def _map_preprocessing(records: tf.data.Dataset, spec: Any, make_example, shards: TFRecordShards,
                       parallel_calls: int) -> tf.data.Dataset:
  """Applies a Python example function to each (a, b = record id, bytes) triple, in order."""
  specs = _tensor_specs(spec)
  flat_specs = tf.nest.flatten(specs)

  def flat_example(a, b, serialized):
    try:
      example = make_example(serialized, int(a), int(b))
    except RecordError as error:
      raise RecordError(f"{shards.shard_of(int(b))}: {error}") from error
    return tuple(np.asarray(x) for x in tf.nest.flatten(example))

  def apply(a, b, serialized):
    flat = tf.numpy_function(flat_example, [a, b, serialized], [s.dtype for s in flat_specs], stateful=False)
    for tensor, tensor_spec in zip(flat, flat_specs):
      tensor.set_shape(tensor_spec.shape)
    return tf.nest.pack_sequence_as(specs, flat)

  return records.map(apply, num_parallel_calls=parallel_calls, deterministic=True)


def train_dataset(shards: TFRecordShards, preprocessor: ClipPreprocessor, *, batch_size: int, seed: int,
                  num_epochs: Optional[int] = None, process_index: int = 0,
                  process_count: int = 1, skip_batches: int = 0, shuffle_buffer: int = 2048,
                  parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """This host's training batches; see the module docstring.

  Args:
    shards: the split's TFRecord shards, in manifest order.
    preprocessor: turns records into examples.
    batch_size: examples per batch on this host.
    seed: seeds the shuffle.
    num_epochs: passes over the data, None for an endless stream.
    process_index: this host's index.
    process_count: number of hosts.
    skip_batches: batches already consumed (resume).
    shuffle_buffer: records in tf.data's shuffle buffer.
    parallel_calls: concurrent preprocessing calls.
  """
  num_records = len(shards)
  per_host = len(range(num_records)[process_index::process_count])
  if per_host == 0:
    raise ShardError(f"host {process_index} of {process_count} has no records: the split has only {num_records}")
  records = tf.data.TFRecordDataset(shards.paths).enumerate().shard(process_count, process_index)
  records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat(num_epochs)
  triples = records.enumerate().map(lambda position, pair: (position // per_host, pair[0], pair[1]))
  triples = triples.skip(skip_batches * batch_size)
  examples = _map_preprocessing(triples, preprocessor.element_spec(train=True),
                                lambda serialized, epoch, record_id: preprocessor.train_example(serialized, epoch,
                                                                                                record_id),
                                shards, parallel_calls)
  return examples.batch(batch_size, drop_remainder=True).prefetch(2)


def test_dataset(shards: TFRecordShards, preprocessor: ClipPreprocessor, *, batch_size: int,
                 process_index: int = 0, process_count: int = 1,
                 parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """One ordered pass over this host's records, padded with mask-0 copies of its first to equal batch counts."""
  per_host = math.ceil(len(shards) / process_count)
  padded = math.ceil(per_host / batch_size) * batch_size
  records = tf.data.TFRecordDataset(shards.paths).enumerate().shard(process_count, process_index)
  real = records.map(lambda record_id, serialized: (tf.constant(1, tf.int64), record_id, serialized))
  fill = records.take(1).repeat().map(lambda record_id, serialized: (tf.constant(0, tf.int64), record_id, serialized))
  triples = real.concatenate(fill).take(padded)
  examples = _map_preprocessing(triples, preprocessor.element_spec(train=False),
                                lambda serialized, real_flag, record_id: preprocessor.test_example(
                                    serialized, record_id, mask=float(real_flag)), shards, parallel_calls)
  return examples.batch(batch_size).prefetch(2)


def numpy_batches(dataset: tf.data.Dataset, shards: TFRecordShards) -> Iterator[Any]:
  """Iterates a dataset as numpy; a failure inside it becomes a ShardError or RecordError.

  On failure the tf.data iterator is destroyed before the error is raised.
  Left to the interpreter's exit, its destructor waits for preprocessing
  threads that need the Python interpreter being torn down, and the process
  never ends. So the raised error keeps no reference to TensorFlow's frames.
  """
  iterator = dataset.as_numpy_iterator()
  del dataset
  while True:
    failure = None
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except (tf.errors.DataLossError, tf.errors.NotFoundError) as error:
      message = _python_message(error)
      offset = re.search(r" at (\d+)", message)
      damaged = shards.damaged_at(int(offset.group(1))) if offset else []
      where = ", ".join(damaged) if damaged else f"one of {len(shards.paths)}: {shards.describe()}"
      failure = ShardError(f"a TFRecord shard is missing, truncated or corrupt ({where}): {message}")
    except tf.errors.OpError as error:  # raised by the preprocessing inside tf.numpy_function
      failure = RecordError(_python_message(error))
    if failure is not None:
      iterator = None
      gc.collect()
      raise failure
    yield batch


def _python_message(error: tf.errors.OpError) -> str:
  """The first line of a TensorFlow error without its op prefix; for a Python
  error raised inside tf.numpy_function, that error's own message."""
  text = error.message.split("}} ", 1)[-1].strip().splitlines()[0]
  return text.removeprefix(f"{RecordError.__name__}: ")
