"""Clip-level resume: a build re-run after its job died fetches no clip whose record it already made.

The checkpoint lies on the output filesystem, so it survives the workers'
local disks: every record waits in ``staging/`` from the moment it is made
until its shard is written, and a shard is renamed into place only when
complete. :class:`ResumeFromCheckpoint` takes the requests to fetch and the
shards the dead run finished, and returns the records it recovers (from those
shards, or from staging) and the requests still to fetch. A shard is written
again with the same bytes, so the result equals an uninterrupted build.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.shards import EncodedClip, StageClips, read_shard_records
from shared import files, layout, records

TO_FETCH = "to_fetch"


def _recovered(serialized: bytes, staged_path=None) -> EncodedClip:
  clip = EncodedClip.from_record(records.decode(serialized), serialized)
  return clip if staged_path is None else clip._replace(serialized=b"", staged_path=staged_path)


class _ReuseStagedRecordFn(beam.DoFn):
  """A request whose record waits in staging -> that record; others go on to be fetched."""

  def __init__(self, output_dir: str):
    self._output_dir = output_dir
    self._reused = beam.metrics.Metrics.counter("resume", "records_reused_from_staging")

  def process(self, request):
    path = layout.BuildLayout(self._output_dir).staged_record(request.clip_id)
    if not files.exists(path):
      yield beam.pvalue.TaggedOutput(TO_FETCH, request)
      return
    try:
      clip = _recovered(files.read_bytes(path), staged_path=path)
    except records.RecordError:  # not a whole record (cannot happen to an atomic write): make it again
      yield beam.pvalue.TaggedOutput(TO_FETCH, request)
      return
    self._reused.inc()
    yield clip


def _by_clip_id(serialized: bytes) -> tuple[str, EncodedClip]:
  clip = _recovered(serialized)
  return clip.clip_id, clip


def _split_by_shard_contents(joined):
  clip_id, groups = joined
  requests, found = list(groups["request"]), list(groups["record"])
  if not requests:
    return  # a record of the shard whose request is gone cannot happen with equal requests; ignore it
  if found:
    yield found[0]
  else:
    yield beam.pvalue.TaggedOutput(TO_FETCH, requests[0])


class ResumeFromCheckpoint(beam.PTransform):
  """(ClipRequests, names of finished shards) -> (recovered EncodedClips, ClipRequests to fetch).

  Args:
    output_dir: the build's output directory.
    shards_written: whether the dead run finished any shard (else they are not read).
    records_staged: whether records wait in staging (else none is looked for).
  """

  def __init__(self, output_dir: str, *, shards_written: bool, records_staged: bool):
    super().__init__()
    self._output_dir = output_dir
    self._shards_written = shards_written
    self._records_staged = records_staged

  def expand(self, inputs):
    requests, written_shards = inputs
    build = layout.BuildLayout(self._output_dir)
    recovered = []
    if self._shards_written:
      in_shards = (written_shards
                   | "WrittenShardPaths" >> beam.Map(build.path)
                   | "ReadWrittenShards" >> beam.FlatMap(read_shard_records)
                   | "RecordsByClipId" >> beam.Map(_by_clip_id))
      split = ({"request": requests | "RequestsByClipId" >> beam.Map(lambda r: (r.clip_id, r)), "record": in_shards}
               | "JoinWithWrittenShards" >> beam.CoGroupByKey()
               | "InShardOrToFetch" >> beam.FlatMap(_split_by_shard_contents).with_outputs(TO_FETCH, main="found"))
      recovered.append(split.found | "StageRecoveredRecords" >> StageClips(build.staging_dir))
      requests = split[TO_FETCH]
    if self._records_staged:
      split = requests | "ReuseStagedRecords" >> beam.ParDo(_ReuseStagedRecordFn(self._output_dir)).with_outputs(
          TO_FETCH, main="staged")
      recovered.append(split.staged)
      requests = split[TO_FETCH]
    if not recovered:
      return requests.pipeline | "NothingToRecover" >> beam.Create([]).with_output_types(EncodedClip), requests
    return tuple(recovered) | "Recovered" >> beam.Flatten(), requests
