"""Writing encoded clips into TFRecord and ArrayRecord shards.

Clips go to shard ``hash(clip_id) % num_shards``: the assignment depends only
on the clip id and the shard count, never on the order clips arrive in, so a
re-run or a refresh over the same clips writes the same shards. Within a shard
records are sorted by clip id, for the same reason.

A shard is written under a temporary name and renamed when complete, so a
worker killed mid-shard leaves no file that looks like a finished shard; the
build manifest, written last, is what marks a build complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from typing import Iterable, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np

from shared import files, layout, records
from shared.layout import ARRAYRECORD, FORMATS, TFRECORD


class EncodedClip(NamedTuple):
  """A clip ready for a shard, with the log-mel moments the manifest needs.

  Attributes:
    clip_id: the clip's id.
    serialized: SequenceExample bytes (shared.records.encode); empty once staged.
    melspec_sum: sum of the clip's log-mel values.
    melspec_sum_squares: sum of their squares.
    melspec_count: number of log-mel values.
    staged_path: where StageClips put the bytes, if it did.
    has_audio: False when the source had no audio (its log-mel is silence's:
      left out of the build's log-mel moments).
    origin: where the record came from (shared.manifest.ClipOrigin), for
      the manifest; None where the step that made it does not say.
  """

  clip_id: str
  serialized: bytes
  melspec_sum: float
  melspec_sum_squares: float
  melspec_count: int
  staged_path: Optional[str] = None
  has_audio: bool = True
  origin: Optional[str] = None

  def payload(self) -> bytes:
    """The record's bytes, from the clip itself or from its staged file."""
    if self.staged_path is None:
      return self.serialized
    return files.read_bytes(self.staged_path)

  @classmethod
  def from_record(cls, record: records.ClipRecord, serialized: bytes | None = None,
                  origin: Optional[str] = None) -> "EncodedClip":
    melspec = np.asarray(record.melspec, np.float64)
    return cls(record.clip_id, serialized if serialized is not None else records.encode(record),
               float(melspec.sum()), float(np.square(melspec).sum()), int(melspec.size), has_audio=record.has_audio,
               origin=origin)


@dataclasses.dataclass(frozen=True)
class ShardInfo:
  """What one written shard holds.

  Attributes:
    index: shard index.
    files: format name -> file name (relative to the output directory).
    clip_ids: the clips in the shard, in file order.
    num_bytes: total serialized bytes of the records.
    file_sizes: file name -> its size in bytes.
  """

  index: int
  files: dict
  clip_ids: tuple
  num_bytes: int
  file_sizes: dict = dataclasses.field(default_factory=dict)


def read_shard_records(path: str) -> Iterable[bytes]:
  """The serialized records of a shard file, TFRecord or ArrayRecord by its name (local or gs://)."""
  if path.endswith(records.ARRAY_RECORD_SUFFIX):
    return records.read_array_record(path)
  return records.read_tfrecord(path)


def num_shards_for(num_clips: int, clips_per_shard: int) -> int:
  """Shard count for a build: at least one, about clips_per_shard clips each."""
  if clips_per_shard <= 0:
    raise ValueError(f"clips_per_shard must be positive, got {clips_per_shard}")
  return max(1, -(-num_clips // clips_per_shard))


def shard_of(clip_id: str, num_shards: int) -> int:
  """The shard a clip belongs to: a stable hash of its id (not Python's hash())."""
  digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


def write_shard_files(output_dir: str, prefix: str, index: int, num_shards: int,
                      clips: Iterable[EncodedClip], formats: Sequence[str]) -> ShardInfo:
  """Writes one shard in each format, each under a temporary name then renamed.

  The formats are written side by side, one record at a time: each record is
  read (from its staged file) once, and only one is held, where a shard's
  records together can be gigabytes (64 clips of a long EPIC action).
  """
  ordered = sorted(clips, key=lambda clip: clip.clip_id)
  ids = [clip.clip_id for clip in ordered]
  if len(set(ids)) != len(ids):
    raise ValueError(f"shard {index}: a clip id appears twice")
  build = layout.BuildLayout(output_dir)
  writers = {TFRECORD: records.tfrecord_writer, ARRAYRECORD: records.array_record_writer}
  shard_files = {file_format: layout.shard_file_name(prefix, index, num_shards, file_format)
                 for file_format in FORMATS if file_format in formats}
  num_bytes = 0
  with contextlib.ExitStack() as open_files:  # each file takes its name only once every record is in it
    writes = [open_files.enter_context(writers[file_format](build.path(name)))
              for file_format, name in shard_files.items()]
    for clip in ordered:
      serialized = clip.payload()
      for write in writes:
        write(serialized)
      num_bytes += len(serialized)
      del serialized  # before the next record is read
  for clip in ordered:  # the shard holds them now
    if clip.staged_path is not None:
      _remove(clip.staged_path)
  sizes = {name: files.size(build.path(name)) for name in shard_files.values()}
  return ShardInfo(index=index, files=shard_files, clip_ids=tuple(ids), num_bytes=num_bytes, file_sizes=sizes)


def _remove(path: str) -> None:
  try:
    files.delete(path)
  except Exception as error:  # a leftover staging file costs space, never correctness
    logging.warning("could not remove staged file %s: %s", path, error)


def stage_clip(staging_dir: str, clip: EncodedClip) -> EncodedClip:
  """Writes a clip's bytes to its file under `staging_dir` (atomically); returns the light clip naming it."""
  path = files.join(staging_dir, layout.staged_record_name(clip.clip_id))
  files.write_bytes(path, clip.serialized)
  return clip._replace(serialized=b"", staged_path=path)


class _StageClipFn(beam.DoFn):
  """Writes a clip's bytes to a file of its own and passes on a light EncodedClip."""

  def __init__(self, staging_dir: str):
    self._staging_dir = staging_dir

  def setup(self):
    files.makedirs(self._staging_dir)

  def process(self, clip: EncodedClip):
    yield stage_clip(self._staging_dir, clip)


class StageClips(beam.PTransform):
  """EncodedClips -> the same, their bytes moved to files under `staging_dir`.

  Grouping clips into shards moves every clip through the runner's shuffle; on
  a local runner that is the launcher process, which would hold every record
  in memory. Staged, only ids, paths and moments travel; the shard writer
  reads the bytes back and removes the files. Apply it right after the step
  that makes the records, so that it runs in the same worker; better, stage
  them in that step (as features.ExtractFeatures does with a staging_dir),
  so that no PCollection holds the bytes at all.
  """

  def __init__(self, staging_dir: str):
    super().__init__()
    self._staging_dir = staging_dir

  def expand(self, clips):
    return clips | "WriteStagedRecord" >> beam.ParDo(_StageClipFn(self._staging_dir))


class _WriteShardFn(beam.DoFn):
  """Writes the clips grouped under one shard index."""

  def __init__(self, output_dir: str, prefix: str, num_shards: int, formats: Sequence[str]):
    self._output_dir = output_dir
    self._prefix = prefix
    self._num_shards = num_shards
    self._formats = tuple(formats)
    self._shards_written = beam.metrics.Metrics.counter("shards", "shards_written")

  def process(self, element):
    index, clips = element
    clips = [clip for clip in clips if clip is not None]  # None marks an empty shard
    info = write_shard_files(self._output_dir, self._prefix, index, self._num_shards, clips, self._formats)
    self._shards_written.inc()
    yield info


class WriteShards(beam.PTransform):
  """EncodedClips -> shard files; outputs one ShardInfo per shard (empty shards too).

  Every index in 0..num_shards-1 gets its files, so `NAME-*-of-N` is always
  a complete set, as Scenic's reader assumes.
  """

  def __init__(self, output_dir: str, prefix: str, num_shards: int, formats: Sequence[str] = FORMATS):
    super().__init__()
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
      raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    self._output_dir = output_dir
    self._prefix = prefix
    self._num_shards = num_shards
    self._formats = tuple(formats)

  def expand(self, clips):
    num_shards = self._num_shards
    keyed = clips | "KeyByShard" >> beam.Map(lambda clip: (shard_of(clip.clip_id, num_shards), clip))
    # Made on a worker: the graph stays the same size whatever the number of shards.
    every_shard = (clips.pipeline
                   | "ShardCount" >> beam.Create([num_shards])
                   | "EveryShardIndex" >> beam.FlatMap(lambda count: ((index, None) for index in range(count))))
    return ((keyed, every_shard)
            | "MergeWithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShardFiles" >> beam.ParDo(
                _WriteShardFn(self._output_dir, self._prefix, num_shards, self._formats)))
