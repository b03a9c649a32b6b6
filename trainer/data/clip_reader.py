"""Reads what one example needs from a serialized clip record, and nothing more.

A record of a 10 s clip holds 250 JPEG frames (several MB); a training example
uses 8 of them and 8 log-mel steps. Parsing the whole SequenceExample with
protobuf copies every byte into fresh memory, which costs 1-5 ms per record
(mostly page faults), about as long as decoding the 8 frames. So records are
read lazily: a scan of the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) notes where each frame and
each log-mel step lies, and only those slices are touched. The small context
(ids, labels, sizes) is parsed with protobuf as usual.

The scan understands exactly the layout of `tf.train.SequenceExample` as
`shared.records.encode` writes it. Anything else it cannot vouch for (a
message field repeated, which protobuf would merge; an unpacked float list;
an unknown wire type) makes it give up, and the record is parsed in full with
protobuf instead: same results, just slower.

A record is `bytes`, or a `MappedRecord` (trainer/data/mapped_array_record.py)
whose bytes stay in the shard file's memory map until a slice asks for them:
the scan then reads the file only where it looks.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

from google.protobuf.message import DecodeError
import numpy as np

from shared import contract
from shared import example_proto  # TensorFlow's messages without importing TensorFlow (grain workers)
from shared.records import RecordError
from trainer.data.mapped_array_record import MappedRecord, decode_varint

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_STEP_BYTES = contract.MELSPEC_STEP_FLOATS * 4
# A field's key and length varints: at most 10 bytes each.
_HEAD_BYTES = 20
# Field 1 (FeatureList.feature), length-delimited.
_FEATURE_TAG = 1 << 3 | 2

# A serialized record: its bytes, or a view of them in a mapped shard file.
Serialized = Union[bytes, MappedRecord]


class WireFormatError(ValueError):
  """The bytes are not laid out as the lazy reader expects (it falls back)."""


def _whole(serialized: Serialized) -> bytes:
  """All of a record's bytes (a mapped record is read whole, hash-checked)."""
  return serialized.full_bytes() if isinstance(serialized, MappedRecord) else serialized


def _head_reader(buffer: Serialized):
  """(offset, size) -> up to `size` bytes from `offset`: the cheapest way to peek into `buffer`."""
  if isinstance(buffer, MappedRecord):
    return buffer.head
  return lambda offset, size: buffer[offset:offset + size]


def _decode_varint(window: bytes, index: int) -> tuple[int, int]:
  """(value, index after it) of the varint at `index` of `window`."""
  return decode_varint(window, index, WireFormatError)


def _fields(buffer: Serialized, start: int, end: int):
  """Yields (field number, wire type, value start, value end) of a message's fields.

  For varints the value itself is returned as the start (end is None).
  """
  position = start
  head = _head_reader(buffer)
  while position < end:
    # One read holds a field's key and length (or value): on a mapped record
    # every read is a call.
    window = head(position, min(_HEAD_BYTES, end - position))
    key, index = _decode_varint(window, 0)
    number, wire_type = key >> 3, key & 7
    if wire_type == _LEN:
      length, index = _decode_varint(window, index)
      position += index
      if position + length > end:
        raise WireFormatError("a field runs past the end of its message")
      yield number, wire_type, position, position + length
      position += length
    elif wire_type == _VARINT:
      value, index = _decode_varint(window, index)
      yield number, wire_type, value, None
      position += index
    elif wire_type in (_I64, _I32):
      size = 8 if wire_type == _I64 else 4
      position += index
      if position + size > end:
        raise WireFormatError("a fixed-size field runs past the end of its message")
      yield number, wire_type, position, position + size
      position += size
    else:
      raise WireFormatError(f"unsupported wire type {wire_type}")


def _feature_spans(buffer: Serialized, start: int, end: int) -> list[tuple[int, int]]:
  """Spans of the `feature` entries (field 1) of a FeatureList: the scan's hot loop, kept tight.

  Each entry is a tag byte, a length varint and the Feature; lengths below
  2 MiB (every frame) are decoded inline, longer ones by the general decoder.
  Bytes are indexed in place (no slice per entry); a mapped record is read
  through head(), 20 bytes per entry.
  """
  spans, position = [], start
  in_memory = not isinstance(buffer, MappedRecord)
  head = _head_reader(buffer)
  while position < end:
    if in_memory and position + 4 <= end:
      window, at = buffer, position
    else:
      window, at = head(position, min(_HEAD_BYTES, end - position)), 0
    if window[at] != _FEATURE_TAG:
      raise WireFormatError("a feature list holds something other than features")
    first, second, third = (window[at + 1], window[at + 2], window[at + 3]) if len(window) >= at + 4 else (
        0x80, 0x80, 0x80)
    if first < 0x80:
      length, index = first, 2
    elif second < 0x80:
      length, index = (first & 0x7F) | second << 7, 3
    elif third < 0x80:
      length, index = (first & 0x7F) | (second & 0x7F) << 7 | third << 14, 4
    else:
      length, index = _decode_varint(head(position, min(_HEAD_BYTES, end - position)), 1)
    begin = position + index
    position = begin + length
    if position > end:
      raise WireFormatError("a feature runs past the end of its list")
    spans.append((begin, position))
  return spans


def _only_child(buffer: bytes, start: int, end: int, number: int) -> tuple[int, int]:
  """The span of the single length-delimited field `number` of a message."""
  found = None
  for field, wire_type, a, b in _fields(buffer, start, end):
    if field == number:
      if wire_type != _LEN or found is not None:
        raise WireFormatError(f"field {number} is not one length-delimited value")
      found = (a, b)
    else:
      raise WireFormatError(f"unexpected field {field}")
  if found is None:
    raise WireFormatError(f"field {number} is missing")
  return found


class _LazyRecord:
  """Spans of the context and of every feature of the two feature lists we read."""

  def __init__(self, serialized: Serialized):
    self._buffer = serialized
    top = {}
    for number, wire_type, a, b in _fields(serialized, 0, len(serialized)):
      if number in (1, 2):
        if wire_type != _LEN or number in top:
          raise WireFormatError("context / feature_lists repeated or malformed")
        top[number] = (a, b)
    self.context = example_proto.Features.FromString(serialized[slice(*top[1])]) if 1 in top else example_proto.Features()
    self._lists: dict[str, list[tuple[int, int]]] = {}
    if 2 in top:
      for number, wire_type, a, b in _fields(serialized, *top[2]):
        if number != 1 or wire_type != _LEN:
          raise WireFormatError("feature_lists holds something other than map entries")
        key, value = None, (b, b)
        for entry_field, entry_type, c, d in _fields(serialized, a, b):
          if entry_type != _LEN:
            raise WireFormatError("malformed map entry")
          if entry_field == 1:
            key = serialized[c:d].decode("utf-8")
          elif entry_field == 2:
            value = (c, d)
        if key is None or key in self._lists:
          raise WireFormatError("feature list without a key, or twice")
        if key in (contract.IMAGE_KEY, contract.MELSPEC_KEY):
          self._lists[key] = _feature_spans(serialized, *value)

  def count(self, key: str) -> int:
    return len(self._lists.get(key, ()))

  def jpeg(self, frame: int) -> bytes:
    feature = self._lists[contract.IMAGE_KEY][frame]
    values = _only_child(self._buffer, *_only_child(self._buffer, *feature, 1), 1)
    return self._buffer[slice(*values)]

  def step_floats(self, step: int) -> np.ndarray:
    a, b = _only_child(self._buffer, *_only_child(self._buffer, *self._lists[contract.MELSPEC_KEY][step], 2), 1)
    if b - a != _STEP_BYTES:
      raise WireFormatError("a log-mel step is not one packed run of floats")
    if isinstance(self._buffer, MappedRecord):
      return self._buffer.floats(a, contract.MELSPEC_STEP_FLOATS)
    return np.frombuffer(self._buffer, "<f4", count=contract.MELSPEC_STEP_FLOATS, offset=a)


class _ParsedRecord:
  """The fallback: the whole record parsed by protobuf."""

  def __init__(self, serialized: bytes):
    example = example_proto.SequenceExample()
    try:
      example.ParseFromString(serialized)
    except Exception as error:  # protobuf raises its own DecodeError type
      raise RecordError(f"not a SequenceExample (corrupt or truncated record?): {error}") from error
    self.context = example.context
    self._lists = example.feature_lists.feature_list

  def count(self, key: str) -> int:
    return len(self._lists[key].feature) if key in self._lists else 0

  def jpeg(self, frame: int) -> bytes:
    return self._lists[contract.IMAGE_KEY].feature[frame].bytes_list.value[0]

  def step_floats(self, step: int) -> np.ndarray:
    values = self._lists[contract.MELSPEC_KEY].feature[step].float_list
    raw = values.SerializeToString()  # packed: tag, 3-byte length, floats
    if len(raw) == _STEP_BYTES + 4:
      return np.frombuffer(raw, "<f4", count=contract.MELSPEC_STEP_FLOATS, offset=4)
    array = np.asarray(values.value, np.float32)
    if array.size != contract.MELSPEC_STEP_FLOATS:
      raise RecordError(f"a melspec step is not {contract.MELSPEC_STEP_FLOATS} floats")
    return array


@dataclasses.dataclass
class ParsedClip:
  """A record's context, with frames and log-mel steps read on demand.

  Attributes:
    clip_id: the record's clip id.
    num_frames: stored 25 fps frames.
    frame_width: width of the stored frames.
    frame_height: height of the stored frames.
    mel_rows: valid log-mel rows (the stored steps are zero padded past them).
    label_indices: class indices of the clip.
    verb_index: EPIC-KITCHENS verb class or contract.NO_LABEL.
    noun_index: EPIC-KITCHENS noun class or contract.NO_LABEL.
  """

  clip_id: str
  num_frames: int
  frame_width: int
  frame_height: int
  mel_rows: int
  label_indices: list[int]
  verb_index: int
  noun_index: int
  _record: object
  _serialized: Serialized

  def _read(self, read):
    try:
      return read(self._record)
    except WireFormatError:  # an unexpected layout deep inside: parse it all
      self._record = _ParsedRecord(_whole(self._serialized))
      return read(self._record)

  def jpeg(self, frame: int) -> bytes:
    return self._read(lambda record: record.jpeg(frame))

  def melspec_rows(self, first: int, out: np.ndarray) -> None:
    """Copies rows [first, first + len(out)) into `out`; rows past the clip stay as they are."""
    last = min(first + out.shape[0], self.mel_rows)
    step_rows = contract.MELSPEC_STEP_ROWS
    row = first
    while row < last:
      step, offset = divmod(row, step_rows)
      take = min(step_rows - offset, last - row)
      values = self._read(lambda record, step=step: record.step_floats(step)).reshape(step_rows, contract.MEL_NUM_BINS)
      out[row - first:row - first + take] = values[offset:offset + take]
      row += take


def _context_int(context, key: str, clip_id: str) -> int:
  feature = context.feature
  if key not in feature or len(feature[key].int64_list.value) != 1:
    raise RecordError(f"record {clip_id}: missing or malformed context feature {key!r}")
  return int(feature[key].int64_list.value[0])


def parse_clip(serialized: Serialized, lazy: bool = True) -> ParsedClip:
  """Reads a record written by shared.records.encode and checks its schema.

  Args:
    serialized: the record's bytes, or a MappedRecord.
    lazy: read frames and steps on demand (see the module docstring); False
      parses the whole record with protobuf.

  Raises:
    RecordError: not a SequenceExample of this contract, or written under
      another schema version.
  """
  record: Optional[object] = None
  if lazy:
    try:
      record = _LazyRecord(serialized)
    except (WireFormatError, UnicodeDecodeError, DecodeError):
      record = None
  if record is None:
    record = _ParsedRecord(_whole(serialized))
  context = record.context.feature
  if contract.CLIP_ID_KEY not in context or len(context[contract.CLIP_ID_KEY].bytes_list.value) != 1:
    raise RecordError("record has no clip id: not a clip record of this project (corrupt or truncated?)")
  clip_id = context[contract.CLIP_ID_KEY].bytes_list.value[0].decode("utf-8")
  schema = _context_int(record.context, contract.SCHEMA_VERSION_KEY, clip_id)
  if schema != contract.SCHEMA_VERSION:
    raise RecordError(f"record {clip_id}: schema version {schema}, this code reads {contract.SCHEMA_VERSION}; "
                      "rebuild the shards or check out matching code")
  num_frames = record.count(contract.IMAGE_KEY)
  if not num_frames:
    raise RecordError(f"record {clip_id}: no frames")
  mel_rows = contract.num_mel_rows(_context_int(record.context, contract.NUM_AUDIO_SAMPLES_KEY, clip_id))
  if record.count(contract.MELSPEC_KEY) * contract.MELSPEC_STEP_ROWS < mel_rows:
    raise RecordError(f"record {clip_id}: fewer log-mel steps than its {mel_rows} rows need")
  return ParsedClip(
      clip_id=clip_id,
      num_frames=num_frames,
      frame_width=_context_int(record.context, contract.FRAME_WIDTH_KEY, clip_id),
      frame_height=_context_int(record.context, contract.FRAME_HEIGHT_KEY, clip_id),
      mel_rows=mel_rows,
      label_indices=[int(v) for v in context[contract.LABEL_INDEX_KEY].int64_list.value]
      if contract.LABEL_INDEX_KEY in context else [],
      verb_index=_context_int(record.context, contract.VERB_INDEX_KEY, clip_id),
      noun_index=_context_int(record.context, contract.NOUN_INDEX_KEY, clip_id),
      _record=record,
      _serialized=serialized,
  )
