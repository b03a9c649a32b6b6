"""The build manifest: what a build holds, why the rest is missing, under which contract.

``manifest.json`` is written last, atomically, into a build's output directory
(:class:`shared.layout.BuildLayout`): a build without one is unfinished. Every
builder writes it through :func:`write_manifest` (the Beam builds in
``pipelines/``, the synthetic builder in ``trainer/data/``) and every reader
reads it through :func:`read_manifest` (refreshes, the trainer), so its JSON
keys are spelled here only.

The record also keeps the rule that nothing is lost: every requested clip is
either in a shard or failed with a reason, and no clip is counted twice. A
manifest whose accounts do not add up cannot be made, nor read.

The JSON document, in order (``manifest_version`` is the layout of this file;
``schema_version`` that of the records)::

    manifest_version, dataset, split, schema_version, contract, build_options,
    request_fingerprint, counts {requested, written, failed, failed_by_reason}, melspec_mean,
    melspec_std, clips_without_audio [clip id], shards {format: [file]}, shard_clip_ids {file: [clip id]},
    failed_clips [{clip_id, reason}], label_map, versions, created,
    previous_build (refreshes), label_maps {name: label map} (EPIC-KITCHENS),
    clip_origins {counts {origin: clips}, default, listed {origin: [clip id]}}

``clip_origins`` says where each written clip came from (:class:`ClipOrigin`):
every clip is from ``default`` unless it is listed under another origin. The
commonest origin is the default, so the block holds only the clips of the
others (a 500k-clip build downloaded but for 20k local files lists 20k ids,
not 500k); manifests written before it have none.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import json
from typing import Any, Mapping, Optional

from shared import contract as contract_lib, files, layout as layout_lib

# Bump when the layout of manifest.json changes; readers refuse others.
MANIFEST_VERSION = 1


class ManifestError(ValueError):
  """A manifest is missing, unreadable, or not a manifest this code reads."""


class NothingLostError(ManifestError):
  """Requested clips do not equal written plus failed clips, or a clip is counted twice."""


class ClipOrigin(str, enum.Enum):
  """Where a written clip's record came from; the order breaks ties for the default."""

  DOWNLOADED = "downloaded"  # made from a section downloaded, by this run or an earlier one
  LOCAL = "local"  # made from a file the user already had (--videos_dir, EPIC-KITCHENS' videos)
  CARRIED_OVER = "carried_over"  # a refresh took the previous build's record (relabelled)

  def __str__(self) -> str:
    return self.value


@dataclasses.dataclass(frozen=True)
class ClipOrigins:
  """Where each written clip came from: one origin for all, but the clips listed under others.

  Attributes:
    default: the origin of every written clip not listed (the commonest;
      None when nothing is written).
    listed: origin -> its clips, sorted; never the default's.
  """

  default: Optional[str]
  listed: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    known = {origin.value for origin in ClipOrigin}
    unknown = sorted({*self.listed, *([self.default] if self.default is not None else [])} - known)
    if unknown:
      raise ManifestError(f"unknown clip origins {unknown}; known: {sorted(known)}")
    if self.default in self.listed:
      raise ManifestError(f"clips listed under the default origin {self.default!r}")

  @classmethod
  def of(cls, origin_by_clip: Mapping[str, str]) -> "ClipOrigins":
    """The compact form of clip id -> origin."""
    by_origin = collections.defaultdict(list)
    for clip_id, origin in origin_by_clip.items():
      by_origin[str(origin)].append(clip_id)
    if not by_origin:
      return cls(default=None)
    order = [origin.value for origin in ClipOrigin]
    default = max(by_origin, key=lambda origin: (len(by_origin[origin]), -order.index(origin) if origin in order
                                                  else -len(order)))
    return cls(default=default, listed={origin: tuple(sorted(ids)) for origin, ids in sorted(by_origin.items())
                                        if origin != default})

  def origin_of(self, clip_id: str) -> Optional[str]:
    """The origin of a written clip (the default for any clip not listed)."""
    return self._listed_origin.get(clip_id, self.default)

  @functools.cached_property
  def _listed_origin(self) -> dict[str, str]:
    return {clip_id: origin for origin, ids in self.listed.items() for clip_id in ids}

  def by_clip(self, written: frozenset[str]) -> dict[str, str]:
    """Clip id -> origin for the written clips."""
    found = {clip_id: self.default for clip_id in written}
    found.update((clip_id, origin) for origin, ids in self.listed.items() for clip_id in ids)
    return found

  def counts(self, written: int) -> dict[str, int]:
    """Origin -> clips, given how many are written, largest first."""
    counts = {origin: len(ids) for origin, ids in self.listed.items()}
    if self.default is not None:
      counts[self.default] = written - sum(counts.values())
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclasses.dataclass(frozen=True)
class ClipCounts:
  """How many clips a build was asked for, holds, and lacks (by ``class/reason``).

  Attributes:
    requested: clips asked for (annotation rows, bad ones included).
    written: clips in the shards.
    failed: clips not in the shards.
    failed_by_reason: ``class/reason`` -> clips, sorted by reason.
  """

  requested: int
  written: int
  failed: int
  failed_by_reason: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class FailedClip:
  """A requested clip that is not in the shards.

  Attributes:
    clip_id: the clip.
    reason: ``class/reason`` from shared.failures.
  """

  clip_id: str
  reason: str


@dataclasses.dataclass(frozen=True)
class Manifest:
  """One finished build of one split.

  Attributes:
    dataset: dataset name, e.g. "vggsound".
    split: split name; also the shard file prefix of pipeline builds.
    requested: clips asked for.
    shards: format ("tfrecord", "arrayrecord") -> shard file names, relative
      to the build's directory, in shard order.
    shard_clip_ids: shard file name -> its clips in file order. Listed under
      the TFRecord shard's name where there is one (what Scenic reads and a
      refresh carries records over from), else the ArrayRecord one.
    shard_sizes: shard file name -> its size in bytes, for every file of
      every format: a reader checks a shard with one look at its size
      instead of reading it ({} in manifests written before sizes were).
    failed_clips: every requested clip not in a shard, sorted by clip id.
    label_map: the label map the records' clip/label/index values index into.
    melspec_mean: mean of the log-mel values of every written clip with audio
      (None: there is none).
    melspec_std: their standard deviation (None: no clip written).
    clips_without_audio: written clips whose source had no audio stream (their
      log-mel is silence's, left out of the moments), sorted.
    build_options: the options that shaped the bytes and the shard set.
    request_fingerprint: SHA-256 of what was asked (the build's requests file):
      a re-run is the same build only if it asks the same.
    extra_label_maps: further label maps by name (EPIC-KITCHENS' verbs and nouns).
    previous_build: the build a refresh carried clips over from.
    clip_origins: where each written clip came from; None in manifests
      written before origins were recorded (and by builders that do not).
    versions: versions of what shaped the bytes (Python, libraries).
    created: when the build finished, UTC ISO 8601.
    contract: the data contract's parameters the records were made under.
    schema_version: the record schema version.
  """

  dataset: str
  split: str
  requested: int
  shards: Mapping[str, tuple[str, ...]]
  shard_clip_ids: Mapping[str, tuple[str, ...]]
  failed_clips: tuple[FailedClip, ...]
  label_map: contract_lib.LabelMap
  melspec_mean: Optional[float]
  melspec_std: Optional[float]
  clips_without_audio: tuple[str, ...] = ()
  shard_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
  build_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  request_fingerprint: Optional[str] = None
  extra_label_maps: Mapping[str, contract_lib.LabelMap] = dataclasses.field(default_factory=dict)
  previous_build: Optional[str] = None
  clip_origins: Optional[ClipOrigins] = None
  versions: Mapping[str, str] = dataclasses.field(default_factory=dict)
  created: Optional[str] = None
  contract: Mapping[str, Any] = dataclasses.field(default_factory=contract_lib.contract_parameters)
  schema_version: int = contract_lib.SCHEMA_VERSION

  def __post_init__(self):
    written = [clip_id for ids in self.shard_clip_ids.values() for clip_id in ids]
    failed = [clip.clip_id for clip in self.failed_clips]
    problems = []
    if len(set(written)) != len(written):
      problems.append("a clip is in two shards")
    both = set(written) & set(failed)
    if both:
      problems.append(f"clips both written and failed: {sorted(both)[:5]}")
    if len(set(failed)) != len(failed):
      problems.append("a clip failed twice")
    if self.requested != len(written) + len(failed):
      problems.append(f"requested {self.requested} != written {len(written)} + failed {len(failed)}")
    stray = set(self.clips_without_audio) - set(written)
    if stray:
      problems.append(f"clips without audio that are not written: {sorted(stray)[:5]}")
    if self.clip_origins is not None:
      listed = [clip_id for ids in self.clip_origins.listed.values() for clip_id in ids]
      stray = set(listed) - set(written)
      if stray:
        problems.append(f"clips with an origin that are not written: {sorted(stray)[:5]}")
      if len(set(listed)) != len(listed):
        problems.append("a clip has two origins")
      if written and self.clip_origins.default is None:
        problems.append("written clips without an origin")
    if problems:
      raise NothingLostError(f"{self.dataset}/{self.split}: clips were lost or counted twice: " + "; ".join(problems))
    stray = set(self.shard_sizes) - {name for names in self.shards.values() for name in names}
    if stray:
      raise ManifestError(f"{self.dataset}/{self.split}: sizes of files that are not shards: {sorted(stray)[:5]}")

  # -- what it holds --------------------------------------------------------------
  @property
  def counts(self) -> ClipCounts:
    by_reason = collections.Counter(clip.reason for clip in self.failed_clips)
    return ClipCounts(requested=self.requested, written=sum(len(ids) for ids in self.shard_clip_ids.values()),
                      failed=len(self.failed_clips), failed_by_reason=dict(sorted(by_reason.items())))

  def written_clip_ids(self) -> frozenset[str]:
    return frozenset(clip_id for ids in self.shard_clip_ids.values() for clip_id in ids)

  def failure_reasons(self) -> dict[str, str]:
    """Failed clip id -> ``class/reason``."""
    return {clip.clip_id: clip.reason for clip in self.failed_clips}

  def origin_counts(self) -> dict[str, int]:
    """Origin -> written clips ({} when the manifest does not record origins)."""
    if self.clip_origins is None:
      return {}
    return self.clip_origins.counts(sum(len(ids) for ids in self.shard_clip_ids.values()))

  def shard_holding(self) -> dict[str, str]:
    """Written clip id -> the shard file it is listed under."""
    return {clip_id: shard for shard, ids in self.shard_clip_ids.items() for clip_id in ids}

  def check_contract(self, where: str) -> None:
    """Raises contract_lib.ContractMismatchError unless the records were made under this code's contract."""
    if self.schema_version != contract_lib.SCHEMA_VERSION:
      raise contract_lib.ContractMismatchError(
          f"{where} was written under schema version {self.schema_version!r}, this code reads "
          f"{contract_lib.SCHEMA_VERSION}; rebuild the shards or check out matching code")
    contract_lib.check_contract(self.contract, where=where)

  def summary_line(self) -> str:
    """One line a person reads at the end of a build."""
    counts = self.counts
    reasons = ", ".join(f"{reason} {n}" for reason, n in counts.failed_by_reason.items()) or "none"
    num_shards = len(next(iter(self.shards.values()), ()))
    silent = f"; {len(self.clips_without_audio)} written without audio" if self.clips_without_audio else ""
    origins = self.origin_counts()
    mixed = "; written from " + ", ".join(f"{origin} {n}" for origin, n in origins.items()) if len(origins) > 1 else ""
    return (f"{self.dataset}/{self.split}: requested {counts.requested} = written {counts.written} + "
            f"failed {counts.failed} (failures: {reasons}); {num_shards} shards{silent}{mixed}")

  # -- JSON -------------------------------------------------------------------------
  def to_json_dict(self) -> dict[str, Any]:
    counts = self.counts
    document = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": self.dataset,
        "split": self.split,
        "schema_version": self.schema_version,
        "contract": dict(self.contract),
        "build_options": dict(self.build_options),
        "request_fingerprint": self.request_fingerprint,
        "counts": {"requested": counts.requested, "written": counts.written, "failed": counts.failed,
                   "failed_by_reason": dict(counts.failed_by_reason)},
        "melspec_mean": self.melspec_mean,
        "melspec_std": self.melspec_std,
        "clips_without_audio": list(self.clips_without_audio),
        "shards": {fmt: list(names) for fmt, names in self.shards.items()},
        "shard_clip_ids": {name: list(ids) for name, ids in self.shard_clip_ids.items()},
        "shard_sizes": dict(self.shard_sizes),
        "failed_clips": [{"clip_id": clip.clip_id, "reason": clip.reason} for clip in self.failed_clips],
        "label_map": self.label_map.to_json_dict(),
        "versions": dict(self.versions),
        "created": self.created,
    }
    if self.previous_build is not None:
      document["previous_build"] = self.previous_build
    if self.extra_label_maps:
      document["label_maps"] = {name: m.to_json_dict() for name, m in self.extra_label_maps.items()}
    if self.clip_origins is not None:
      document["clip_origins"] = {"counts": self.origin_counts(), "default": self.clip_origins.default,
                                  "listed": {origin: list(ids) for origin, ids in self.clip_origins.listed.items()}}
    return document

  @classmethod
  def from_json_dict(cls, document: Mapping[str, Any], where: str = "manifest") -> "Manifest":
    """Parses a manifest document.

    Raises:
      ManifestError: a required key is missing or malformed, or another
        manifest version.
      NothingLostError: its accounts do not add up.
    """
    version = document.get("manifest_version", MANIFEST_VERSION)  # manifests from before the key: version 1
    if version != MANIFEST_VERSION:
      raise ManifestError(f"{where}: manifest version {version!r}, this code reads {MANIFEST_VERSION}")
    for key in ("dataset", "split", "schema_version", "contract", "counts", "shards", "shard_clip_ids",
                "failed_clips", "label_map"):
      if key not in document:
        raise ManifestError(f"{where}: manifest.json has no {key!r}; is this a finished build?")
    try:
      label_map = contract_lib.LabelMap.from_json_dict(document["label_map"])
      extra = {name: contract_lib.LabelMap.from_json_dict(value)
               for name, value in (document.get("label_maps") or {}).items()}
    except (KeyError, TypeError, ValueError) as error:
      raise ManifestError(f"{where}: malformed label map: {error}") from error
    try:
      manifest = cls(
          dataset=document["dataset"], split=document["split"], requested=int(document["counts"]["requested"]),
          shards={fmt: tuple(names) for fmt, names in document["shards"].items()},
          shard_clip_ids={name: tuple(ids) for name, ids in document["shard_clip_ids"].items()},
          failed_clips=tuple(FailedClip(entry["clip_id"], entry["reason"]) for entry in document["failed_clips"]),
          label_map=label_map, melspec_mean=_optional_float(document.get("melspec_mean")),
          melspec_std=_optional_float(document.get("melspec_std")),
          clips_without_audio=tuple(document.get("clips_without_audio") or ()),
          shard_sizes={name: int(size) for name, size in (document.get("shard_sizes") or {}).items()},
          build_options=dict(document.get("build_options") or {}),
          request_fingerprint=document.get("request_fingerprint"), extra_label_maps=extra,
          previous_build=document.get("previous_build"), clip_origins=_clip_origins(document.get("clip_origins")),
          versions=dict(document.get("versions") or {}),
          created=document.get("created"), contract=dict(document["contract"]),
          schema_version=document["schema_version"])
    except NothingLostError as error:
      raise NothingLostError(f"{where}: {error}") from error
    except (KeyError, TypeError, ValueError, AttributeError) as error:
      raise ManifestError(f"{where}: malformed manifest: {error!r}") from error
    for key, value in dataclasses.asdict(manifest.counts).items():
      recorded = document["counts"].get(key)
      if recorded is not None and recorded != value:
        raise ManifestError(f"{where}: counts.{key} is {recorded!r}, but its clip lists make {value!r}")
    recorded = (document.get("clip_origins") or {}).get("counts")
    if recorded is not None and recorded != manifest.origin_counts():
      raise ManifestError(f"{where}: clip_origins.counts is {recorded!r}, but its clip lists make "
                          f"{manifest.origin_counts()!r}")
    return manifest


def _clip_origins(block: Optional[Mapping[str, Any]]) -> Optional[ClipOrigins]:
  if block is None:
    return None
  return ClipOrigins(default=block.get("default"),
                     listed={origin: tuple(ids) for origin, ids in (block.get("listed") or {}).items()})


def _optional_float(value) -> Optional[float]:
  return None if value is None else float(value)


def read_manifest(root: str) -> Manifest:
  """Reads `root`/manifest.json (local or gs://).

  Raises:
    ManifestError: there is none (the build is missing or unfinished), or it
      is not a manifest this code reads.
  """
  path = layout_lib.BuildLayout(root).manifest
  if not files.exists(path):
    raise ManifestError(f"no {layout_lib.MANIFEST_NAME} in {root}: the build is missing or unfinished "
                        "(builds write the manifest last)")
  try:
    document = json.loads(files.read_bytes(path))
  except json.JSONDecodeError as error:
    raise ManifestError(f"{path} is not valid JSON: {error}") from error
  if not isinstance(document, dict):
    raise ManifestError(f"{path} holds no JSON object")
  return Manifest.from_json_dict(document, where=f"build {root}")


def write_manifest(root: str, manifest: Manifest) -> None:
  """Writes the build's label_map.json, then its manifest.json, each atomically: the manifest last."""
  build = layout_lib.BuildLayout(root)
  files.write_json(build.label_map, manifest.label_map.to_json_dict())
  files.write_json(build.manifest, manifest.to_json_dict())
