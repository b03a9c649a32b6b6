"""Where every file of a build lies, under its output directory (a local path or gs://).

    OUTPUT_DIR/SPLIT-00000-of-000NN                 TFRecord shards (Scenic's reader: OUTPUT_DIR/SPLIT@NN)
    OUTPUT_DIR/SPLIT-00000-of-000NN.array_record    ArrayRecord shards, the same bytes (grain)
    OUTPUT_DIR/manifest.json                        written last: the build is complete
    OUTPUT_DIR/label_map.json
    OUTPUT_DIR/requests.jsonl.gz                    what was asked: every requested clip, every unreadable row
    OUTPUT_DIR/ledger/*.jsonl                       one record per clip checked
    OUTPUT_DIR/refresh_report.json                  with --previous_build: kept / new / recovered / lost / failing
    OUTPUT_DIR/as500k_report.json                   AudioSet --split as500k: the subset's per-class report
    OUTPUT_DIR/media/                               downloaded sections (local builds), reused by re-runs
    OUTPUT_DIR/staging/                             records waiting for their shard, the work list (empty when done)

Every builder and reader takes these paths from :class:`BuildLayout`, so the
layout is spelled here only.
"""

from __future__ import annotations

import dataclasses

from shared import files, records

# Shard file formats, the keys of the manifest's "shards".
TFRECORD = "tfrecord"
ARRAYRECORD = "arrayrecord"
FORMATS = (TFRECORD, ARRAYRECORD)

MANIFEST_NAME = "manifest.json"
LABEL_MAP_NAME = "label_map.json"
REQUESTS_NAME = "requests.jsonl.gz"
LEDGER_DIR_NAME = "ledger"
REFRESH_REPORT_NAME = "refresh_report.json"
AS500K_REPORT_NAME = "as500k_report.json"
MEDIA_DIR_NAME = "media"
STAGING_DIR_NAME = "staging"
STAGED_RECORD_SUFFIX = ".record"
WORK_LIST_NAME = "work.jsonl.gz"


class UnknownFormatError(ValueError):
  """A shard format other than those in FORMATS."""


def staged_record_name(clip_id: str) -> str:
  """The file name a clip's record waits under in the staging directory."""
  return clip_id + STAGED_RECORD_SUFFIX


def shard_file_name(prefix: str, index: int, count: int, file_format: str) -> str:
  """A shard's file name in one format: NAME-00000-of-00016, plus .array_record for ArrayRecord."""
  if file_format not in FORMATS:
    raise UnknownFormatError(f"unknown shard format {file_format!r}; choose from {FORMATS}")
  name = records.shard_name(prefix, index, count)
  return name + records.ARRAY_RECORD_SUFFIX if file_format == ARRAYRECORD else name


@dataclasses.dataclass(frozen=True)
class BuildLayout:
  """The paths of one build.

  Attributes:
    root: the build's output directory, local or gs://.
  """

  root: str

  def path(self, name: str) -> str:
    """A file the build names relative to its root (e.g. a shard listed in the manifest)."""
    return files.join(self.root, name)

  @property
  def manifest(self) -> str:
    return self.path(MANIFEST_NAME)

  @property
  def label_map(self) -> str:
    return self.path(LABEL_MAP_NAME)

  @property
  def requests(self) -> str:
    return self.path(REQUESTS_NAME)

  @property
  def ledger_dir(self) -> str:
    return self.path(LEDGER_DIR_NAME)

  @property
  def refresh_report(self) -> str:
    return self.path(REFRESH_REPORT_NAME)

  @property
  def as500k_report(self) -> str:
    return self.path(AS500K_REPORT_NAME)

  @property
  def media_dir(self) -> str:
    return self.path(MEDIA_DIR_NAME)

  @property
  def staging_dir(self) -> str:
    return self.path(STAGING_DIR_NAME)

  @property
  def work_list(self) -> str:
    """What the pipeline does with each clip, written by the launcher (pipelines.work_list)."""
    return files.join(self.staging_dir, WORK_LIST_NAME)

  def staged_record(self, clip_id: str) -> str:
    """Where a clip's record waits for its shard."""
    return files.join(self.staging_dir, staged_record_name(clip_id))

  def shard(self, prefix: str, index: int, count: int, file_format: str) -> str:
    return self.path(shard_file_name(prefix, index, count, file_format))
