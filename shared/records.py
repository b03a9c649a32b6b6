"""The on-disk record: one clip as a `tf.train.SequenceExample`.

The layout is the one Scenic's MBT reader accepts unchanged (see
:data:`SCENIC_CONTEXT_FEATURES` / :data:`SCENIC_SEQUENCE_FEATURES`), plus our own
context keys from :mod:`shared.contract`. The same serialized bytes go into
TFRecord shards (what Scenic reads) and ArrayRecord shards (what grain reads by
index), so both formats hold byte-identical records.

Encoding and decoding here are plain protobuf work on TensorFlow's message
definitions declared without TensorFlow (shared/example_proto.py), so a Beam or
grain worker can call them per element without loading TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
import tempfile
from typing import Callable, Iterable, Iterator, Optional, Sequence

import google_crc32c
import numpy as np

from shared import contract, files
from shared import example_proto as pb

# Shard files are named like Scenic's tables: NAME-00000-of-00016.
SHARD_NAME_FORMAT = "{prefix}-{index:05d}-of-{count:05d}"
ARRAY_RECORD_SUFFIX = ".array_record"
# One record per chunk lets grain read any single record without its neighbours;
# uncompressed because JPEG frames do not shrink (brotli saved 1.5%) and reads slow down.
ARRAY_RECORD_WRITER_OPTIONS = "group_size:1,uncompressed"


class RecordError(ValueError):
  """A serialized record does not hold a valid clip under this contract."""


@dataclasses.dataclass(frozen=True)
class ClipRecord:
  """One clip with its features and labels, as stored in a shard.

  Attributes:
    clip_id: unique, filesystem-safe id of the clip within its dataset.
    dataset: dataset name, e.g. "vggsound", "audioset", "epic_kitchens".
    source_id: YouTube id or EPIC-KITCHENS video id the clip was cut from.
    start_s: span start in the source, seconds.
    end_s: span end in the source, seconds.
    jpeg_frames: one JPEG per contract.VIDEO_FPS frame of the span.
    frame_width: width of the stored frames.
    frame_height: height of the stored frames.
    melspec: float32 [rows, contract.MEL_NUM_BINS] log-mel of the span, rows =
      contract.num_mel_rows(num_audio_samples); padded to whole seconds on disk.
    num_audio_samples: 16 kHz samples behind the log-mel.
    label_indices: class indices (multi-hot for AudioSet, one for VGGSound).
    label_names: class names, one per index.
    has_audio: False when the source had no audio stream (melspec of silence).
    has_video: False when the source had no video stream (black frames of
      contract.blank_frame_size); records written before the key read True.
    decoded_duration_s: how much of the span real media covered; less than
      end_s - start_s when the source ended early and frames were padded.
    source_fps: the source's native frame rate.
    source_width: the source's frame width.
    source_height: the source's frame height.
    verb_index: EPIC-KITCHENS verb class, or contract.NO_LABEL.
    noun_index: EPIC-KITCHENS noun class, or contract.NO_LABEL.
    action_index: EPIC-KITCHENS action class, or contract.NO_LABEL.
    schema_version: the contract version the record was written under.
  """

  clip_id: str
  dataset: str
  source_id: str
  start_s: float
  end_s: float
  jpeg_frames: Sequence[bytes]
  frame_width: int
  frame_height: int
  melspec: np.ndarray
  num_audio_samples: int
  label_indices: Sequence[int]
  label_names: Sequence[str]
  has_audio: bool
  decoded_duration_s: float
  source_fps: float
  source_width: int
  source_height: int
  verb_index: int = contract.NO_LABEL
  noun_index: int = contract.NO_LABEL
  action_index: int = contract.NO_LABEL
  schema_version: int = contract.SCHEMA_VERSION
  has_video: bool = True

  def validate(self) -> None:
    """Raises RecordError if the clip breaks the contract's shape rules."""
    problems = []
    if not self.clip_id:
      problems.append("empty clip id")
    if not self.end_s > self.start_s:
      problems.append(f"span [{self.start_s}, {self.end_s}] is empty")
    if not self.jpeg_frames:
      problems.append("no frames")
    melspec = np.asarray(self.melspec)
    if melspec.ndim != 2 or melspec.shape[1] != contract.MEL_NUM_BINS:
      problems.append(f"melspec shape {melspec.shape} is not [rows, {contract.MEL_NUM_BINS}]")
    elif melspec.shape[0] != contract.num_mel_rows(self.num_audio_samples):
      problems.append(f"melspec has {melspec.shape[0]} rows, {self.num_audio_samples} samples make "
                      f"{contract.num_mel_rows(self.num_audio_samples)}")
    if len(self.label_indices) != len(self.label_names):
      problems.append(f"{len(self.label_indices)} label indices but {len(self.label_names)} names")
    if problems:
      raise RecordError(f"clip {self.clip_id!r}: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# What Scenic's MBT reader (DMVR's add_image / add_label, Scenic's
# add_spectrogram) parses. Our records must parse with exactly this spec.
# ---------------------------------------------------------------------------
def scenic_feature_spec():
  """(context_features, sequence_features) as Scenic's MBT reader declares them."""
  import tensorflow as tf

  context = {contract.LABEL_INDEX_KEY: tf.io.VarLenFeature(dtype=tf.int64)}
  sequence = {
      contract.IMAGE_KEY: tf.io.FixedLenSequenceFeature((), dtype=tf.string),
      contract.MELSPEC_KEY: tf.io.FixedLenSequenceFeature(
          shape=(contract.MELSPEC_STEP_ROWS, contract.MEL_NUM_BINS), dtype=tf.float32),
  }
  return context, sequence


# ---------------------------------------------------------------------------
# Encoding.
# ---------------------------------------------------------------------------
def _bytes(values: Iterable[bytes]) -> pb.Feature:
  return pb.Feature(bytes_list=pb.BytesList(value=list(values)))


def _ints(values: Iterable[int]) -> pb.Feature:
  return pb.Feature(int64_list=pb.Int64List(value=[int(v) for v in values]))


def _floats(values) -> pb.Feature:
  return pb.Feature(float_list=pb.FloatList(value=values))


def melspec_to_steps(melspec: np.ndarray) -> np.ndarray:
  """[rows, bins] -> [steps, MELSPEC_STEP_FLOATS]: step i is second i, row-major, the last zero padded."""
  melspec = np.asarray(melspec)
  if melspec.ndim != 2 or melspec.shape[1] != contract.MEL_NUM_BINS or melspec.shape[0] == 0:
    raise ValueError(f"melspec must be [rows > 0, {contract.MEL_NUM_BINS}], got shape {melspec.shape}")
  rows = melspec.shape[0]
  steps = contract.num_melspec_steps(rows)
  padded = np.zeros((steps * contract.MELSPEC_STEP_ROWS, contract.MEL_NUM_BINS), np.float32)
  padded[:rows] = melspec
  return padded.reshape(steps, contract.MELSPEC_STEP_FLOATS)


def encode(record: ClipRecord) -> bytes:
  """Serializes a clip to SequenceExample bytes (validated first)."""
  record.validate()
  example = pb.SequenceExample()
  context = example.context.feature
  context[contract.LABEL_INDEX_KEY].CopyFrom(_ints(record.label_indices))
  context[contract.LABEL_TEXT_KEY].CopyFrom(_bytes(n.encode("utf-8") for n in record.label_names))
  context[contract.SCHEMA_VERSION_KEY].CopyFrom(_ints([record.schema_version]))
  context[contract.DATASET_KEY].CopyFrom(_bytes([record.dataset.encode("utf-8")]))
  context[contract.CLIP_ID_KEY].CopyFrom(_bytes([record.clip_id.encode("utf-8")]))
  context[contract.SOURCE_ID_KEY].CopyFrom(_bytes([record.source_id.encode("utf-8")]))
  context[contract.START_KEY].CopyFrom(_floats([record.start_s]))
  context[contract.END_KEY].CopyFrom(_floats([record.end_s]))
  context[contract.VERB_INDEX_KEY].CopyFrom(_ints([record.verb_index]))
  context[contract.NOUN_INDEX_KEY].CopyFrom(_ints([record.noun_index]))
  context[contract.ACTION_INDEX_KEY].CopyFrom(_ints([record.action_index]))
  context[contract.HAS_AUDIO_KEY].CopyFrom(_ints([int(record.has_audio)]))
  context[contract.HAS_VIDEO_KEY].CopyFrom(_ints([int(record.has_video)]))
  context[contract.DECODED_DURATION_KEY].CopyFrom(_floats([record.decoded_duration_s]))
  context[contract.SOURCE_FPS_KEY].CopyFrom(_floats([record.source_fps]))
  context[contract.SOURCE_WIDTH_KEY].CopyFrom(_ints([record.source_width]))
  context[contract.SOURCE_HEIGHT_KEY].CopyFrom(_ints([record.source_height]))
  context[contract.FRAME_WIDTH_KEY].CopyFrom(_ints([record.frame_width]))
  context[contract.FRAME_HEIGHT_KEY].CopyFrom(_ints([record.frame_height]))
  context[contract.NUM_FRAMES_KEY].CopyFrom(_ints([len(record.jpeg_frames)]))
  context[contract.NUM_AUDIO_SAMPLES_KEY].CopyFrom(_ints([record.num_audio_samples]))

  # The two feature lists are written straight in the wire format: as
  # messages, every JPEG is copied into the message and again into its
  # serialization (a 150 s span with 252 MB of JPEGs peaked at 1.35 GB; 0.59 GB
  # this way). Here the output is the only copy; the JPEGs are referenced.
  images = [_feature_list_entry(contract.IMAGE_KEY, [
      _length_delimited(_BYTES_LIST_TAG, _length_delimited(_VALUE_TAG, jpeg)) for jpeg in record.jpeg_frames])]
  melspec_steps = [_length_delimited(_FLOAT_LIST_TAG, _length_delimited(_VALUE_TAG, [step.astype("<f4").tobytes()]))
                   for step in melspec_to_steps(np.asarray(record.melspec, np.float32))]
  lists = images + [_feature_list_entry(contract.MELSPEC_KEY, melspec_steps)]
  # Deterministic: the context's map entries in key order, so the same clip gives the same bytes in every
  # process (protobuf's default order follows each process's hash seed); the lists above are in a fixed order.
  return b"".join(_flatten([example.SerializeToString(deterministic=True),
                            _length_delimited(_FEATURE_LISTS_TAG, lists)]))


# Wire-format field keys (field number << 3 | 2, length-delimited) of the
# messages encode() writes by hand: tensorflow/core/example/{feature,example}.proto.
_FEATURE_LISTS_TAG = b"\x12"  # SequenceExample.feature_lists = 2
_MAP_ENTRY_TAG = b"\x0a"  # FeatureLists.feature_list = 1 (map entries)
_MAP_KEY_TAG = b"\x0a"  # map entry key = 1
_MAP_VALUE_TAG = b"\x12"  # map entry value = 2
_FEATURE_TAG = b"\x0a"  # FeatureList.feature = 1
_BYTES_LIST_TAG = b"\x0a"  # Feature.bytes_list = 1
_FLOAT_LIST_TAG = b"\x12"  # Feature.float_list = 2
_VALUE_TAG = b"\x0a"  # BytesList.value = 1, FloatList.value = 1 (packed)


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    low, value = value & 0x7F, value >> 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


class _Parts(list):
  """Byte strings (or nested _Parts) that concatenate to one message; len is their total size."""

  def __init__(self, parts):
    super().__init__(parts)
    self.size = sum(p.size if isinstance(p, _Parts) else len(p) for p in parts)


def _length_delimited(tag: bytes, content) -> _Parts:
  """A length-delimited field: its key, the content's size, the content (bytes or parts, not copied)."""
  if not isinstance(content, _Parts):
    content = _Parts(content if isinstance(content, list) else [content])
  return _Parts([tag, _varint(content.size), content])


def _feature_list_entry(key: str, features: list) -> _Parts:
  """One FeatureLists map entry: key -> FeatureList of the given serialized Features."""
  feature_list = _Parts([_length_delimited(_FEATURE_TAG, feature) for feature in features])
  return _length_delimited(_MAP_ENTRY_TAG, [_length_delimited(_MAP_KEY_TAG, key.encode("utf-8")),
                                            _length_delimited(_MAP_VALUE_TAG, feature_list)])


def _flatten(parts) -> Iterator[bytes]:
  for part in parts:
    if isinstance(part, (bytes, bytearray, memoryview)):
      yield part
    else:
      yield from _flatten(part)


# ---------------------------------------------------------------------------
# Decoding.
# ---------------------------------------------------------------------------
def _one(context, key: str, kind: str, clip: str):
  if key not in context:
    raise RecordError(f"record {clip}: missing context feature {key!r}")
  values = getattr(context[key], kind).value
  if len(values) != 1:
    raise RecordError(f"record {clip}: {key!r} has {len(values)} values, expected 1")
  return values[0]


def decode(serialized: bytes, check_schema: bool = True) -> ClipRecord:
  """Parses SequenceExample bytes written by :func:`encode` back into a ClipRecord.

  Raises:
    RecordError: the bytes are not a record of this contract (or, with
      check_schema, were written under another schema version).
  """
  example = pb.SequenceExample()
  try:
    example.ParseFromString(serialized)
  except Exception as error:  # protobuf raises its own DecodeError type
    raise RecordError(f"not a SequenceExample: {error}") from error
  context = example.context.feature
  clip_id = _one(context, contract.CLIP_ID_KEY, "bytes_list", "?").decode("utf-8")
  schema = _one(context, contract.SCHEMA_VERSION_KEY, "int64_list", clip_id)
  if check_schema and schema != contract.SCHEMA_VERSION:
    raise RecordError(f"record {clip_id}: schema version {schema}, this code reads {contract.SCHEMA_VERSION}")
  lists = example.feature_lists.feature_list
  jpeg_frames = [f.bytes_list.value[0] for f in lists[contract.IMAGE_KEY].feature]
  num_samples = _one(context, contract.NUM_AUDIO_SAMPLES_KEY, "int64_list", clip_id)
  steps = [np.asarray(f.float_list.value, np.float32) for f in lists[contract.MELSPEC_KEY].feature]
  if any(step.size != contract.MELSPEC_STEP_FLOATS for step in steps):
    raise RecordError(f"record {clip_id}: a melspec step is not {contract.MELSPEC_STEP_FLOATS} floats")
  melspec = (np.concatenate(steps) if steps else np.zeros(0, np.float32)).reshape(-1, contract.MEL_NUM_BINS)
  rows = contract.num_mel_rows(num_samples)
  if melspec.shape[0] < rows:
    raise RecordError(f"record {clip_id}: melspec has {melspec.shape[0]} rows, expected {rows}")
  return ClipRecord(
      clip_id=clip_id,
      dataset=_one(context, contract.DATASET_KEY, "bytes_list", clip_id).decode("utf-8"),
      source_id=_one(context, contract.SOURCE_ID_KEY, "bytes_list", clip_id).decode("utf-8"),
      start_s=_one(context, contract.START_KEY, "float_list", clip_id),
      end_s=_one(context, contract.END_KEY, "float_list", clip_id),
      jpeg_frames=jpeg_frames,
      frame_width=_one(context, contract.FRAME_WIDTH_KEY, "int64_list", clip_id),
      frame_height=_one(context, contract.FRAME_HEIGHT_KEY, "int64_list", clip_id),
      melspec=melspec[:rows],
      num_audio_samples=num_samples,
      label_indices=list(context[contract.LABEL_INDEX_KEY].int64_list.value),
      label_names=[n.decode("utf-8") for n in context[contract.LABEL_TEXT_KEY].bytes_list.value],
      has_audio=bool(_one(context, contract.HAS_AUDIO_KEY, "int64_list", clip_id)),
      decoded_duration_s=_one(context, contract.DECODED_DURATION_KEY, "float_list", clip_id),
      source_fps=_one(context, contract.SOURCE_FPS_KEY, "float_list", clip_id),
      source_width=_one(context, contract.SOURCE_WIDTH_KEY, "int64_list", clip_id),
      source_height=_one(context, contract.SOURCE_HEIGHT_KEY, "int64_list", clip_id),
      verb_index=_one(context, contract.VERB_INDEX_KEY, "int64_list", clip_id),
      noun_index=_one(context, contract.NOUN_INDEX_KEY, "int64_list", clip_id),
      action_index=_one(context, contract.ACTION_INDEX_KEY, "int64_list", clip_id),
      schema_version=schema,
      # Written since audio-only sources are built; every record before had video.
      has_video=bool(_one(context, contract.HAS_VIDEO_KEY, "int64_list", clip_id))
      if contract.HAS_VIDEO_KEY in context else True,
  )


# ---------------------------------------------------------------------------
# Shard files. The pipelines write shards through Beam; these small writers and
# readers serve tests, tools and the trainer, and define the file names.
# ---------------------------------------------------------------------------
def shard_name(prefix: str, index: int, count: int) -> str:
  """NAME-00000-of-00016, the shard naming Scenic's reader expects."""
  if not 0 <= index < count:
    raise ValueError(f"shard index {index} outside 0..{count - 1}")
  return SHARD_NAME_FORMAT.format(prefix=prefix, index=index, count=count)


# TFRecord framing, per record: uint64 length, masked CRC-32C of the length,
# the data, masked CRC-32C of the data (all little endian). Written here rather
# than through tf.io so that writers need no TensorFlow.
_CRC_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> int:
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _tfrecord_header_and_footer(serialized: bytes) -> tuple[bytes, bytes]:
  """TFRecord's framing of one record: its length and that length's CRC before it, its CRC after."""
  length = struct.pack("<Q", len(serialized))
  return length + struct.pack("<I", _masked_crc(length)), struct.pack("<I", _masked_crc(serialized))


@contextlib.contextmanager
def tfrecord_writer(path: str) -> Iterator[Callable[[bytes], None]]:
  """An uncompressed TFRecord file written atomically (local or gs://; see shared.files.atomic_writer).

  Yields the function that appends one serialized record; the file appears
  under `path` when the block ends without an error.
  """
  with files.atomic_writer(path) as f:
    def write(serialized: bytes) -> None:
      header, footer = _tfrecord_header_and_footer(serialized)
      # Three writes rather than one framed copy: records are megabytes.
      f.write(header)
      f.write(serialized)
      f.write(footer)

    yield write


def write_tfrecord(path: str, serialized_records: Iterable[bytes]) -> int:
  """Writes an uncompressed TFRecord file atomically (local or gs://; see shared.files.atomic_writer)."""
  return _write_all(tfrecord_writer(path), serialized_records)


def _write_all(writer, serialized_records: Iterable[bytes]) -> int:
  count = 0
  with writer as write:
    for serialized in serialized_records:
      write(serialized)
      count += 1
  return count


def read_tfrecord(path: str) -> Iterator[bytes]:
  """Yields the serialized records of a TFRecord file, checking every CRC.

  Raises:
    RecordError: the file is truncated or corrupt (naming the file and offset).
  """
  with files.open_read(path) as f:
    offset = 0
    while True:
      header = f.read(12)
      if not header:
        return
      if len(header) < 12:
        raise RecordError(f"{path}: truncated record header at byte {offset}")
      length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
      if _masked_crc(length_bytes) != length_crc:
        raise RecordError(f"{path}: corrupt record length at byte {offset}")
      (length,) = struct.unpack("<Q", length_bytes)
      data = f.read(length)
      footer = f.read(4)
      if len(data) < length or len(footer) < 4:
        raise RecordError(f"{path}: truncated record at byte {offset} ({len(data)} of {length} bytes)")
      if _masked_crc(data) != struct.unpack("<I", footer)[0]:
        raise RecordError(f"{path}: corrupt record data at byte {offset}")
      offset += 16 + length
      yield data


@contextlib.contextmanager
def array_record_writer(path: str) -> Iterator[Callable[[bytes], None]]:
  """An ArrayRecord file written atomically (local or gs://).

  Yields the function that appends one serialized record; the file appears
  under `path` when the block ends without an error. ArrayRecord's writer
  opens local files only: elsewhere the file is written locally first, then
  uploaded.
  """
  from array_record.python.array_record_module import ArrayRecordWriter

  if files.is_remote(path):
    with tempfile.TemporaryDirectory(prefix="mbt-shard-") as scratch:
      local = os.path.join(scratch, "shard" + ARRAY_RECORD_SUFFIX)
      with array_record_writer(local) as write:
        yield write
      files.upload(local, path)
    return
  temporary = files.temporary_name(path)
  writer = ArrayRecordWriter(temporary, ARRAY_RECORD_WRITER_OPTIONS)
  try:
    try:
      yield writer.write
    finally:
      writer.close()
    with open(temporary, "rb+") as written:  # durable before it takes the final name
      os.fsync(written.fileno())
  except BaseException:
    files.delete(temporary)
    raise
  files.rename(temporary, path)


def write_array_record(path: str, serialized_records: Iterable[bytes]) -> int:
  """Writes an ArrayRecord file atomically (local or gs://; see array_record_writer)."""
  return _write_all(array_record_writer(path), serialized_records)


def read_array_record(path: str, indices: Optional[Sequence[int]] = None) -> list[bytes]:
  """Reads all records of an ArrayRecord file (local or gs://), or those at `indices`."""
  from array_record.python.array_record_module import ArrayRecordReader

  with files.local_copy(path) as local:
    reader = ArrayRecordReader(local)
    try:
      if indices is None:
        return list(reader.read_all())
      return list(reader.read(list(indices)))
    finally:
      reader.close()
