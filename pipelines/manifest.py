"""Assembling a build's manifest (shared.manifest) from what its pipeline wrote.

The shards written, the failures (``class/reason`` per clip), the origin of
every record and the log-mel moments meet in :class:`WriteManifest`, which checks that
nothing was lost (requested = written + failed, no clip counted twice) and
writes ``label_map.json`` and ``manifest.json``, the manifest last: a build
without one is unfinished.
"""

from __future__ import annotations

import datetime
import math
import platform
from typing import Any, Iterable, Mapping, Optional

import apache_beam as beam

from shared import contract, layout
from shared.manifest import ClipOrigins, FailedClip, Manifest, write_manifest


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
                   without_audio: Iterable[str] = (), origins: Optional[Iterable[tuple[str, str]]] = None,
                   request_fingerprint: Optional[str] = None,
                   extra_label_maps: Optional[Mapping[str, contract.LabelMap]] = None,
                   previous_build: Optional[str] = None) -> Manifest:
  """The manifest of a build's shards and failures.

  Args:
    shard_infos: pipelines.shards.ShardInfo of every shard written.
    failures: (clip_id, ``class/reason``) for every requested clip not in a shard.
    moments: (sum, sum of squares, count) of the log-mel of every clip with audio.
    without_audio: the written clips whose source had no audio.
    origins: (clip_id, origin) of every written clip; None: not recorded.

  Raises:
    shared.manifest.NothingLostError: if the counts do not add up, or a clip
      is both written and failed, or twice in the shards.
  """
  shard_infos = sorted(shard_infos, key=lambda info: info.index)
  formats = [fmt for fmt in layout.FORMATS if any(fmt in info.files for info in shard_infos)]
  # Clip ids are listed under the TFRecord shard's name where there is one:
  # the name Scenic reads, and the file a refresh carries records over from.
  listed_format = formats[0] if formats else None
  mean, std = melspec_moments(moments)
  return Manifest(
      dataset=dataset, split=split, requested=requested,
      shards={fmt: tuple(info.files[fmt] for info in shard_infos if fmt in info.files) for fmt in formats},
      shard_clip_ids={info.files[listed_format]: tuple(info.clip_ids) for info in shard_infos} if formats else {},
      shard_sizes={name: size for info in shard_infos for name, size in sorted(info.file_sizes.items())},
      failed_clips=tuple(FailedClip(clip_id, reason) for clip_id, reason in sorted(failures)),
      label_map=label_map, melspec_mean=mean, melspec_std=std, clips_without_audio=tuple(sorted(without_audio)),
      clip_origins=None if origins is None else ClipOrigins.of(dict(origins)),
      build_options=dict(build_options), request_fingerprint=request_fingerprint,
      extra_label_maps=dict(extra_label_maps or {}), previous_build=previous_build, versions=library_versions(),
      created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


class WriteManifest(beam.PTransform):
  """Gathers shard infos, failures and log-mel moments into the build's manifest.

  Input: a dict of PCollections {"shards": ShardInfo, "failures": (clip_id,
  reason), "moments": (sum, sum_sq, count), "without_audio": clip_id (optional),
  "origins": (clip_id, origin) (optional)}.
  Output: the Manifest.
  """

  def __init__(self, output_dir: str, **manifest_fields):
    """`manifest_fields`: build_manifest's keyword arguments other than the three inputs."""
    super().__init__()
    self._output_dir = output_dir
    self._fields = manifest_fields

  def expand(self, inputs):
    output_dir, fields = self._output_dir, self._fields
    shards = inputs["shards"] | "ShardsToList" >> beam.combiners.ToList()
    failures = inputs["failures"] | "FailuresToList" >> beam.combiners.ToList()
    moments = inputs["moments"] | "MomentsToList" >> beam.combiners.ToList()
    without_audio = (inputs["without_audio"] if "without_audio" in inputs
                     else inputs["shards"].pipeline | "NoneWithoutAudio" >> beam.Create([]))
    without_audio = without_audio | "WithoutAudioToList" >> beam.combiners.ToList()
    has_origins = "origins" in inputs
    origins = (inputs["origins"] if has_origins else inputs["shards"].pipeline | "NoOrigins" >> beam.Create([]))
    origins = origins | "OriginsToList" >> beam.combiners.ToList()

    def write(_, shard_infos, failure_list, moment_list, silent_list, origin_list):
      manifest = build_manifest(shard_infos=shard_infos, failures=failure_list, moments=moment_list,
                                without_audio=silent_list, origins=origin_list if has_origins else None, **fields)
      write_manifest(output_dir, manifest)
      return manifest

    return (inputs["shards"].pipeline
            | "ManifestTrigger" >> beam.Create([None])
            | "CheckCountsAndWriteManifest" >> beam.Map(
                write, beam.pvalue.AsSingleton(shards), beam.pvalue.AsSingleton(failures),
                beam.pvalue.AsSingleton(moments), beam.pvalue.AsSingleton(without_audio),
                beam.pvalue.AsSingleton(origins)))
