"""Refreshing a build: keep what was built, fetch only what is new or worth retrying.

YouTube datasets erode; maintainers re-run a build to refresh a split. Given
the previous build's directory (its manifest and ledger):

* clips already in the previous shards are carried over from those shards,
  never downloaded again; their labels are taken from the current annotations
  (a clip whose span changed is fetched again);
* clips that failed for a transient reason (or needed cookies, or whose media
  was invalid) are fetched again;
* clips that failed permanently (private, removed, 404, ...) are not
  re-checked unless ``--recheck_unavailable``; their failure carries over;
* new clips are fetched.

After the build, :func:`refresh_report` compares the two manifests: kept, new,
recovered, lost, still failing and newly failing clips, with their ids.

    python -m pipelines.refresh --help
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Iterable, Mapping, Optional, Sequence

import apache_beam as beam

from pipelines import clip_requests, shards
from pipelines.download import ledger as ledger_lib
from pipelines.shards import EncodedClip
from pipelines.sources.rows import ClipRequest
from shared import contract, files, layout, records
from shared.failures import FailureClass, Reason
from shared.manifest import ClipOrigin, Manifest, ManifestError, read_manifest

# Build options that change the bytes of a record: a previous build made with
# other values cannot be carried over.
FEATURE_OPTIONS = ("frame_short_side", "jpeg_quality")


class RefreshError(ValueError):
  """The previous build cannot be refreshed from (incomplete, or not a build)."""


@dataclasses.dataclass(frozen=True)
class RefreshPlan:
  """What a refresh does with each requested clip.

  Attributes:
    to_fetch: clips to fetch now (new, retried, or rechecked).
    carry_over: clip id -> file name of the previous shard holding it.
    carried_failures: permanent failures kept without a new check.
    previous_manifest: the previous build's manifest.
    previous_dir: the previous build's directory.
    reason_not_carried: why nothing was carried over, if so (e.g. another contract).
  """

  to_fetch: tuple[ClipRequest, ...]
  carry_over: Mapping[str, str]
  carried_failures: tuple[ledger_lib.LedgerRecord, ...]
  previous_manifest: Manifest
  previous_dir: str
  reason_not_carried: Optional[str] = None


def plan_refresh(requests: Sequence[ClipRequest], previous_dir: str, build_options: Mapping,
                 recheck_unavailable: bool = False) -> RefreshPlan:
  """Decides, per requested clip, whether to carry it over, fetch it, or keep its failure."""
  try:
    previous = read_manifest(previous_dir)
  except Exception as error:  # missing file, bad JSON, unreachable bucket
    raise RefreshError(f"{previous_dir} holds no finished build (its {layout.MANIFEST_NAME} "
                       f"cannot be read: {error})") from error

  reason_not_carried = None
  try:
    previous.check_contract(where=f"previous build {previous_dir}")
  except contract.ContractMismatchError as error:
    reason_not_carried = str(error)
  previous_options = previous.build_options
  changed = [k for k in FEATURE_OPTIONS if k in previous_options and previous_options[k] != build_options.get(k)]
  if changed and reason_not_carried is None:
    reason_not_carried = f"previous build used other feature options: {', '.join(changed)}"

  in_shards = {} if reason_not_carried else previous.shard_holding()
  previous_build = layout.BuildLayout(previous_dir)
  # A clip id names a source and a start; the span's end is in the previous requests (builds made before
  # requests files were written are trusted by clip id).
  asked_before = {}
  if files.exists(previous_build.requests):
    asked_before = {r.clip_id: r for r in clip_requests.read_requests(previous_build.requests).clips}
  previous_failures = {}
  for record in ledger_lib.read_ledger(previous_build.ledger_dir, missing_ok=True).records.values():
    if record.status == ledger_lib.STATUS_FAILED:
      previous_failures[record.clip_id] = record

  to_fetch, carry_over, carried_failures = [], {}, []
  for request in requests:
    before = asked_before.get(request.clip_id)
    if before is not None and (before.source_id, before.start_s, before.end_s) != (
        request.source_id, request.start_s, request.end_s):
      to_fetch.append(request)  # another span of the source now: nothing of the old one carries over
      continue
    if request.clip_id in in_shards:
      carry_over[request.clip_id] = in_shards[request.clip_id]
      continue
    failure = previous_failures.get(request.clip_id)
    # A span refused as invalid was judged by the build (its annotations and
    # --max_span_seconds), not by YouTube: this build judges it again.
    if (failure is not None and failure.reason_class == FailureClass.PERMANENT.value and not recheck_unavailable
        and failure.reason != Reason.INVALID_SPAN.value):
      carried_failures.append(failure)
      continue
    to_fetch.append(request)
  if reason_not_carried:
    logging.warning("refresh: nothing carried over from %s: %s", previous_dir, reason_not_carried)
  return RefreshPlan(to_fetch=tuple(to_fetch), carry_over=carry_over, carried_failures=tuple(carried_failures),
                     previous_manifest=previous, previous_dir=previous_dir, reason_not_carried=reason_not_carried)


def relabel(record: records.ClipRecord, request: ClipRequest) -> records.ClipRecord:
  """A carried-over record with the current annotations' labels (they may have changed)."""
  epic = request.epic
  return dataclasses.replace(
      record, label_indices=list(request.label_indices), label_names=list(request.label_names),
      verb_index=epic.verb_class if epic else contract.NO_LABEL,
      noun_index=epic.noun_class if epic else contract.NO_LABEL,
      action_index=epic.action_index if epic else contract.NO_LABEL)


class CarryOverPreviousClips(beam.PTransform):
  """(ClipRequest, previous shard name) pairs -> EncodedClips read from the previous build's shards.

  Joins the previous records with the current requests by clip id, so labels
  come from the current annotations; nothing is downloaded.
  """

  def __init__(self, previous_dir: str):
    super().__init__()
    self._previous_dir = previous_dir

  def expand(self, carried):
    previous = layout.BuildLayout(self._previous_dir)

    def records_of(path: str):
      for serialized in shards.read_shard_records(path):
        record = records.decode(serialized)
        yield record.clip_id, record

    previous_records = (carried
                        | "PreviousShardPaths" >> beam.Map(lambda pair: previous.path(pair[1]))
                        | "EachShardOnce" >> beam.Distinct()
                        | "ReadPreviousShards" >> beam.FlatMap(records_of))
    requests = carried | "ByClipId" >> beam.Map(lambda pair: (pair[0].clip_id, pair[0]))
    return ({"record": previous_records, "request": requests}
            | "JoinWithCurrentAnnotations" >> beam.CoGroupByKey()
            | "Relabel" >> beam.FlatMap(_relabelled))


def _relabelled(joined):
  clip_id, groups = joined
  found, requests = list(groups["record"]), list(groups["request"])
  if not requests:
    return  # in a carried shard, but not carried over
  if len(found) != 1 or len(requests) != 1:
    raise RefreshError(f"clip {clip_id}: {len(found)} previous records and {len(requests)} requests")
  yield EncodedClip.from_record(relabel(found[0], requests[0]), origin=ClipOrigin.CARRIED_OVER.value)


def refresh_report(previous: Manifest, current: Manifest) -> dict:
  """Kept / new / recovered / lost / still failing / newly failing clips, with ids."""
  before_ok, after_ok = previous.written_clip_ids(), current.written_clip_ids()
  before_failed, after_failed = previous.failure_reasons(), current.failure_reasons()
  before_all = before_ok | set(before_failed)
  report = {
      "previous_build_created": previous.created,
      "kept": sorted(before_ok & after_ok),
      "new": sorted(after_ok - before_all),
      "recovered": sorted(after_ok & set(before_failed)),
      "lost": sorted(before_ok - after_ok),
      "still_failing": sorted(set(after_failed) & set(before_failed)),
      "newly_failing": sorted(set(after_failed) - set(before_failed)),
  }
  report["counts"] = {key: len(value) for key, value in report.items() if isinstance(value, list)}
  report["lost_reasons"] = {clip_id: after_failed.get(clip_id, "no longer requested") for clip_id in report["lost"]}
  report["newly_failing_reasons"] = {clip_id: after_failed[clip_id] for clip_id in report["newly_failing"]}
  return report


def format_refresh_report(report: Mapping) -> str:
  counts = report["counts"]
  return ("refresh: " + ", ".join(f"{key.replace('_', ' ')} {counts[key]}" for key in
                                  ("kept", "new", "recovered", "lost", "still_failing", "newly_failing")))


def carried_ledger_records(plan: RefreshPlan) -> Iterable[ledger_lib.LedgerRecord]:
  """The previous ledger's records of carried-over clips, as they are: their availability as last checked.

  Their origin stays the one their media had (downloaded, local); the new
  manifest says the records were carried over.
  """
  previous = ledger_lib.read_ledger(layout.BuildLayout(plan.previous_dir).ledger_dir, missing_ok=True).records
  for clip_id in sorted(plan.carry_over):
    if clip_id in previous:
      yield previous[clip_id]


def main(argv: Optional[Sequence[str]] = None) -> int:
  """``python -m pipelines.refresh PREVIOUS_BUILD NEW_BUILD``: what a refresh changed."""
  import argparse
  import json

  parser = argparse.ArgumentParser(
      prog="python -m pipelines.refresh",
      description="Compare two finished builds of a split: kept, new, recovered, lost, still and newly failing "
      "clips. To refresh a build, run its build_* command with --output_dir NEW --previous_build OLD "
      "(add --recheck_unavailable to retry permanent failures too).")
  parser.add_argument("previous_build", help="the older build's directory")
  parser.add_argument("new_build", help="the newer build's directory")
  parser.add_argument("--json", action="store_true", help="print the whole report (with clip ids) as JSON")
  args = parser.parse_args(argv)
  try:
    report = refresh_report(read_manifest(args.previous_build), read_manifest(args.new_build))
  except ManifestError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(json.dumps(report, indent=1) if args.json else format_refresh_report(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())
