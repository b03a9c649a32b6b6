"""Stopping a worker whose downloads fail for its own reasons, before it records live clips as gone.

An outdated extractor, a bot check, missing PO tokens, a dead proxy or
expired cookies make every clip fail the same way, and some of those ways
(HTTP 403 on media, "sign in") would be recorded as permanent: a dataset
maintainer's refresh would never ask again. So each downloader watches for a
run of failures that point at itself rather than at the clip
(:data:`SUSPECT_REASONS`, with no success in between); after `threshold` of
them it stops fetching. The clips it then does not fetch, and every suspect
failure of a build in which a worker stopped, are recorded as
``transient/systemic``, never permanent, with the cause in the message; the
build ends with one line saying what to fix.
"""

from __future__ import annotations

import collections
import re
import threading
from typing import Iterable, Optional

from shared.failures import Reason

# Failures that, in a run, say the worker is refused, not the clip.
SUSPECT_REASONS = frozenset({Reason.HTTP_FORBIDDEN, Reason.BOT_CHECK, Reason.SIGN_IN_REQUIRED, Reason.PROXY,
                             Reason.CHALLENGE_UNSOLVED})

# What to do about each, for the one line a stopped build ends with.
FIXES = {
    Reason.HTTP_FORBIDDEN: "YouTube refuses this machine's media requests: update yt-dlp (the project pins it), "
                           "add PO tokens (--extractor_args youtube:po_token=... or a provider in --plugin_dirs) "
                           "or --cookies",
    Reason.BOT_CHECK: "YouTube asks this machine to prove it is not a bot: pass --cookies from a signed-in browser, "
                      "slow down (--sleep_interval) or run from another address",
    Reason.SIGN_IN_REQUIRED: "YouTube asks this machine to sign in: pass --cookies from a signed-in browser",
    Reason.PROXY: "the proxy fails or refuses its credentials: check --proxy",
    Reason.CHALLENGE_UNSOLVED: "yt-dlp cannot solve YouTube's JavaScript challenge: install the project as README.md "
                               "says (yt-dlp with its deno extra), check python -m pipelines.download.youtube, "
                               "update yt-dlp",
}

_MESSAGE = re.compile(r"^systemic \[(?P<trigger>[a-z_/0-9]+)\]")


def systemic_message(trigger: Reason, detail: str) -> str:
  """A systemic failure's message: its cause first, as :func:`trigger_of` reads it back."""
  return f"systemic [{trigger.qualified}] {detail}"


def trigger_of(message: str) -> Optional[Reason]:
  """The cause a systemic failure's message names, if it names one."""
  found = _MESSAGE.match(message)
  if found is None:
    return None
  reason_class, _, reason = found.group("trigger").partition("/")
  try:
    trigger = Reason(reason)
  except ValueError:
    return None
  return trigger if trigger.failure_class.value == reason_class else None


class SystemicFailureBreaker:
  """Counts suspect failures in a row (successes reset the count); open after `threshold` of them. Thread-safe.

  Args:
    threshold: suspect failures in a row that stop the worker; 0 never stops it.
  """

  def __init__(self, threshold: int):
    if threshold < 0:
      raise ValueError(f"the breaker threshold must not be negative, got {threshold}")
    self._threshold = threshold
    self._lock = threading.Lock()
    self._run: list[Reason] = []
    self._trigger: Optional[Reason] = None

  @property
  def open(self) -> bool:
    return self._trigger is not None

  @property
  def trigger(self) -> Optional[Reason]:
    """The most frequent reason of the run that opened the breaker."""
    return self._trigger

  def record(self, ok: bool, reason: Optional[Reason] = None) -> None:
    """One clip's outcome: a success, or a failure for `reason`."""
    with self._lock:
      if ok:
        self._run.clear()
      elif reason in SUSPECT_REASONS and self._trigger is None:
        self._run.append(reason)
        if self._threshold and len(self._run) >= self._threshold:
          self._trigger = collections.Counter(self._run).most_common(1)[0][0]

  def describe(self) -> str:
    return (f"this worker stopped after {len(self._run)} clips in a row failed with {self._trigger.qualified}: "
            f"{FIXES[self._trigger]}")


def distrusted(record, stopped: int):
  """A suspect failure's ledger record, re-recorded as transient/systemic (`stopped`: clips not fetched)."""
  import dataclasses

  from pipelines.download.ledger import utc_now_iso

  return dataclasses.replace(
      record, reason_class=Reason.SYSTEMIC.failure_class.value, reason=Reason.SYSTEMIC.value,
      message=systemic_message(Reason(record.reason), f"not trusted as the clip's own: {stopped} clips were not "
                               f"fetched after runs of such failures ({record.message})"),
      checked_at=utc_now_iso())  # later than the record it supersedes


def is_suspect(reason: Optional[str]) -> bool:
  """Whether a ledger record's reason is one that, in a run, points at the worker."""
  return reason in {r.value for r in SUSPECT_REASONS}


def stop_line(triggers: Iterable[Optional[Reason]], num_systemic: int, then: str) -> str:
  """The line a run whose downloads stopped ends with: what happened, what to fix, how to go on (`then`).

  Args:
    triggers: the causes of the systemic failures (trigger_of their messages).
    num_systemic: how many clips are recorded as transient/systemic.
    then: what to run once it is fixed.
  """
  counted = collections.Counter(t for t in triggers if t is not None)
  trigger = counted.most_common(1)[0][0] if counted else None
  cause = (f"downloads stopped after runs of {trigger.qualified}: {FIXES[trigger]}" if trigger
           else "downloads stopped after runs of failures that point at this machine")
  return f"{cause}; {num_systemic} clips are recorded as {Reason.SYSTEMIC.qualified}, none as gone; once fixed, {then}"
