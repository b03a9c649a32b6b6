"""From a config to host-local batch iterators (grain or tf.data).

`config.data.format` picks the pipeline: 'arrayrecord' (grain; exact iterator
state in checkpoints) or 'tfrecord' (tf.data; resumed by skipping the batches
already consumed). Both use the same `ClipPreprocessor`, built here from the
config and the build's manifest:

* the window: `config.model.num_frames` frames with stride
  `config.data.frame_stride` (default t * 25 / num_frames with
  t = `config.data.window_seconds`) and `config.model.spectrogram_rows` rows;
* crops of `config.model.image_size`, resized from `config.data.min_resize`;
* the log-mel mean / std: `config.data.melspec_mean/std` when set, else the
  manifest's;
* label shapes: `config.model.num_classes` or `config.model.class_heads`,
  checked against the manifest's label map.
"""

from __future__ import annotations

from typing import Any, Iterator

import ml_collections

from shared import contract, files, layout
from shared.records import RecordError
from trainer.data import grain_input, manifest as manifest_lib, preprocess, sampling, tfdata_input


class ConfigError(ValueError):
  """The config does not fit the data it points at."""


def label_kind(config: ml_collections.ConfigDict) -> str:
  """How the config's dataset turns labels into targets (preprocess.MULTI_HOT, ...)."""
  try:
    return preprocess.LABEL_KINDS[config.dataset]
  except KeyError:
    raise ConfigError(
        f"config.dataset must be one of {sorted(preprocess.LABEL_KINDS)}, got {config.dataset!r}") from None


def window_spec(config: ml_collections.ConfigDict) -> sampling.WindowSpec:
  """The sampled window: the model's frames and rows, the data config's stride."""
  model, data = config.model, config.data
  modalities = tuple(model.modalities)
  num_frames = model.num_frames if "rgb" in modalities else 0
  rows = model.spectrogram_rows if "spectrogram" in modalities else 0
  stride = data.get("frame_stride")
  if stride is None:
    stride = data.window_seconds * contract.VIDEO_FPS / max(model.num_frames, 1)
  return sampling.WindowSpec(num_frames=num_frames, frame_stride=float(stride), spectrogram_rows=rows)


def check_labels(config: ml_collections.ConfigDict, manifest: manifest_lib.BuildManifest) -> None:
  """Refuses a build whose dataset or label maps do not fit the model's heads."""
  if manifest.dataset != config.dataset:
    raise ConfigError(f"{manifest.directory} holds {manifest.dataset!r} clips, the config trains {config.dataset!r}")
  if label_kind(config) == preprocess.VERB_NOUN:
    for head, size in dict(config.model.class_heads).items():
      label_map = manifest.head_label_map(head)
      if label_map is not None and len(label_map) != size:
        raise ConfigError(f"{manifest.directory}: {len(label_map)} {head} classes, "
                          f"config.model.class_heads.{head} = {size}")
  elif len(manifest.label_map) != config.model.num_classes:
    raise ConfigError(f"{manifest.directory}: label map has {len(manifest.label_map)} classes, "
                      f"config.model.num_classes = {config.model.num_classes}")


def make_preprocessor(config: ml_collections.ConfigDict,
                      manifest: manifest_lib.BuildManifest) -> preprocess.ClipPreprocessor:
  """The preprocessor for `manifest`'s build under `config`."""
  check_labels(config, manifest)
  data = config.data
  mean, std = data.get("melspec_mean"), data.get("melspec_std")
  augment = data.spec_augment
  spec_augment = preprocess.SpecAugment(
      time_mask_max_rows=augment.time_mask_max_rows, time_mask_count=augment.time_mask_count,
      freq_mask_max_bins=augment.freq_mask_max_bins, freq_mask_count=augment.freq_mask_count)
  return preprocess.ClipPreprocessor(
      window=window_spec(config),
      modalities=tuple(config.model.modalities),
      label_kind=label_kind(config),
      num_classes=config.model.get("num_classes", 0) or 0,
      class_heads=tuple(sorted(dict(config.model.get("class_heads") or {}).items())),
      melspec_mean=manifest.melspec_mean if mean is None else mean,
      melspec_std=manifest.melspec_std if std is None else std,
      crop_size=config.model.image_size,
      min_resize=data.min_resize,
      num_test_crops=data.num_test_crops,
      flip=data.flip,
      color_jitter=preprocess.ColorJitter(**data.color_jitter.to_dict()) if data.color_jitter.probability > 0 else None,
      spec_augment=spec_augment if (augment.time_mask_count or augment.freq_mask_count) else None,
      seed=config.seed,
  )


# What a build that does not hold what it claims raises: the entry points turn
# these into a clear message and a non-zero exit.
DATA_ERRORS = (grain_input.ShardError, RecordError, manifest_lib.ManifestError, contract.ContractMismatchError,
               ConfigError)
DATA_ERROR_EXIT_CODE = 3


def open_shards(manifest: manifest_lib.BuildManifest, file_format: str, verify_every_read: bool = False):
  """The build's shards of `file_format`, their record count checked against the manifest.

  `verify_every_read` applies to ArrayRecord shards (see grain_input.ArrayRecordShards).

  Returns:
    grain_input.ArrayRecordShards or tfdata_input.TFRecordShards.

  Raises:
    ShardError: a shard is missing or damaged, or the shards hold another
      number of records than the manifest says were written.
  """
  if file_format == layout.ARRAYRECORD:
    shards = grain_input.ArrayRecordShards(manifest.shard_paths(layout.ARRAYRECORD), verify_every_read)
  elif file_format == layout.TFRECORD:
    sizes, counts = manifest.shard_sizes_and_counts(layout.TFRECORD) or (None, None)
    shards = tfdata_input.TFRecordShards(manifest.shard_paths(layout.TFRECORD), sizes=sizes, counts=counts)
  else:
    raise ConfigError(f"config.data.format must be one of {layout.FORMATS}, got {file_format!r}")
  if manifest.num_records != len(shards):
    raise grain_input.ShardError(f"{manifest.directory}: manifest counts {manifest.num_records} records, "
                                 f"the {file_format} shards hold {len(shards)}")
  return shards


class TrainInput:
  """This host's training batches for a config, from step `start_step` on.

  Attributes:
    manifest: the training build's manifest.
    preprocessor: the example preprocessor.
    num_records: records in the training split.
    iterator: yields host-local batches (nested dicts of numpy arrays).
    grain_iterator: the grain DatasetIterator whose state checkpoints save,
      or None for tf.data.
  """

  def __init__(self, config: ml_collections.ConfigDict, *, local_batch_size: int, process_index: int = 0,
               process_count: int = 1, start_step: int = 0):
    data = config.data
    self.manifest = manifest_lib.read_manifest(files.absolute(data.train_dir))
    self.preprocessor = make_preprocessor(config, self.manifest)
    self.grain_iterator = None
    shards = open_shards(self.manifest, data.format, data.get("verify_every_read", False))
    self.num_records = len(shards)
    if data.format == layout.ARRAYRECORD:
      dataset = grain_input.train_dataset(
          shards, self.preprocessor, batch_size=local_batch_size, seed=config.seed, process_index=process_index,
          process_count=process_count, read_threads=data.read_threads, worker_count=data.worker_count)
      # A restored checkpoint sets the exact state; start_step only applies to tf.data.
      self.grain_iterator = iter(dataset)
      self.iterator = self.grain_iterator
    else:
      dataset = tfdata_input.train_dataset(
          shards, self.preprocessor, batch_size=local_batch_size, seed=config.seed, process_index=process_index,
          process_count=process_count, skip_batches=start_step, shuffle_buffer=data.shuffle_buffer)
      self.iterator = tfdata_input.numpy_batches(dataset, shards)

  def __iter__(self) -> Iterator[Any]:
    return self.iterator

  def close(self) -> None:
    """Stops the pipeline's threads and worker processes now, not at interpreter exit."""
    close = getattr(self.iterator, "close", None)
    if close is not None:
      close()


def test_batches(config: ml_collections.ConfigDict, directory: str, *, local_batch_size: int,
                 process_index: int = 0, process_count: int = 1):
  """(manifest, preprocessor, iterable of this host's test batches) for one pass over `directory`."""
  data = config.data
  manifest = manifest_lib.read_manifest(files.absolute(directory))
  preprocessor = make_preprocessor(config, manifest)
  shards = open_shards(manifest, data.format, data.get("verify_every_read", False))
  if data.format == layout.ARRAYRECORD:
    dataset = grain_input.test_dataset(shards, preprocessor, batch_size=local_batch_size,
                                       process_index=process_index, process_count=process_count,
                                       read_threads=data.read_threads, worker_count=data.worker_count)
    return manifest, preprocessor, dataset
  dataset = tfdata_input.test_dataset(shards, preprocessor, batch_size=local_batch_size, process_index=process_index,
                                      process_count=process_count)
  return manifest, preprocessor, tfdata_input.numpy_batches(dataset, shards)
