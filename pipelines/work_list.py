"""What a build's pipeline does with each clip: a file the launcher writes and the pipeline reads.

A Beam job's graph must not hold the clips: Dataflow refuses job requests over
20 MB, and a ``beam.Create`` of AS-500K's requests alone is about 28 MB. So the
launcher writes its plan once, ``OUTPUT_DIR/staging/work.jsonl.gz``, one item
a line:

    {"fetch": REQUEST}                      fetch and build this clip
    {"carry_over": REQUEST, "shard": NAME}  a refresh: its record is in the previous build's shard NAME
    {"known_failure": LEDGER_RECORD}        an unreadable row, a permanent failure kept
    {"written_shard": NAME}                 a resumed build: this shard was finished before the run died
    {"origin": ORIGIN, "clip_id": ID}       a resumed build from several sources: where the ledger says
                                            a clip it fetched came from (its recovered record keeps it)

and :class:`ReadWorkList` reads it with a text source and splits it by kind.
The graph holds the file's name only, whatever the number of clips.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Iterable, NamedTuple

import apache_beam as beam

from pipelines.clip_requests import request_from_json, request_to_json
from pipelines.download.ledger import LedgerRecord
from pipelines.sources.rows import ClipRequest
from shared import files

FETCH = "fetch"
CARRY_OVER = "carry_over"
KNOWN_FAILURE = "known_failure"
WRITTEN_SHARD = "written_shard"
ORIGIN = "origin"
KINDS = (FETCH, CARRY_OVER, KNOWN_FAILURE, WRITTEN_SHARD, ORIGIN)


class WorkList(NamedTuple):
  """The work of one build, as PCollections.

  Attributes:
    fetch: ClipRequests to fetch.
    carry_over: (ClipRequest, previous shard name) pairs of a refresh.
    known_failures: LedgerRecords of clips known to fail before anything runs.
    written_shards: names of this build's shards a killed run finished.
    origins: (clip id, origin) of the clips a killed run fetched, as its ledger says.
  """

  fetch: beam.PCollection
  carry_over: beam.PCollection
  known_failures: beam.PCollection
  written_shards: beam.PCollection
  origins: beam.PCollection


def write_work_list(path: str, *, fetch: Iterable[ClipRequest], carry_over: Iterable[tuple[ClipRequest, str]] = (),
                    known_failures: Iterable[LedgerRecord] = (), written_shards: Iterable[str] = (),
                    origins: Iterable[tuple[str, str]] = ()) -> int:
  """Writes the work list atomically; returns its number of items."""
  buffer = io.BytesIO()
  count = 0
  with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed:
    def put(item: dict) -> None:
      nonlocal count
      packed.write((json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
      count += 1

    for request in fetch:
      put({FETCH: request_to_json(request)})
    for request, shard in carry_over:
      put({CARRY_OVER: request_to_json(request), "shard": shard})
    for record in known_failures:
      put({KNOWN_FAILURE: record.to_json_dict()})
    for shard in written_shards:
      put({WRITTEN_SHARD: shard})
    for clip_id, origin in origins:
      put({ORIGIN: origin, "clip_id": clip_id})
  files.write_bytes(path, buffer.getvalue())
  return count


def _kind(item: dict) -> str:
  return next(kind for kind in KINDS if kind in item)


def _partition(item: dict, num_partitions: int) -> int:
  del num_partitions
  return KINDS.index(_kind(item))


class ReadWorkList(beam.PTransform):
  """OUTPUT_DIR/staging/work.jsonl.gz -> WorkList."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def expand(self, pipeline) -> WorkList:
    items = (pipeline
             # validate=False: the file is written when the job runs, not when the graph is made.
             | "ReadLines" >> beam.io.ReadFromText(self._path, compression_type=beam.io.filesystem.CompressionTypes.GZIP,
                                                   validate=False)
             | "ParseItems" >> beam.Map(json.loads))
    fetch, carry_over, known, written, origins = items | "ByKind" >> beam.Partition(_partition, len(KINDS))
    return WorkList(
        fetch=fetch | "Requests" >> beam.Map(lambda item: request_from_json(item[FETCH])).with_output_types(ClipRequest),
        carry_over=carry_over | "CarriedRequests" >> beam.Map(
            lambda item: (request_from_json(item[CARRY_OVER]), item["shard"])),
        known_failures=known | "FailureRecords" >> beam.Map(
            lambda item: LedgerRecord.from_json_dict(item[KNOWN_FAILURE])).with_output_types(LedgerRecord),
        written_shards=written | "ShardNames" >> beam.Map(lambda item: item[WRITTEN_SHARD]),
        origins=origins | "ClipOrigins" >> beam.Map(lambda item: (item["clip_id"], item[ORIGIN])))
