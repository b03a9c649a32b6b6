"""File names built from CSV data, confined to the output directory.

A clip id comes from a CSV row; a hostile or broken row must not write outside
the output directory. Names are checked twice: against a strict pattern, and
by resolving the final path (symlinks included) and checking it is still
inside the resolved output directory.
"""

from __future__ import annotations

import os
import re

# Letters, digits, "_", "-", "."; never a leading "-" (an option to any tool) or
# "." (hidden, or "..").
CLIP_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_EXTENSION_PATTERN = re.compile(r"[a-z0-9]{1,8}")


class UnsafePathError(ValueError):
  """A name that would not stay inside its directory, or is not a plain file name."""


def check_clip_id(clip_id: str) -> str:
  """Returns `clip_id` if it is a safe file name stem, else raises UnsafePathError."""
  if not isinstance(clip_id, str) or CLIP_ID_PATTERN.fullmatch(clip_id) is None or ".." in clip_id:
    raise UnsafePathError(f"clip id is not a safe file name (letters, digits, _ - ., not starting with - or .): "
                          f"{clip_id!r}")
  return clip_id


def confined_path(directory: str, name: str) -> str:
  """``directory/name``, resolved, after checking that it stays inside `directory`.

  Args:
    directory: the directory files must stay in.
    name: a single file name (no separators).

  Raises:
    UnsafePathError: the name has a separator, is "." or "..", or resolves
      (through symlinks) outside the directory.
  """
  if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
    raise UnsafePathError(f"not a plain file name: {name!r}")
  root = os.path.realpath(directory)
  path = os.path.realpath(os.path.join(root, name))
  if os.path.dirname(path) != root:
    raise UnsafePathError(f"{name!r} resolves to {path!r}, outside {root!r}")
  return path


def clip_file_name(clip_id: str, extension: str) -> str:
  """``{clip_id}.{extension}`` after checking both parts."""
  check_clip_id(clip_id)
  if _EXTENSION_PATTERN.fullmatch(extension or "") is None:
    raise UnsafePathError(f"not a plain file extension: {extension!r}")
  return f"{clip_id}.{extension}"
