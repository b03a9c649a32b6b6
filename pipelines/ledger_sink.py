"""Writing the failure ledger from Beam: one ledger file per bundle.

Any number of workers append without coordination (each bundle opens its own
file, shared ledger layout in :mod:`pipelines.download.ledger`); a bundle that
Beam retries writes its records again, and the later check supersedes.
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam

from pipelines.download import ledger as ledger_lib


class BundleLedger:
  """A DoFn's ledger file for its current bundle, opened at the first record (no empty files)."""

  def __init__(self, ledger_dir: str):
    self._ledger_dir = ledger_dir
    self._writer: Optional[ledger_lib.LedgerWriter] = None

  @property
  def writer(self) -> ledger_lib.LedgerWriter:
    if self._writer is None:
      self._writer = ledger_lib.LedgerWriter(self._ledger_dir)
    return self._writer

  def close(self) -> None:
    """Ends the bundle's file (call from finish_bundle)."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None


class _WriteLedgerFn(beam.DoFn):

  def __init__(self, ledger_dir: str):
    self._ledger_dir = ledger_dir
    self._ledger: Optional[BundleLedger] = None

  def setup(self):
    self._ledger = BundleLedger(self._ledger_dir)

  def process(self, record: ledger_lib.LedgerRecord):
    self._ledger.writer.append(record)

  def finish_bundle(self):
    self._ledger.close()


class WriteToLedger(beam.PTransform):
  """LedgerRecords -> appended to the ledger in `ledger_dir`."""

  def __init__(self, ledger_dir: str):
    super().__init__()
    self._ledger_dir = ledger_dir

  def expand(self, ledger_records):
    return ledger_records | "AppendToLedger" >> beam.ParDo(_WriteLedgerFn(self._ledger_dir))
