"""The tf.data input pipeline over TFRecord shards, with the same preprocessing.

Records are numbered in file order across the shards (the same ids as the
ArrayRecord copy of a build), enumerated before this host's slice is taken, and
turned into examples by the same `ClipPreprocessor` through `tf.numpy_function`
(`deterministic=True`), so an example is a function of (seed, epoch, record id)
exactly as in the grain pipeline. The shuffle order itself differs from
grain's (tf.data's buffer shuffle with a fixed seed; deterministic).

Resuming: the stream is deterministic, so a run restarted at step s skips the
first s * batch_size (epoch, record id, bytes) triples before any decoding.

Errors: a truncated or corrupt shard surfaces as `ShardError` naming the
shards; a record of another schema as the `RecordError` text in the raised
TensorFlow error.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf

from trainer.data.grain_input import ShardError
from trainer.data.preprocess import ClipPreprocessor


def _tensor_specs(spec: Any) -> Any:
  """(shape, dtype) leaves of an element spec -> tf.TensorSpec leaves."""
  if isinstance(spec, dict):
    return {key: _tensor_specs(value) for key, value in spec.items()}
  shape, dtype = spec
  return tf.TensorSpec(shape, tf.as_dtype(dtype))


def _map_preprocessing(records: tf.data.Dataset, spec: Any, make_example, parallel_calls: int) -> tf.data.Dataset:
  """Applies a Python example function to each (a, b, bytes) triple, in order."""
  specs = _tensor_specs(spec)
  flat_specs = tf.nest.flatten(specs)

  def flat_example(a, b, serialized):
    return tuple(np.asarray(x) for x in tf.nest.flatten(make_example(serialized, int(a), int(b))))

  def apply(a, b, serialized):
    flat = tf.numpy_function(flat_example, [a, b, serialized], [s.dtype for s in flat_specs], stateful=False)
    for tensor, tensor_spec in zip(flat, flat_specs):
      tensor.set_shape(tensor_spec.shape)
    return tf.nest.pack_sequence_as(specs, flat)

  return records.map(apply, num_parallel_calls=parallel_calls, deterministic=True)


def _check_files(paths: Sequence[str]) -> None:
  missing = [p for p in paths if not tf.io.gfile.exists(p)]
  if missing:
    raise ShardError(f"{len(missing)} TFRecord shard(s) missing, e.g. {missing[0]}")


def train_dataset(paths: Sequence[str], preprocessor: ClipPreprocessor, *, batch_size: int, seed: int,
                  num_records: int, num_epochs: Optional[int] = None, process_index: int = 0,
                  process_count: int = 1, skip_batches: int = 0, shuffle_buffer: int = 2048,
                  parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """This host's training batches; see the module docstring.

  Args:
    paths: the split's TFRecord shards, in manifest order.
    preprocessor: turns records into examples.
    batch_size: examples per batch on this host.
    seed: seeds the shuffle.
    num_records: records in the split (the manifest's count).
    num_epochs: passes over the data, None for an endless stream.
    process_index: this host's index.
    process_count: number of hosts.
    skip_batches: batches already consumed (resume).
    shuffle_buffer: records in tf.data's shuffle buffer.
    parallel_calls: concurrent preprocessing calls.
  """
  _check_files(paths)
  per_host = len(range(num_records)[process_index::process_count])
  if per_host == 0:
    raise ShardError(f"host {process_index} of {process_count} has no records: the split has only {num_records}")
  records = tf.data.TFRecordDataset(list(paths)).enumerate().shard(process_count, process_index)
  records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat(num_epochs)
  triples = records.enumerate().map(lambda position, pair: (position // per_host, pair[0], pair[1]))
  triples = triples.skip(skip_batches * batch_size)
  examples = _map_preprocessing(triples, preprocessor.element_spec(train=True),
                                lambda serialized, epoch, record_id: preprocessor.train_example(serialized, epoch,
                                                                                                record_id),
                                parallel_calls)
  return examples.batch(batch_size, drop_remainder=True).prefetch(2)


def test_dataset(paths: Sequence[str], preprocessor: ClipPreprocessor, *, batch_size: int, num_records: int,
                 process_index: int = 0, process_count: int = 1,
                 parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """One ordered pass over this host's records, padded with mask-0 copies of its first to equal batch counts."""
  _check_files(paths)
  per_host = math.ceil(num_records / process_count)
  padded = math.ceil(per_host / batch_size) * batch_size
  records = tf.data.TFRecordDataset(list(paths)).enumerate().shard(process_count, process_index)
  real = records.map(lambda record_id, serialized: (tf.constant(1, tf.int64), record_id, serialized))
  fill = records.take(1).repeat().map(lambda record_id, serialized: (tf.constant(0, tf.int64), record_id, serialized))
  triples = real.concatenate(fill).take(padded)
  examples = _map_preprocessing(triples, preprocessor.element_spec(train=False),
                                lambda serialized, real_flag, record_id: preprocessor.test_example(
                                    serialized, record_id, mask=float(real_flag)), parallel_calls)
  return examples.batch(batch_size).prefetch(2)


def numpy_batches(dataset: tf.data.Dataset, paths: Sequence[str]) -> Iterator[Any]:
  """Iterates a dataset as numpy, turning shard corruption into ShardError."""
  iterator = dataset.as_numpy_iterator()
  while True:
    try:
      yield next(iterator)
    except StopIteration:
      return
    except tf.errors.DataLossError as error:
      raise ShardError(f"a TFRecord shard is truncated or corrupt (one of {len(paths)}: "
                       f"{', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}): {error.message}") from error
