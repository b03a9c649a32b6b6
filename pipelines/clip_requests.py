"""A split's requests as a file: exactly what a build was asked for.

The launcher writes ``OUTPUT_DIR/requests.jsonl.gz`` before the pipeline runs:
one JSON line per requested clip (id, source, span, labels, the EPIC fields),
then one per annotation row that could not be read, sorted by clip id. Its
fingerprint, the SHA-256 of those lines, goes into the manifest; a re-run is
the same build only if its requests have the same fingerprint, and where they
differ, :func:`describe_difference` says how.

    zcat OUTPUT_DIR/requests.jsonl.gz | head
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
from typing import Any, Iterable, Mapping, Optional, Sequence

from pipelines.sources.rows import ClipRequest, EpicAnnotation
from shared import files

_REQUEST = "request"
_BAD_ROW = "unreadable_row"


@dataclasses.dataclass(frozen=True)
class BadRow:
  """An annotation row that became no request.

  Attributes:
    clip_id: the ledger's id for it (file and line).
    reason: why it could not be read.
  """

  clip_id: str
  reason: str


@dataclasses.dataclass(frozen=True)
class Requests:
  """What a build is asked for.

  Attributes:
    clips: the clips to build, sorted by clip id.
    bad_rows: the annotation rows that could not be read, sorted by clip id.
  """

  clips: tuple[ClipRequest, ...]
  bad_rows: tuple[BadRow, ...] = ()

  @classmethod
  def of(cls, clips: Iterable[ClipRequest], bad_rows: Iterable[BadRow] = ()) -> "Requests":
    return cls(tuple(sorted(clips, key=lambda r: r.clip_id)), tuple(sorted(bad_rows, key=lambda b: b.clip_id)))

  def lines(self) -> list[bytes]:
    """The canonical JSON lines, newline included."""
    documents = [{"kind": _REQUEST, **request_to_json(r)} for r in self.clips]
    documents += [{"kind": _BAD_ROW, **dataclasses.asdict(b)} for b in self.bad_rows]
    return [(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8") for d in documents]

  def fingerprint(self) -> str:
    digest = hashlib.sha256()
    for line in self.lines():
      digest.update(line)
    return digest.hexdigest()


def request_to_json(request: ClipRequest) -> dict[str, Any]:
  """A request as a JSON object (request_from_json reads it back)."""
  document = dataclasses.asdict(request)
  document["label_indices"] = list(request.label_indices)
  document["label_names"] = list(request.label_names)
  return document


def request_from_json(document: Mapping[str, Any]) -> ClipRequest:
  fields = {k: v for k, v in document.items() if k != "kind"}
  epic = fields.get("epic")
  if epic is not None:
    epic = EpicAnnotation(**{**epic, "all_nouns": tuple(epic["all_nouns"]),
                             "all_noun_classes": tuple(epic["all_noun_classes"])})
  return ClipRequest(**{**fields, "label_indices": tuple(fields["label_indices"]),
                        "label_names": tuple(fields["label_names"]), "epic": epic})


def write_requests(path: str, requests: Requests) -> None:
  """Writes the requests file atomically; the same requests give the same bytes."""
  buffer = io.BytesIO()
  with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed:  # mtime 0: no time in the bytes
    for line in requests.lines():
      packed.write(line)
  files.write_bytes(path, buffer.getvalue())


def read_requests(path: str) -> Requests:
  clips, bad_rows = [], []
  for line in gzip.decompress(files.read_bytes(path)).splitlines():
    document = json.loads(line)
    if document.get("kind") == _BAD_ROW:
      bad_rows.append(BadRow(document["clip_id"], document["reason"]))
    else:
      clips.append(request_from_json(document))
  return Requests.of(clips, bad_rows)


def _example(ids: Sequence[str], describe) -> str:
  return f" (e.g. {describe(ids[0])})" if ids else ""


def describe_difference(before: Optional[Requests], now: Requests, max_named: int = 1) -> str:
  """How `now` differs from `before`, in a few words (`before` None: not known in detail)."""
  if before is None:
    return "other requests (the finished build lists them in no requests file)"
  old = {r.clip_id: r for r in before.clips}
  new = {r.clip_id: r for r in now.clips}
  parts = []
  added = sorted(set(new) - set(old))
  removed = sorted(set(old) - set(new))
  common = sorted(set(old) & set(new))
  spans = [c for c in common if (old[c].start_s, old[c].end_s) != (new[c].start_s, new[c].end_s)]
  labels = [c for c in common if (old[c].label_indices, old[c].label_names) != (new[c].label_indices,
                                                                               new[c].label_names)]
  other = [c for c in common if c not in spans and c not in labels and old[c] != new[c]]
  if added:
    parts.append(f"{len(added)} new clips{_example(added, str)}")
  if removed:
    parts.append(f"{len(removed)} clips no longer requested{_example(removed, str)}")
  if spans:
    parts.append(f"{len(spans)} clips with other spans" + _example(
        spans, lambda c: f"{c}: {old[c].start_s:g}-{old[c].end_s:g} s there, {new[c].start_s:g}-{new[c].end_s:g} s now"))
  if labels:
    parts.append(f"{len(labels)} clips with other labels" + _example(
        labels, lambda c: f"{c}: {list(old[c].label_names)} there, {list(new[c].label_names)} now"))
  if other:
    parts.append(f"{len(other)} clips with other fields{_example(other, str)}")
  if set(before.bad_rows) != set(now.bad_rows):
    parts.append(f"other unreadable rows ({len(before.bad_rows)} there, {len(now.bad_rows)} now)")
  return ", ".join(parts) or "the same requests"
