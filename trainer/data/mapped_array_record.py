"""Records of a local ArrayRecord shard read in place, through a memory map.

An example needs 8 frames and 8 log-mel steps of a record that holds 250
frames (several MB). The ArrayRecord library returns whole records: it reads
the record's chunk, checks its hash over every byte and copies it out, which
costs more than decoding the 8 frames. Mapped, the file's pages are touched
only where the protobuf scan (trainer/data/clip_reader.py) looks: one small
header per frame and the frames and steps used.

ArrayRecord files are Riegeli files
(https://github.com/google/riegeli/blob/master/doc/riegeli_records_file_format.md):
64 KiB blocks, each starting with a 24-byte block header; chunks of 40-byte
header + data run across them. `shared.records` writes one record per chunk,
uncompressed ("group_size:1,uncompressed"): a simple chunk whose data is a
compression byte (0), the size of the record-size list, the list (one varint)
and then the record's bytes. Opening a shard walks the chunk headers (one
small read per record) to find where each record's bytes start. A shard laid
out otherwise raises `LayoutError`, and its caller reads it with the library.

What the map does not do is check the Riegeli hashes (that would mean reading
every byte): the caller reads each record once through the library, which
does, before it trusts the map for that record (see grain_input).
"""

from __future__ import annotations

import mmap
import struct
from typing import Callable, Optional

import numpy as np

_BLOCK = 1 << 16
_BLOCK_HEADER = 24
_USABLE = _BLOCK - _BLOCK_HEADER
_CHUNK_HEADER = 40
_SIGNATURE, _PADDING, _SIMPLE = ord("s"), ord("p"), ord("r")
_PAGE = 4096


class LayoutError(ValueError):
  """The file is not laid out as one uncompressed record per chunk."""


def _add_with_overhead(position: int, size: int) -> int:
  """The position `size` content bytes after `position`, block headers skipped (Riegeli's formula)."""
  return position + size + (size + (position + _USABLE - 1) % _BLOCK) // _USABLE * _BLOCK_HEADER


def _round_up_to_chunk_boundary(position: int) -> int:
  remaining = _BLOCK - 1 - (position + _BLOCK - 1) % _BLOCK
  return position + max(0, remaining - (_USABLE - 1))


def _content_start(position: int) -> int:
  """`position` moved past a block header it points into."""
  offset = position % _BLOCK
  return position - offset + _BLOCK_HEADER if offset < _BLOCK_HEADER else position


def decode_varint(data: bytes, position: int, error: type[Exception] = LayoutError) -> tuple[int, int]:
  """(value, position after it) of the protobuf varint at `position`; `error` if it is cut short or too long."""
  value = shift = 0
  while position < len(data) and shift <= 63:
    byte = data[position]
    position += 1
    value |= (byte & 0x7F) << shift
    if byte < 0x80:
      return value, position
    shift += 7
  raise error("truncated or overlong varint")


class MappedRecord:
  """One record's bytes inside a mapped Riegeli file, addressed as if contiguous.

  Supports len(), indexing and slicing (which return bytes), which is all the
  protobuf scan needs, and `floats` for packed float32 runs. Optionally
  remembers which 4 KiB pages of the file were touched.

  Attributes:
    size: the record's length in bytes.
  """

  __slots__ = ("_map", "_start", "size", "_full_bytes", "_pages", "used_bytes")

  def __init__(self, file_map: mmap.mmap, start: int, size: int, full_bytes: Callable[[], bytes],
               track_pages: bool = False):
    self._map, self._start, self.size, self._full_bytes = file_map, start, size, full_bytes
    self._pages: Optional[set[int]] = set() if track_pages else None
    self.used_bytes = 0

  def __len__(self) -> int:
    return self.size

  def _physical(self, offset: int) -> int:
    first = _BLOCK - self._start % _BLOCK
    if offset < first:
      return self._start + offset
    blocks, within = divmod(offset - first, _USABLE)
    return (self._start // _BLOCK + 1 + blocks) * _BLOCK + _BLOCK_HEADER + within

  def _read(self, begin: int, end: int) -> bytes:
    begin, end = max(0, min(begin, self.size)), max(0, min(end, self.size))
    pieces, offset = [], begin
    while offset < end:
      physical = self._physical(offset)
      take = min(end - offset, _BLOCK - physical % _BLOCK)
      pieces.append(self._map[physical:physical + take])
      if self._pages is not None:
        self._pages.update(range(physical // _PAGE, (physical + take - 1) // _PAGE + 1))
      offset += take
    self.used_bytes += end - begin
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)

  def __getitem__(self, index):
    if index.__class__ is slice:
      begin, end = index.start or 0, self.size if index.stop is None else index.stop
      if index.step not in (None, 1) or begin < 0 or end < 0:
        raise ValueError("mapped records take slices [a:b] with 0 <= a, b only")
      if self._pages is None and end <= self.size:  # the scan's many small reads, inline
        offset = self._start % _BLOCK + begin
        if offset < _BLOCK:
          physical = self._start + begin
        else:
          blocks, within = divmod(offset - _BLOCK, _USABLE)
          physical = (self._start // _BLOCK + 1 + blocks) * _BLOCK + _BLOCK_HEADER + within
        if physical % _BLOCK + end - begin <= _BLOCK:
          self.used_bytes += max(0, end - begin)
          return self._map[physical:physical + max(0, end - begin)]
      return self._read(begin, end)
    if not 0 <= index < self.size:
      raise IndexError(f"offset {index} outside a record of {self.size} bytes")
    return self._read(index, index + 1)[0]

  def head(self, offset: int, size: int) -> bytes:
    """Up to `size` bytes from `offset` (fewer at the record's end): the protobuf scan's hot call."""
    end = min(offset + size, self.size)
    if self._pages is None and 0 <= offset < end:
      start = self._start
      within_first = _BLOCK - start % _BLOCK
      if offset < within_first:
        physical = start + offset
      else:
        blocks, within = divmod(offset - within_first, _USABLE)
        physical = (start // _BLOCK + 1 + blocks) * _BLOCK + _BLOCK_HEADER + within
      if physical % _BLOCK + end - offset <= _BLOCK:
        self.used_bytes += end - offset
        return self._map[physical:physical + end - offset]
    return self._read(offset, end)

  def floats(self, offset: int, count: int) -> np.ndarray:
    """`count` little-endian float32 values from `offset`."""
    return np.frombuffer(self._read(offset, offset + 4 * count), "<f4", count=count)

  def full_bytes(self) -> bytes:
    """The whole record, read (and hash-checked) by the ArrayRecord library."""
    return self._full_bytes()

  @property
  def touched_bytes(self) -> int:
    """Bytes of the 4 KiB file pages touched so far (when tracking)."""
    return len(self._pages) * _PAGE if self._pages is not None else 0


class MappedArrayRecordFile:
  """A local ArrayRecord shard of one uncompressed record per chunk, mapped.

  Attributes:
    path: the file.
    num_records: records in the file.
  """

  def __init__(self, path: str, num_records: int):
    self.path, self.num_records = path, num_records
    with open(path, "rb") as f:
      self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
      self._starts, self._sizes = self._walk()
    except (LayoutError, struct.error) as error:
      self.close()
      raise LayoutError(f"{path}: {error}") from error

  def _content(self, position: int, size: int) -> tuple[bytes, int]:
    """`size` content bytes from `position` (block headers skipped) and the position after them."""
    pieces = []
    while size > 0:
      position = _content_start(position)
      take = min(size, _BLOCK - position % _BLOCK)
      pieces.append(self._map[position:position + take])
      position, size = position + take, size - take
    return b"".join(pieces), position

  def _walk(self) -> tuple[list[int], list[int]]:
    """Where each record's bytes start, and their sizes, from the chunk headers."""
    starts, sizes, chunk = [], [], 0
    file_size = len(self._map)
    while len(starts) < self.num_records:
      if chunk + _CHUNK_HEADER > file_size:
        raise LayoutError(f"{len(starts)} of {self.num_records} records found before the end of the file")
      header, data = self._content(chunk, _CHUNK_HEADER)
      data_size, chunk_type = struct.unpack_from("<Q", header, 8)[0], header[24]
      records = int.from_bytes(header[25:32], "little")
      decoded_size = struct.unpack_from("<Q", header, 32)[0]
      end = max(_add_with_overhead(chunk, _CHUNK_HEADER + data_size), _round_up_to_chunk_boundary(chunk + records))
      if end > file_size:
        raise LayoutError(f"the chunk at byte {chunk} runs past the end of the file")
      if chunk_type == _SIMPLE:
        prefix, _ = self._content(data, min(32, data_size))
        if records != 1 or not prefix or prefix[0] != 0:
          raise LayoutError(f"the chunk at byte {chunk} is not one uncompressed record")
        sizes_size, position = decode_varint(prefix, 1)
        record_size, after = decode_varint(prefix, position)
        if after != position + sizes_size or record_size != decoded_size or data_size != after + decoded_size:
          raise LayoutError(f"the chunk at byte {chunk} has inconsistent sizes")
        _, start = self._content(data, after)
        starts.append(_content_start(start))
        sizes.append(record_size)
      elif chunk_type not in (_SIGNATURE, _PADDING):
        raise LayoutError(f"unexpected chunk type {chr(chunk_type)!r} at byte {chunk}")
      chunk = end
    return starts, sizes

  def record(self, index: int, full_bytes: Callable[[], bytes], track_pages: bool = False) -> MappedRecord:
    """Record `index` as a MappedRecord; `full_bytes` reads it whole (the fallback)."""
    return MappedRecord(self._map, self._starts[index], self._sizes[index], full_bytes, track_pages)

  def close(self) -> None:
    self._map.close()
