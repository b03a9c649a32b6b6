"""Progress lines for a local build, read from its ledger as workers write it.

    [progress] 120/500 clips fetched (2.10/s, ETA 3.0 min); failures so far: 14 (permanent/http_404 9, ...)
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time

from pipelines.download import ledger as ledger_lib
from shared.failures import FailureClass, qualified_reason


class ProgressMonitor:
  """Prints a progress line from the ledger every `interval` seconds (local runs).

  The ledger is written as clips are fetched, by every worker process, so the
  launcher can follow a multi-process DirectRunner build without talking to it.
  """

  def __init__(self, ledger_dir: str, total: int, interval: float, stream=sys.stderr):
    self._ledger_dir = ledger_dir
    self._total = total
    self._interval = interval
    self._stream = stream
    self._stop = threading.Event()
    self._started = time.monotonic()
    self._initial = None
    self._thread = threading.Thread(target=self._run, name="build-progress", daemon=True)

  def __enter__(self):
    if self._interval > 0 and self._total > 0:
      self._initial = self._count()[0]
      self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    if self._thread.is_alive():
      self._thread.join(timeout=5)

  def _count(self):
    ledger = ledger_lib.read_ledger(self._ledger_dir, missing_ok=True)
    # Bad annotation rows are in the ledger too, but were never fetched.
    fetched = [r for r in ledger.records.values() if r.reason_class != FailureClass.BAD_ROW.value]
    failed = collections.Counter(qualified_reason(r.reason_class, r.reason) for r in fetched
                                 if r.status == ledger_lib.STATUS_FAILED)
    return len(fetched), failed

  def line(self) -> str:
    checked, failed = self._count()
    done = checked - (self._initial or 0)
    elapsed = time.monotonic() - self._started
    rate = done / elapsed if elapsed > 0 else 0.0
    remaining = max(self._total - done, 0)
    eta = f"{remaining / rate / 60:.1f} min" if rate > 0 else "?"
    reasons = ", ".join(f"{reason} {n}" for reason, n in failed.most_common(4)) or "none"
    return (f"[progress] {done}/{self._total} clips fetched ({rate:.2f}/s, ETA {eta}); "
            f"failures so far: {sum(failed.values())} ({reasons})")

  def _run(self):
    while not self._stop.wait(self._interval):
      try:
        print(self.line(), file=self._stream, flush=True)
      except Exception as error:  # progress must never break a build
        logging.debug("progress line failed: %s", error)
