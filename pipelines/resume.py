"""Clip-level resume: a build re-run after its job died fetches no clip whose record it already made.

The checkpoint lies on the output filesystem, so it survives the workers'
local disks: every record waits in ``staging/`` from the moment it is made
until its shard is written, and a shard is renamed into place only when
complete. :class:`ResumeFromCheckpoint` takes the requests to fetch and the
shards the dead run finished, and returns the records it recovers (from those
shards, or from staging) and the requests still to fetch. A shard is written
again with the same bytes, so the result equals an uninterrupted build.

A recovered record keeps its origin (shared.manifest.ClipOrigin) for the
manifest. A build with one source knows it; a build from local files and
downloads takes it from the ledger's record of the clip (the launcher lists
them in the work list), and makes a clip again whose origin the ledger does
not hold (its worker died before its ledger file was closed).
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam

from pipelines.shards import EncodedClip, StageClips, read_shard_records
from shared import files, layout, records

TO_FETCH = "to_fetch"
NOT_IN_SHARDS = "not_in_shards"


def _recovered(serialized: bytes, origin: Optional[str], staged_path=None) -> EncodedClip:
  clip = EncodedClip.from_record(records.decode(serialized), serialized, origin=origin)
  return clip if staged_path is None else clip._replace(serialized=b"", staged_path=staged_path)


class _ReuseStagedRecordFn(beam.DoFn):
  """A (request, origin) whose record waits in staging -> that record; others' requests go on to be fetched."""

  def __init__(self, output_dir: str):
    self._output_dir = output_dir
    self._reused = beam.metrics.Metrics.counter("resume", "records_reused_from_staging")

  def process(self, request_and_origin):
    request, origin = request_and_origin
    path = layout.BuildLayout(self._output_dir).staged_record(request.clip_id)
    if not files.exists(path):
      yield beam.pvalue.TaggedOutput(TO_FETCH, request)
      return
    try:
      clip = _recovered(files.read_bytes(path), origin, staged_path=path)
    except records.RecordError:  # not a whole record (cannot happen to an atomic write): make it again
      yield beam.pvalue.TaggedOutput(TO_FETCH, request)
      return
    self._reused.inc()
    yield clip


def _by_clip_id(serialized: bytes) -> tuple[str, EncodedClip]:
  clip = _recovered(serialized, origin=None)
  return clip.clip_id, clip


def _split_by_shard_contents(joined):
  clip_id, groups = joined
  requests, found = list(groups["request"]), list(groups["record"])
  if not requests:
    return  # a record of the shard whose request is gone cannot happen with equal requests; ignore it
  request, origin = requests[0]
  if found:
    yield found[0]._replace(origin=origin)
  else:
    yield beam.pvalue.TaggedOutput(NOT_IN_SHARDS, (request, origin))


def _with_known_origin(joined):
  """(clip id, {request, origin}) -> (request, origin), or the request to make again when no origin is known."""
  _, groups = joined
  requests, origins = list(groups["request"]), list(groups["origin"])
  if not requests:
    return
  if origins:
    yield requests[0], origins[0]
  else:
    yield beam.pvalue.TaggedOutput(TO_FETCH, requests[0])


class ResumeFromCheckpoint(beam.PTransform):
  """(ClipRequests, finished shards' names, (clip id, origin) pairs) -> (recovered EncodedClips, requests to fetch).

  Args:
    output_dir: the build's output directory.
    shards_written: whether the dead run finished any shard (else they are not read).
    records_staged: whether records wait in staging (else none is looked for).
    origin: the origin of every clip of a build with one source; None: each
      clip's from the (clip id, origin) pairs, and a clip without one is made again.
  """

  def __init__(self, output_dir: str, *, shards_written: bool, records_staged: bool, origin: Optional[str] = None):
    super().__init__()
    self._output_dir = output_dir
    self._shards_written = shards_written
    self._records_staged = records_staged
    self._origin = origin

  def expand(self, inputs):
    requests, written_shards, origins = inputs
    build = layout.BuildLayout(self._output_dir)
    to_fetch, recovered = [], []
    if self._origin is not None:
      origin = self._origin
      with_origin = requests | "WithTheBuildsOrigin" >> beam.Map(lambda request: (request, origin))
    else:
      split = ({"request": requests | "RequestsByClipId" >> beam.Map(lambda r: (r.clip_id, r)), "origin": origins}
               | "JoinWithLedgerOrigins" >> beam.CoGroupByKey()
               | "OriginKnownOrToFetch" >> beam.FlatMap(_with_known_origin).with_outputs(TO_FETCH, main="known"))
      with_origin = split.known
      to_fetch.append(split[TO_FETCH])
    if self._shards_written:
      in_shards = (written_shards
                   | "WrittenShardPaths" >> beam.Map(build.path)
                   | "ReadWrittenShards" >> beam.FlatMap(read_shard_records)
                   | "RecordsByClipId" >> beam.Map(_by_clip_id))
      split = ({"request": with_origin | "ByClipId" >> beam.Map(lambda pair: (pair[0].clip_id, pair)),
                "record": in_shards}
               | "JoinWithWrittenShards" >> beam.CoGroupByKey()
               | "InShardOrNot" >> beam.FlatMap(_split_by_shard_contents).with_outputs(NOT_IN_SHARDS, main="found"))
      recovered.append(split.found | "StageRecoveredRecords" >> StageClips(build.staging_dir))
      with_origin = split[NOT_IN_SHARDS]
    if self._records_staged:
      split = with_origin | "ReuseStagedRecords" >> beam.ParDo(_ReuseStagedRecordFn(self._output_dir)).with_outputs(
          TO_FETCH, main="staged")
      recovered.append(split.staged)
      to_fetch.append(split[TO_FETCH])
    else:
      to_fetch.append(with_origin | "NotRecovered" >> beam.Map(lambda pair: pair[0]))
    requests = to_fetch[0] if len(to_fetch) == 1 else tuple(to_fetch) | "AllToFetch" >> beam.Flatten()
    if not recovered:
      return requests.pipeline | "NothingToRecover" >> beam.Create([]).with_output_types(EncodedClip), requests
    return tuple(recovered) | "Recovered" >> beam.Flatten(), requests
