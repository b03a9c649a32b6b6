"""One way to reach a build's files, whether they lie on a local disk or in gs://.

Local paths go through the operating system, with the guarantees the builds
rely on: a file written with :func:`atomic_writer` (or :func:`write_bytes`,
:func:`write_json`) appears under its name only once complete, its bytes and
its directory entry fsync'ed, so a crash leaves either the old file or the new
one, never a part. Paths with a scheme (``gs://``, and anything else Beam
knows) go through Apache Beam's ``FileSystems``, so a Beam worker writes shards
and reads builds without loading TensorFlow; there a file becomes visible when
its upload closes, and the same temporary-name-then-rename protocol keeps a
killed writer from leaving a file under its final name.

``file://`` URLs are local paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from typing import IO, Any, Iterator, Mapping, Optional

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FILE_SCHEME = "file://"
# Temporary files carry this marker; a finished build holds none.
INCOMPLETE_MARKER = ".incomplete-"


def _beam_filesystems():
  # Imported on first remote use only: local tools (the ledger command line, the
  # trainer reading a local build) must not pay for importing Beam.
  from apache_beam.io.filesystems import FileSystems

  return FileSystems


def _uncompressed():
  from apache_beam.io.filesystem import CompressionTypes

  # Beam guesses compression from the file name by default; these are bytes as they are.
  return CompressionTypes.UNCOMPRESSED


def is_remote(path: str) -> bool:
  """Whether `path` names an object store (gs://...) rather than a local file."""
  return _SCHEME.match(path) is not None and not path.startswith(_FILE_SCHEME)


def _local(path: str) -> str:
  return path[len(_FILE_SCHEME):] if path.startswith(_FILE_SCHEME) else path


def absolute(path: Optional[str]) -> Optional[str]:
  """`path` made absolute if local (`~` expanded, file:// dropped); URLs and None as they are.

  orbax refuses relative checkpoint paths, and a relative path saved in a
  config means nothing once the working directory changes, so entry points
  resolve the paths they are given once, with this.
  """
  if path is None or is_remote(path):
    return path
  return os.path.abspath(os.path.expanduser(_local(path)))


def join(directory: str, *names: str) -> str:
  """`directory`/`names`..., for local paths and URLs alike (a trailing "/" is ignored)."""
  if is_remote(directory):
    return posixpath.join(directory.rstrip("/"), *names)
  return os.path.join(directory, *names)


def temporary_name(path: str) -> str:
  """A sibling name for writing `path`, unique to this writer."""
  return f"{path}{INCOMPLETE_MARKER}{uuid.uuid4().hex}"


def exists(path: str) -> bool:
  if is_remote(path):
    return _beam_filesystems().exists(path)
  return os.path.exists(_local(path))


def is_file(path: str) -> bool:
  """Whether `path` is a file (on an object store: an object of exactly that name)."""
  if is_remote(path):
    return _beam_filesystems().exists(path)
  return os.path.isfile(_local(path))


def makedirs(directory: str) -> None:
  """Creates a local directory and its parents; object stores have no directories to make."""
  if not is_remote(directory):
    os.makedirs(_local(directory), exist_ok=True)


def open_read(path: str) -> IO[bytes]:
  """A binary file object to read `path` from."""
  if is_remote(path):
    return _beam_filesystems().open(path, compression_type=_uncompressed())
  return open(_local(path), "rb")


def read_bytes(path: str) -> bytes:
  with open_read(path) as f:
    return f.read()


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


def read_json(path: str) -> Any:
  return json.loads(read_bytes(path))


def _fsync_directory(directory: str) -> None:
  """Makes a directory entry (a new or renamed file) durable, where the OS lets us open directories."""
  try:
    descriptor = os.open(directory or ".", os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(descriptor)
  except OSError:
    pass
  finally:
    os.close(descriptor)


def rename(source: str, destination: str) -> None:
  """Moves `source` onto `destination`, replacing it (atomically on a local disk)."""
  if is_remote(source) or is_remote(destination):
    from apache_beam.io.filesystem import BeamIOError

    filesystems = _beam_filesystems()
    try:
      filesystems.rename([source], [destination])  # GCS: a copy that replaces, then a delete
    except BeamIOError:
      if not filesystems.exists(destination):
        raise
      filesystems.delete([destination])  # stores whose rename refuses to replace
      filesystems.rename([source], [destination])
    return
  destination = _local(destination)
  os.replace(_local(source), destination)
  _fsync_directory(os.path.dirname(destination))


def delete(path: str, missing_ok: bool = True) -> None:
  """Removes a file; an absent one is fine unless `missing_ok` is False."""
  if is_remote(path):
    filesystems = _beam_filesystems()
    if missing_ok and not filesystems.exists(path):
      return
    filesystems.delete([path])
    return
  try:
    os.remove(_local(path))
  except FileNotFoundError:
    if not missing_ok:
      raise


def match(pattern: str) -> list[str]:
  """The files matching a glob pattern (``*``, ``?``, ``[...]``), sorted."""
  if is_remote(pattern):
    results = _beam_filesystems().match([pattern])
    return sorted(metadata.path for metadata in results[0].metadata_list)
  import glob

  return sorted(path for path in glob.glob(_local(pattern)) if os.path.isfile(path))


def match_sizes(pattern: str) -> list[tuple[str, int]]:
  """(path, size in bytes) of the files matching a glob pattern, sorted: one listing, no file opened."""
  if is_remote(pattern):
    results = _beam_filesystems().match([pattern])
    return sorted((metadata.path, metadata.size_in_bytes) for metadata in results[0].metadata_list)
  return [(path, os.path.getsize(path)) for path in match(pattern)]


def size(path: str) -> int:
  """A file's size in bytes (FileNotFoundError if there is none)."""
  if is_remote(path):
    found = [metadata for metadata in match_sizes(path) if metadata[0] == path]
    if not found:
      raise FileNotFoundError(path)
    return found[0][1]
  return os.path.getsize(_local(path))


def is_directory(path: str) -> bool:
  """Whether `path` is a directory; on an object store, whether any object lies under it."""
  if not is_remote(path):
    return os.path.isdir(_local(path))
  from apache_beam.io.filesystem import BeamIOError

  try:
    found = _beam_filesystems().match([path.rstrip("/") + "/**"], limits=[1])
  except BeamIOError:  # e.g. no such bucket
    return False
  return bool(found[0].metadata_list)


def list_files(directory: str, suffix: str = "") -> list[str]:
  """Files directly in `directory` whose names end in `suffix`, sorted; [] when it does not exist."""
  if is_remote(directory):
    prefix = directory.rstrip("/") + "/"
    found = match(prefix + "*" + suffix)
    return [path for path in found if "/" not in path[len(prefix):]]
  directory = _local(directory)
  if not os.path.isdir(directory):
    return []
  return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                if name.endswith(suffix) and os.path.isfile(os.path.join(directory, name)))


def open_new(path: str) -> IO[bytes]:
  """A new file to write in pieces (an append log): refuses to replace one that exists, locally.

  Locally its directory entry is durable at once; what is written is the
  caller's to flush and fsync. On an object store the file appears when closed.
  """
  if is_remote(path):
    return _beam_filesystems().create(path, compression_type=_uncompressed())
  local = _local(path)
  handle = open(local, "xb")  # a name collision fails loudly instead of interleaving
  _fsync_directory(os.path.dirname(local))
  return handle


@contextlib.contextmanager
def atomic_writer(path: str) -> Iterator[IO[bytes]]:
  """A binary file that appears as `path` only when the block ends without an error.

  It is written under a temporary name beside `path`, fsync'ed (locally) and
  renamed over `path`; if the block raises, the temporary file is removed and
  `path` is left as it was.
  """
  temporary = temporary_name(path)
  if is_remote(path):
    handle = _beam_filesystems().create(temporary, compression_type=_uncompressed())
  else:
    makedirs(os.path.dirname(_local(path)) or ".")
    handle = open(_local(temporary), "xb")
  try:
    with handle:
      yield handle
      if not is_remote(path):
        handle.flush()
        os.fsync(handle.fileno())
  except BaseException:
    delete(temporary)
    raise
  rename(temporary, path)


def write_bytes(path: str, data: bytes) -> None:
  """Writes `path` atomically (see :func:`atomic_writer`)."""
  with atomic_writer(path) as f:
    f.write(data)


def write_json(path: str, payload: Mapping[str, Any]) -> None:
  """Writes a JSON document atomically, as people read it (indented, UTF-8, keys in order)."""
  write_bytes(path, json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8"))


def upload(local_path: str, destination: str) -> None:
  """Copies a local file to `destination` (local or remote) atomically."""
  with open(_local(local_path), "rb") as source, atomic_writer(destination) as target:
    shutil.copyfileobj(source, target, length=1 << 20)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
  """A local path holding `path`'s bytes: `path` itself when local, else a temporary download.

  For readers that only open local files (ArrayRecord's).
  """
  if not is_remote(path):
    yield _local(path)
    return
  with tempfile.TemporaryDirectory(prefix="mbt-copy-") as scratch:
    local = os.path.join(scratch, posixpath.basename(path.rstrip("/")) or "file")
    with open_read(path) as source, open(local, "wb") as target:
      shutil.copyfileobj(source, target, length=1 << 20)
    yield local
