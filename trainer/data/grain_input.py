"""The grain input pipeline over ArrayRecord shards: a deterministic index -> example map.

Training: one global stream, of which every host reads its own rows.

  record ids 0..N-1 of the split (all shards, in manifest order)
    -> shuffle (grain's index shuffle, a new permutation each epoch)
    -> repeat (num_epochs, or forever)
    -> (global position p) -> (epoch = p // N, record id)
    -> this host's share: of global batch b (G = process_count * local batch
       L positions), the rows [process_index * L, (process_index + 1) * L)
    -> read + ClipPreprocessor.train_example(bytes, epoch, record id)
    -> threads (and optionally worker processes) -> batch of L (drop remainder)

The global batch is therefore the same whatever the number of hosts, row for
row: a run on one host and a run on several with the same global batch see
the same examples in the same order (mixup pairs included), and each host
reads and decodes only its own rows. Element p is a pure function of
(seed, p), so the iterator state grain saves is one integer per host, and a
restored iterator continues at the same element with the same augmentations.

Test passes go through every record of the host's slice once, in order, and
pad the last batch with mask-0 copies so every host runs the same number of
steps.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Optional, Sequence, Union

import grain
import numpy as np

from shared import files
from shared.records import RecordError
from trainer.data.mapped_array_record import LayoutError, MappedArrayRecordFile, MappedRecord
from trainer.data.preprocess import ClipPreprocessor


class ShardError(ValueError):
  """A shard file is missing, truncated or not of the expected format."""


def _mark_absl_flags_parsed(*_):
  """grain 0.2.18 workers read an absl flag; outside absl.app nobody parsed flags."""
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class ArrayRecordShards:
  """ArrayRecord shards as one random-access source of serialized records.

  Record ids run through the shards in the order given. Opening checks every
  shard, and a record that fails to parse is reported with its shard.

  Reading: the first read of a record in a process goes through the
  ArrayRecord library, which checks the record's hash over all its bytes and
  returns them. Later reads of a local shard written by shared.records (one
  uncompressed record per chunk) return a `MappedRecord`: the record read in
  place through a memory map, where the example's parser touches only the
  bytes it needs (about a tenth of a 10 s clip's record for 8 frames). So
  every record is verified once per process before it is trusted, and the
  epochs after the first read at the JPEG-decoding floor. `verify_every_read`
  keeps every read on the library (hash-checked, whole records); other
  layouts always are.

  Shards on gs:// are refused: the ArrayRecord library reads local files
  only, and given a gs:// path it hangs instead of failing. Mount the bucket
  with gcsfuse (trainer/launch_tpu.sh --mount_bucket) and name the mount's
  path, or train from the TFRecord shards (config.data.format='tfrecord'),
  which tf.data reads from gs:// directly.

  Attributes:
    paths: the shard files.
    verify_every_read: read every record whole through the library.
    track_pages: mapped records count the file pages they touch (benchmarks).
  """

  def __init__(self, paths: Sequence[str], verify_every_read: bool = False, track_pages: bool = False):
    self.paths = list(paths)
    self.verify_every_read, self.track_pages = verify_every_read, track_pages
    remote = [p for p in self.paths if files.is_remote(p)]
    if remote:
      raise ShardError(
          f"ArrayRecord shards cannot be read from {remote[0].split('://')[0]}:// (e.g. {remote[0]}): the ArrayRecord "
          "library reads local files only. Mount the bucket (gcsfuse, or trainer/launch_tpu.sh --mount_bucket) and "
          "pass the mount's path, or use config.data.format='tfrecord'")
    missing = [p for p in self.paths if not files.exists(p)]
    if missing:
      raise ShardError(f"{len(missing)} ArrayRecord shard(s) missing, e.g. {missing[0]}")
    try:
      self._source = grain.sources.ArrayRecordDataSource(self.paths)
    except RuntimeError as error:
      raise ShardError(self._diagnose(error)) from error
    from array_record.python.array_record_module import ArrayRecordReader

    counts = []
    for path in self.paths:
      reader = ArrayRecordReader(path)
      counts.append(reader.num_records())
      reader.close()
    self._counts = counts
    self._ends = np.cumsum(counts).tolist()
    self._mapped: Optional[list] = None  # opened on first use, in each process
    self._mapping = threading.Lock()
    self._verified = bytearray(len(self._source))

  def _diagnose(self, error: Exception) -> str:
    for path in self.paths:
      try:
        grain.sources.ArrayRecordDataSource([path])
      except RuntimeError:
        return f"ArrayRecord shard {path} is truncated or not an ArrayRecord file ({error or 'unreadable'})"
    return f"cannot open the ArrayRecord shards: {error}"

  def __len__(self) -> int:
    return len(self._source)

  def _shard_index(self, record_id: int) -> int:
    return bisect.bisect_right(self._ends, record_id)

  def shard_of(self, record_id: int) -> str:
    return self.paths[self._shard_index(record_id)]

  def _mapped_files(self) -> list:
    """Per shard: its MappedArrayRecordFile, or None where the library must read it."""
    with self._mapping:  # grain's read threads arrive together
      if self._mapped is None:
        mapped = []
        for path, count in zip(self.paths, self._counts):
          try:
            mapped.append(MappedArrayRecordFile(path, count))
          except (LayoutError, OSError, ValueError):
            mapped.append(None)  # another layout, or not mappable: the library reads it
        self._mapped = mapped
    return self._mapped

  def read_verified(self, record_id: int) -> bytes:
    """The whole record through the ArrayRecord library, hash-checked."""
    try:
      serialized = self._source[record_id]
    except RuntimeError as error:
      raise ShardError(f"cannot read record {record_id} of {self.shard_of(record_id)}: {error}") from error
    self._verified[record_id] = 1
    return serialized

  def __getitem__(self, record_id: int) -> Union[bytes, MappedRecord]:
    if self.verify_every_read or not self._verified[record_id]:
      return self.read_verified(record_id)
    shard = self._shard_index(record_id)
    mapped = self._mapped_files()[shard]
    if mapped is None:
      return self.read_verified(record_id)
    first = self._ends[shard - 1] if shard else 0
    return mapped.record(record_id - first, lambda: self.read_verified(record_id), self.track_pages)

  def __getstate__(self):  # grain worker processes: maps are reopened there
    state = dict(self.__dict__)
    del state["_mapping"]
    state["_mapped"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._mapping = threading.Lock()

  def __repr__(self) -> str:  # grain prints sources in its stats
    return f"ArrayRecordShards({len(self.paths)} files)"


class _HostRows(grain.MapDataset):
  """One host's rows of every global batch of a stream.

  Element j of this dataset is element (j // L) * G + process_index * L + j % L
  of the parent (L = local_batch_size, G = process_count * L). Only whole
  global batches are kept, so every host has the same length.
  """

  def __init__(self, parent: grain.MapDataset, local_batch_size: int, process_index: int, process_count: int):
    super().__init__(parent)
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} outside 0..{process_count - 1}")
    self._local, self._offset = local_batch_size, process_index * local_batch_size
    self._global = process_count * local_batch_size
    self._length = len(parent) // self._global * local_batch_size

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    batch, row = divmod(index, self._local)
    return self._parent[batch * self._global + self._offset + row]

  def __str__(self) -> str:
    return f"HostRows(offset={self._offset}, rows={self._local} of {self._global})"


class _EpochAndRecord(grain.transforms.MapWithIndex):
  """(stream position, record id) -> (epoch, record id)."""

  def __init__(self, records_per_epoch: int):
    self._records_per_epoch = records_per_epoch

  def map_with_index(self, position: int, record_id: int):
    return position // self._records_per_epoch, int(record_id)


class _TrainExample(grain.transforms.Map):
  """(epoch, record id) -> preprocessed training example."""

  def __init__(self, source: ArrayRecordShards, preprocessor: ClipPreprocessor):
    self._source, self._preprocessor = source, preprocessor

  def map(self, epoch_and_record):
    epoch, record_id = epoch_and_record
    try:
      return self._preprocessor.train_example(self._source[record_id], epoch, record_id)
    except RecordError as error:
      raise RecordError(f"{self._source.shard_of(record_id)}: {error}") from error


class _TestExample(grain.transforms.Map):
  """Pass position -> preprocessed test example; positions past the end are mask-0 padding."""

  def __init__(self, source: ArrayRecordShards, preprocessor: ClipPreprocessor, record_ids: Sequence[int]):
    self._source, self._preprocessor, self._record_ids = source, preprocessor, list(record_ids)

  def map(self, position: int):
    real = position < len(self._record_ids)
    record_id = self._record_ids[position] if real else (self._record_ids[0] if self._record_ids else 0)
    try:
      return self._preprocessor.test_example(self._source[record_id], record_id, mask=1.0 if real else 0.0)
    except RecordError as error:
      raise RecordError(f"{self._source.shard_of(record_id)}: {error}") from error


def _finish(dataset: grain.MapDataset, batch_size: int, drop_remainder: bool, read_threads: int,
            worker_count: int) -> grain.IterDataset:
  iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4 * batch_size))
  iterable = iterable.batch(batch_size, drop_remainder=drop_remainder)
  if worker_count > 0:
    _mark_absl_flags_parsed()
    iterable = iterable.mp_prefetch(grain.multiprocessing.MultiprocessingOptions(num_workers=worker_count),
                                    worker_init_fn=_mark_absl_flags_parsed)
  return iterable


def train_dataset(source: ArrayRecordShards, preprocessor: ClipPreprocessor, *, batch_size: int, seed: int,
                  num_epochs: Optional[int] = None, process_index: int = 0, process_count: int = 1,
                  read_threads: int = 4, worker_count: int = 0) -> grain.IterDataset:
  """The training stream of this host's batches (see the module docstring).

  Args:
    source: the split's shards.
    preprocessor: turns records into examples (its seed drives augmentation).
    batch_size: examples per batch on this host (the global batch over
      process_count).
    seed: seeds the per-epoch shuffles.
    num_epochs: passes over the data, None for an endless stream.
    process_index: this host's index (jax.process_index()).
    process_count: number of hosts (jax.process_count()).
    read_threads: threads decoding examples in this process.
    worker_count: extra worker processes (0: none; the state stays exact).
  """
  if len(source) == 0:
    raise ShardError("the split has no records")
  stream = grain.MapDataset.range(len(source)).shuffle(seed=seed % 2**32).repeat(num_epochs)
  stream = stream.map_with_index(_EpochAndRecord(len(source)))
  stream = _HostRows(stream, batch_size, process_index, process_count)
  if len(stream) == 0:
    raise ShardError(f"{len(source)} records make no global batch of {batch_size * process_count}")
  stream = stream.map(_TrainExample(source, preprocessor))
  return _finish(stream, batch_size, True, read_threads, worker_count)


def test_dataset(source: ArrayRecordShards, preprocessor: ClipPreprocessor, *, batch_size: int,
                 process_index: int = 0, process_count: int = 1, read_threads: int = 4,
                 worker_count: int = 0) -> grain.IterDataset:
  """One ordered pass over this host's records, padded with mask-0 copies of its first to equal batch counts."""
  record_ids = list(range(len(source)))[process_index::process_count]
  per_host = math.ceil(len(source) / process_count)
  padded = math.ceil(per_host / batch_size) * batch_size
  stream = grain.MapDataset.range(padded).map(_TestExample(source, preprocessor, record_ids))
  return _finish(stream, batch_size, False, read_threads, worker_count)


def num_test_batches(num_records: int, batch_size: int, process_count: int = 1) -> int:
  """Batches every host runs in one test pass."""
  return math.ceil(math.ceil(num_records / process_count) / batch_size)
