"""Reads a build's `manifest.json` on the trainer side and refuses foreign data.

A build directory (local or gs://) holds the shards of one dataset split and a
`manifest.json` that the pipelines write last. The trainer takes from it:

* the contract block, compared with this code's `shared.contract` (a shard set
  built under other media rates, log-mel parameters or schema is refused with
  `contract.ContractMismatchError`, naming every parameter that differs);
* the label map (class names, and for EPIC-KITCHENS the verb and noun maps the
  build adds under `label_maps`, keyed by their names, e.g. "epic_verb");
* the log-mel mean and standard deviation used to normalise spectrograms;
* the shard file names per format and the number of records written.

The keys read are: dataset, split, schema_version, contract, label_map,
melspec_mean, melspec_std, shards.{tfrecord,arrayrecord} and counts.written
(optional; counted from the ArrayRecord shards when absent), and the optional
label_maps.{verb,noun}.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Any, Mapping, Optional

from shared import contract

MANIFEST_NAME = "manifest.json"
TFRECORD = "tfrecord"
ARRAYRECORD = "arrayrecord"
FORMATS = (TFRECORD, ARRAYRECORD)


class ManifestError(ValueError):
  """A build manifest is missing, unreadable or does not fit this trainer."""


@dataclasses.dataclass(frozen=True)
class BuildManifest:
  """What the trainer needs to know about one built split.

  Attributes:
    directory: the build's output directory (local path or gs:// URL).
    dataset: dataset name, e.g. "audioset", "vggsound", "epic_kitchens".
    split: split name, e.g. "train", "eval".
    label_map: the build's label map (for EPIC-KITCHENS, its action map).
    extra_label_maps: further label maps by name, e.g. {"epic_verb": ..., "epic_noun": ...}.
    melspec_mean: mean of all log-mel values of the build.
    melspec_std: standard deviation of all log-mel values of the build.
    shards: format -> shard file names, relative to `directory`.
    num_records: records written, or None when the manifest does not say.
    raw: the whole manifest as read, for reports.
  """

  directory: str
  dataset: str
  split: str
  label_map: contract.LabelMap
  extra_label_maps: Mapping[str, contract.LabelMap]
  melspec_mean: float
  melspec_std: float
  shards: Mapping[str, tuple[str, ...]]
  num_records: Optional[int]
  raw: Mapping[str, Any]

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
    names = self.shards.get(file_format)
    if not names:
      raise ManifestError(f"{self.directory}: the build has no {file_format} shards "
                          f"(it has: {sorted(k for k, v in self.shards.items() if v) or 'none'})")
    return [join(self.directory, name) for name in names]


def join(directory: str, name: str) -> str:
  """Joins a directory and a file name; works for gs:// URLs too."""
  return posixpath.join(directory.rstrip("/"), name) if "://" in directory else posixpath.join(directory, name)


def manifest_from_dict(raw: Mapping[str, Any], directory: str) -> BuildManifest:
  """Validates a parsed manifest against this code's contract.

  Raises:
    contract.ContractMismatchError: the build used other contract parameters
      or another schema version.
    ManifestError: a required key is missing or malformed.
  """
  where = f"build {directory}"
  for key in ("dataset", "split", "schema_version", "contract", "label_map", "shards"):
    if key not in raw:
      raise ManifestError(f"{where}: manifest.json has no {key!r}; is this a finished build?")
  if raw["schema_version"] != contract.SCHEMA_VERSION:
    raise contract.ContractMismatchError(
        f"{where} was written under schema version {raw['schema_version']!r}, this code reads "
        f"{contract.SCHEMA_VERSION}; rebuild the shards or check out matching code")
  contract.check_contract(raw["contract"], where=where)
  mean, std = raw.get("melspec_mean"), raw.get("melspec_std")
  if mean is None or std is None or not std > 0:
    raise ManifestError(f"{where}: manifest has no usable melspec_mean/melspec_std ({mean!r}, {std!r})")
  try:
    label_map = contract.LabelMap.from_json_dict(raw["label_map"])
    extra = {name: contract.LabelMap.from_json_dict(value) for name, value in (raw.get("label_maps") or {}).items()}
  except (KeyError, TypeError, ValueError) as error:
    raise ManifestError(f"{where}: malformed label map: {error}") from error
  shards = {fmt: tuple(names) for fmt, names in raw["shards"].items()}
  written = (raw.get("counts") or {}).get("written")
  return BuildManifest(
      directory=directory, dataset=raw["dataset"], split=raw["split"], label_map=label_map,
      extra_label_maps=extra, melspec_mean=float(mean), melspec_std=float(std), shards=shards,
      num_records=int(written) if written is not None else None, raw=dict(raw))


def read_manifest(directory: str) -> BuildManifest:
  """Reads and validates `directory/manifest.json` (local or gs://)."""
  import tensorflow as tf

  path = join(directory, MANIFEST_NAME)
  if not tf.io.gfile.exists(path):
    raise ManifestError(f"no {MANIFEST_NAME} in {directory}: the build is missing or unfinished "
                        "(pipelines write the manifest last)")
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      raw = json.load(f)
  except json.JSONDecodeError as error:
    raise ManifestError(f"{path} is not valid JSON: {error}") from error
  return manifest_from_dict(raw, directory)
