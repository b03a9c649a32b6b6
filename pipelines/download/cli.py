"""Command line: download the clips of a CSV and record each in the ledger.

    python -m pipelines.download CLIPS.csv --output_dir clips/ --ledger_dir ledger/
    python -m pipelines.download CLIPS.csv --output_dir clips/ \\
        --url_template 'http://127.0.0.1:8000/{ytid}.mp4'      # a local mirror

CLIPS.csv has one clip per line, ``YTID,START[,END,...]``; lines starting with
"#" are comments and spaces after commas are ignored, so AudioSet segment files
(``YTID, start, end, "labels"``) work as they are. When the third column is not
a number (VGGSound's ``YTID,start,label,split``), the clip lasts ``--duration``
seconds. Clip ids are ``yt_{ytid}_{start_ms:09d}`` (pipelines.sources.clip_id).
The dataset parsers in pipelines.sources are the full readers; this is the
quick path from a list of segments to files. Lines are read as those parsers
read them (pipelines.sources.rows): a line that does not read (an invalid
UTF-8 byte, a control character, an over-long line, a start that is not a
number) stops the command with ``error: FILE:LINE: reason`` and exit status 2
before anything is downloaded.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import logging
import sys
import time
from typing import Iterator, Optional

from pipelines.download import breaker
from pipelines.download.downloader import ClipDownloader
from pipelines.download.ledger import LedgerRecord, LedgerWriter
from pipelines.download.options import add_download_arguments, download_config
from pipelines.download.results import DownloadRequest
from pipelines.sources import rows as rows_lib
from pipelines.sources.clip_id import is_youtube_id, youtube_clip_id
from shared.failures import Reason


class ClipListError(rows_lib.BadRowError):
  """A clip list line that cannot be read as YTID,START[,END] (file, line, reason)."""


def read_clip_list(path: str, default_duration_s: float = 10.0) -> Iterator[DownloadRequest]:
  """The clips of a ``YTID,START[,END,...]`` file, in file order.

  Malformed YouTube ids are passed through: the downloader refuses them and
  the ledger records why. A line that does not read (rows.row_text), or
  whose start does not parse, raises ClipListError; "#" lines are comments,
  whatever their bytes.
  """
  file = str(path)
  for line_number, line in enumerate(rows_lib.read_lines(path), start=1):
    try:
      text = rows_lib.row_text(line, file, line_number)
      row = rows_lib.split_csv_line(text, file, line_number, skipinitialspace=True, strict=False)
    except rows_lib.BadRowError as error:
      if rows_lib.strip_line_ending(line).lstrip().startswith("#"):
        continue
      raise ClipListError(error.file, error.line, error.reason) from None
    if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
      continue
    if len(row) < 2:
      raise ClipListError(file, line_number, f"expected YTID,START[,END], got {rows_lib.excerpt(text)}")
    ytid = row[0].strip()
    try:
      start = float(row[1])
    except ValueError:
      raise ClipListError(file, line_number, f"start {rows_lib.excerpt(row[1])} is not a number") from None
    try:
      end = float(row[2]) if len(row) > 2 else start + default_duration_s
    except ValueError:
      end = start + default_duration_s  # VGGSound: the third column is the label
    try:
      clip_id = youtube_clip_id(ytid, row[1].strip()) if is_youtube_id(ytid) else f"line{line_number:09d}"
    except ValueError:
      clip_id = f"line{line_number:09d}"
    yield DownloadRequest(clip_id=clip_id, source_id=ytid, start_s=start, end_s=end)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.download",
      description="Download the section of each clip in a CSV with yt-dlp, verify it decodes and covers its "
      "span, and record every clip (ok or failed, and why) in the availability ledger.")
  parser.add_argument("clips", help="CSV of YTID,START[,END,...] lines (AudioSet segment files work as is)")
  parser.add_argument("--output_dir", required=True, help="directory for the clip files ({clip_id}.{ext})")
  parser.add_argument("--ledger_dir", help="ledger directory (local or gs://); this run adds one file to it")
  parser.add_argument("--duration", type=float, default=10.0, help="clip length when a line has no end (seconds)")
  add_download_arguments(parser)
  parser.add_argument("--require_audio", action="store_true", help="treat clips without audio as invalid media")
  parser.add_argument("--no_reuse", action="store_true", help="download again even if a verified file exists")
  parser.add_argument("--limit", type=int, help="only the first N clips")
  parser.add_argument("-v", "--verbose", action="store_true", help="log each clip, and yt-dlp's output")
  return parser


def main(argv: Optional[list[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if args.verbose:
    logging.getLogger("pipelines.download").setLevel(logging.DEBUG)

  config = download_config(args, args.output_dir, reuse_existing=not args.no_reuse, require_audio=args.require_audio)
  downloader = ClipDownloader(config)
  try:
    # The list is read through once first, so that a line that does not read
    # stops the command before anything is downloaded, not hours into it.
    for _ in itertools.islice(read_clip_list(args.clips, default_duration_s=args.duration), args.limit):
      pass
  except ClipListError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  clips = read_clip_list(args.clips, default_duration_s=args.duration)
  if args.limit is not None:
    clips = (clip for index, clip in enumerate(clips) if index < args.limit)

  counts = collections.Counter()
  total_bytes = 0
  started = time.monotonic()
  writer = LedgerWriter(args.ledger_dir) if args.ledger_dir else None
  try:
    suspects = []
    for result in downloader.download_many(clips):
      record = writer.append_result(result) if writer is not None else LedgerRecord.from_result(result)
      if not result.ok and breaker.is_suspect(record.reason):
        suspects.append(record)
      if result.ok:
        counts["ok"] += 1
        total_bytes += result.num_bytes
        print(f"ok      {result.clip_id}  {result.num_bytes} bytes  {result.path}", flush=True)
      else:
        counts[f"failed {result.failure_class.value}/{result.reason.value}"] += 1
        print(f"failed  {result.clip_id}  {result.failure_class.value}/{result.reason.value}: {result.message}",
              flush=True)
    if downloader.breaker.open:  # none of these failures is the clip's own: a later run asks again
      stopped = counts[f"failed {Reason.SYSTEMIC.qualified}"]
      for record in suspects:
        if writer is not None:
          writer.append(breaker.distrusted(record, stopped))
        counts[f"failed {record.reason_class}/{record.reason}"] -= 1
        counts[f"failed {Reason.SYSTEMIC.qualified}"] += 1
  finally:
    if writer is not None:
      writer.close()
  elapsed = time.monotonic() - started
  done = sum(counts.values())
  print(f"\n{done} clips in {elapsed:.1f} s: {counts['ok']} ok ({total_bytes / 1e6:.1f} MB), "
        f"{done - counts['ok']} failed")
  for key, count in sorted(counts.items()):
    if key != "ok" and count:
      print(f"  {key}: {count}")
  if writer is not None:
    print(f"ledger: {writer.path}")
  if downloader.breaker.open:
    print("error: " + breaker.stop_line([downloader.breaker.trigger], counts[f"failed {Reason.SYSTEMIC.qualified}"],
                                        "run the same command again: what is downloaded already is reused"),
          file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
