"""Reading the availability ledger from the command line.

    python -m pipelines.ledger summary LEDGER
    python -m pipelines.ledger list LEDGER --status failed --reason transient

LEDGER is a ledger directory (local or gs://), one ledger file, or a glob
pattern. ``summary`` prints clips by status, reason class and reason; ``list``
prints the latest record of each selected clip (clip ids, TSV or JSON Lines),
e.g. to feed the transient failures back into a refresh. The ledger's format
and its Python API are in :mod:`pipelines.download.ledger`.
"""

from __future__ import annotations

import argparse
import sys

from pipelines.download.ledger import STATUSES, LedgerError, format_summary, read_ledger
from shared.failures import FailureClass, Reason


def _summary(args: argparse.Namespace) -> int:
  ledger = read_ledger(args.ledger, missing_ok=args.missing_ok)
  print(format_summary(ledger, source=args.ledger))
  return 0


def _list(args: argparse.Namespace) -> int:
  ledger = read_ledger(args.ledger, missing_ok=args.missing_ok)
  records = ledger.select(status=args.status, reason=args.reason)
  out = sys.stdout
  for record in records:
    if args.format == "ids":
      out.write(record.clip_id + "\n")
    elif args.format == "jsonl":
      out.write(record.to_json_line())
    else:
      fields = (record.clip_id, record.source_id, record.status, record.reason_class or "", record.reason or "",
                str(record.attempts), record.checked_at, record.message.replace("\t", " ").replace("\n", " "))
      out.write("\t".join(fields) + "\n")
  if args.format != "ids":
    print(f"{len(records)} of {len(ledger)} clips", file=sys.stderr)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.ledger",
      description="Summarize or list the availability ledger: which clips could be fetched, and why the rest "
      "could not. Later checks of a clip supersede earlier ones.")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  def add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("ledger", help="ledger directory (local or gs://), one ledger .jsonl file, or a glob pattern")
    sub.add_argument("--missing_ok", action="store_true", help="treat a missing ledger as empty instead of failing")

  summary = commands.add_parser("summary", help="counts by status, reason class and reason",
                                description="Print clip counts by status, reason class and reason.")
  add_common(summary)
  summary.set_defaults(run=_summary)

  listing = commands.add_parser("list", help="the latest record of selected clips",
                                description="Print the latest record of each selected clip, sorted by clip id.")
  add_common(listing)
  listing.add_argument("--status", choices=STATUSES, help="only clips with this status")
  listing.add_argument("--reason", help="only clips with this reason class (" + ", ".join(FailureClass) + ") or "
                       "reason (" + ", ".join(list(Reason)[:3]) + ", ...; see python -m shared.failures)")
  listing.add_argument("--format", choices=("tsv", "ids", "jsonl"), default="tsv",
                       help="tsv: one line per clip with status, reasons, attempts, time and message (default); "
                       "ids: clip ids only; jsonl: the records")
  listing.set_defaults(run=_list)
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    return args.run(args)
  except LedgerError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  except BrokenPipeError:  # `... | head`
    return 0


if __name__ == "__main__":
  sys.exit(main())
