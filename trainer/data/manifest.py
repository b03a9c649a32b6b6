"""A build as the trainer reads it: its manifest, checked against this code, and its shards.

A build directory (local or gs://) holds the shards of one dataset split and a
`manifest.json` (shared.manifest) that builders write last. The trainer takes
from it:

* the contract, compared with this code's `shared.contract` (a shard set built
  under other media rates, log-mel parameters or schema is refused with
  `contract.ContractMismatchError`, naming every parameter that differs);
* the label map (class names, and for EPIC-KITCHENS the verb and noun maps,
  keyed by their names, e.g. "epic_verb");
* the log-mel mean and standard deviation used to normalise spectrograms;
* the shard file names per format and the number of records written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from shared import contract
from shared.layout import FORMATS, BuildLayout
from shared.manifest import Manifest, ManifestError
from shared.manifest import read_manifest as read_manifest_file


@dataclasses.dataclass(frozen=True)
class BuildManifest:
  """One built split the trainer can read.

  Attributes:
    directory: the build's output directory (local path or gs:// URL).
    manifest: its manifest, checked against this code's contract.
  """

  directory: str
  manifest: Manifest

  @property
  def dataset(self) -> str:
    return self.manifest.dataset

  @property
  def split(self) -> str:
    return self.manifest.split

  @property
  def label_map(self) -> contract.LabelMap:
    """The build's label map (for EPIC-KITCHENS, its action map)."""
    return self.manifest.label_map

  @property
  def extra_label_maps(self) -> Mapping[str, contract.LabelMap]:
    return self.manifest.extra_label_maps

  @property
  def melspec_mean(self) -> float:
    return self.manifest.melspec_mean

  @property
  def melspec_std(self) -> float:
    return self.manifest.melspec_std

  @property
  def num_records(self) -> int:
    """Records written into the shards of each format."""
    return self.manifest.counts.written

  def head_label_map(self, head: str) -> Optional[contract.LabelMap]:
    """The label map of a classifier head ('verb' finds 'verb' or 'epic_verb'), or None."""
    for name, label_map in self.extra_label_maps.items():
      if name == head or name.endswith(f"_{head}"):
        return label_map
    return None

  def shard_paths(self, file_format: str) -> list[str]:
    """Full paths of the shards of `file_format` ("tfrecord" or "arrayrecord")."""
    if file_format not in FORMATS:
      raise ManifestError(f"unknown shard format {file_format!r}; choose one of {FORMATS}")
    names = self.manifest.shards.get(file_format)
    if not names:
      raise ManifestError(f"{self.directory}: the build has no {file_format} shards "
                          f"(it has: {sorted(k for k, v in self.manifest.shards.items() if v) or 'none'})")
    build = BuildLayout(self.directory)
    return [build.path(name) for name in names]

  def shard_sizes_and_counts(self, file_format: str) -> Optional[tuple[list[int], list[int]]]:
    """(bytes, records) of each shard of `file_format` as the build wrote them; None if the manifest lacks sizes.

    The i-th shard of every format holds the same records, listed under one
    format's name (shared.manifest.Manifest.shard_clip_ids).
    """
    names = self.manifest.shards.get(file_format, ())
    sizes = [self.manifest.shard_sizes.get(name) for name in names]
    listed = next((self.manifest.shards[fmt] for fmt in self.manifest.shards
                   if self.manifest.shards[fmt] and self.manifest.shards[fmt][0] in self.manifest.shard_clip_ids), None)
    if not names or None in sizes or listed is None or len(listed) != len(names):
      return None
    return sizes, [len(self.manifest.shard_clip_ids[name]) for name in listed]


def checked(manifest: Manifest, directory: str) -> BuildManifest:
  """A manifest the trainer can use, or the reason it cannot.

  Raises:
    contract.ContractMismatchError: the build used other contract parameters
      or another schema version.
    ManifestError: the build has no usable log-mel moments (e.g. no clip).
  """
  where = f"build {directory}"
  manifest.check_contract(where)
  mean, std = manifest.melspec_mean, manifest.melspec_std
  if mean is None or std is None or not std > 0:
    raise ManifestError(f"{where}: manifest has no usable melspec_mean/melspec_std ({mean!r}, {std!r})")
  return BuildManifest(directory=directory, manifest=manifest)


def manifest_from_dict(document: Mapping[str, Any], directory: str) -> BuildManifest:
  """Parses and checks a manifest document (see :func:`checked`)."""
  return checked(Manifest.from_json_dict(document, where=f"build {directory}"), directory)


def read_manifest(directory: str) -> BuildManifest:
  """Reads and checks `directory/manifest.json` (local or gs://)."""
  return checked(read_manifest_file(directory), directory)
