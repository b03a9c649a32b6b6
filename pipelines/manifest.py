"""The build manifest: what a build holds, why the rest is missing, and how to read it.

Written last, atomically, as ``manifest.json`` in the build's output directory:
a build without one is incomplete. The trainer reads its contract block (and
refuses a mismatch), its label map and its log-mel mean and std.

The manifest also enforces the rule that nothing is lost: every requested clip
is either in a shard or counted as failed with a reason. A build whose counts
do not add up fails instead of writing a manifest.
"""

from __future__ import annotations

import collections
import datetime
import json
import math
import platform
from typing import Any, Iterable, Mapping, Optional

import apache_beam as beam

from shared import contract, records

MANIFEST_NAME = "manifest.json"
LABEL_MAP_NAME = "label_map.json"


class NothingLostError(RuntimeError):
  """Requested clips do not equal written plus failed clips."""


def manifest_path(output_dir: str) -> str:
  return output_dir.rstrip("/") + "/" + MANIFEST_NAME


def read_manifest(output_dir: str) -> dict:
  """Loads a finished build's manifest (local or gs://)."""
  with records.open_file(manifest_path(output_dir), "r") as f:
    return json.load(f)


def write_json_atomically(path: str, payload: Mapping[str, Any]) -> None:
  temporary = path + ".incomplete"
  with records.open_file(temporary, "w") as f:
    f.write(json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=False))
  records.rename(temporary, path)


def library_versions() -> dict[str, str]:
  """Versions of what shaped the bytes of a build."""
  import importlib.metadata as metadata

  versions = {"python": platform.python_version()}
  for package in ("mbt-av", "apache-beam", "tensorflow-cpu", "av", "yt-dlp", "numpy", "pillow"):
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      pass
  return versions


def melspec_moments(moments: Iterable[tuple[float, float, int]]) -> tuple[Optional[float], Optional[float]]:
  """Mean and standard deviation from (sum, sum of squares, count) triples."""
  total = total_squares = 0.0
  count = 0
  for s, sq, n in moments:
    total += s
    total_squares += sq
    count += n
  if count == 0:
    return None, None
  mean = total / count
  return mean, math.sqrt(max(total_squares / count - mean * mean, 0.0))


def build_manifest(*, dataset: str, split: str, label_map: contract.LabelMap, requested: int,
                   shard_infos: Iterable, failures: Iterable[tuple[str, str]],
                   moments: Iterable[tuple[float, float, int]], build_options: Mapping[str, Any],
                   extra: Optional[Mapping[str, Any]] = None) -> dict:
  """Assembles the manifest and checks that requested = written + failed.

  Args:
    failures: (clip_id, reason) for every requested clip not in a shard.

  Raises:
    NothingLostError: if the counts do not add up, or a clip is both written
      and failed, or twice in the shards.
  """
  shard_infos = sorted(shard_infos, key=lambda info: info.index)
  failures = sorted(failures)
  written_ids = [clip_id for info in shard_infos for clip_id in info.clip_ids]
  failed_ids = [clip_id for clip_id, _ in failures]
  by_reason = collections.Counter(reason for _, reason in failures)
  problems = []
  if len(set(written_ids)) != len(written_ids):
    problems.append("a clip is in two shards")
  if set(written_ids) & set(failed_ids):
    problems.append(f"clips both written and failed: {sorted(set(written_ids) & set(failed_ids))[:5]}")
  if len(set(failed_ids)) != len(failed_ids):
    problems.append("a clip failed twice")
  if requested != len(written_ids) + len(failed_ids):
    problems.append(f"requested {requested} != written {len(written_ids)} + failed {len(failed_ids)}")
  if problems:
    raise NothingLostError(f"{dataset}/{split}: clips were lost or counted twice: " + "; ".join(problems))

  mean, std = melspec_moments(moments)
  formats = sorted({fmt for info in shard_infos for fmt in info.files})
  # Clip ids are listed under the TFRecord shard's name where there is one:
  # the name Scenic reads, and the file a refresh carries records over from.
  listed_format = "tfrecord" if "tfrecord" in formats else (formats[0] if formats else None)
  manifest = {
      "dataset": dataset,
      "split": split,
      "schema_version": contract.SCHEMA_VERSION,
      "contract": contract.contract_parameters(),
      "build_options": dict(build_options),
      "counts": {
          "requested": requested,
          "written": len(written_ids),
          "failed": len(failed_ids),
          "failed_by_reason": dict(sorted(by_reason.items())),
      },
      "melspec_mean": mean,
      "melspec_std": std,
      "shards": {fmt: [info.files[fmt] for info in shard_infos if fmt in info.files] for fmt in formats},
      "shard_clip_ids": {info.files[listed_format]: list(info.clip_ids) for info in shard_infos} if formats else {},
      "failed_clips": [{"clip_id": clip_id, "reason": reason} for clip_id, reason in failures],
      "label_map": label_map.to_json_dict(),
      "versions": library_versions(),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  if extra:
    manifest.update(extra)
  return manifest


def summary_line(manifest: Mapping[str, Any]) -> str:
  """One line a person reads at the end of a build."""
  counts = manifest["counts"]
  reasons = ", ".join(f"{reason} {n}" for reason, n in counts["failed_by_reason"].items()) or "none"
  return (f"{manifest['dataset']}/{manifest['split']}: requested {counts['requested']} = "
          f"written {counts['written']} + failed {counts['failed']} (failures: {reasons}); "
          f"{len(next(iter(manifest['shards'].values()), []))} shards")


class WriteManifest(beam.PTransform):
  """Gathers shard infos, failures and log-mel moments into manifest.json.

  Input: a dict of PCollections {"shards": ShardInfo, "failures": (clip_id,
  reason), "moments": (sum, sum_sq, count)}. Output: the manifest dict.
  """

  def __init__(self, output_dir: str, *, dataset: str, split: str, label_map: contract.LabelMap,
               requested: int, build_options: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None):
    super().__init__()
    self._output_dir = output_dir
    self._kwargs = dict(dataset=dataset, split=split, label_map=label_map, requested=requested,
                        build_options=dict(build_options), extra=dict(extra or {}))

  def expand(self, inputs):
    output_dir, kwargs = self._output_dir, self._kwargs
    shards = inputs["shards"] | "ShardsToList" >> beam.combiners.ToList()
    failures = inputs["failures"] | "FailuresToList" >> beam.combiners.ToList()
    moments = inputs["moments"] | "MomentsToList" >> beam.combiners.ToList()

    def write(_, shard_infos, failure_list, moment_list):
      manifest = build_manifest(shard_infos=shard_infos, failures=failure_list, moments=moment_list, **kwargs)
      write_json_atomically(output_dir.rstrip("/") + "/" + LABEL_MAP_NAME, kwargs["label_map"].to_json_dict())
      write_json_atomically(manifest_path(output_dir), manifest)
      return manifest

    return (inputs["shards"].pipeline
            | "ManifestTrigger" >> beam.Create([None])
            | "CheckCountsAndWriteManifest" >> beam.Map(
                write, beam.pvalue.AsSingleton(shards), beam.pvalue.AsSingleton(failures),
                beam.pvalue.AsSingleton(moments)))
