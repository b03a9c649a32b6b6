"""How long to wait before retrying a transient failure.

Bounded exponential backoff with jitter: attempt n waits about
``base_delay_s * 2**(n-1)``, at most ``max_delay_s``, scaled down by a random
factor in ``[1 - jitter, 1]`` so that workers that failed together do not retry
together. A server's Retry-After is a floor: we never come back sooner than it
asked. A Retry-After above ``max_retry_after_s`` ends the retries instead:
waiting less would ignore the server, waiting that long would idle the worker;
the clip stays TRANSIENT in the ledger for a later refresh.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Optional


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """When and how often transient failures are retried.

  Attributes:
    max_attempts: attempts per clip, the first included (1 = never retry).
    base_delay_s: the wait before the second attempt, before jitter.
    max_delay_s: the longest computed wait (Retry-After aside).
    jitter: fraction of the computed wait that is randomized away, in [0, 1].
    max_retry_after_s: the longest Retry-After we are willing to wait; a longer
      one stops retrying.
    invalid_media_retries: extra attempts for a download that arrived but does
      not decode or cover the span (a transfer may have been cut short without
      anyone noticing); within max_attempts.
  """

  max_attempts: int = 3
  base_delay_s: float = 2.0
  max_delay_s: float = 60.0
  jitter: float = 0.5
  max_retry_after_s: float = 120.0
  invalid_media_retries: int = 1

  def __post_init__(self):
    if self.max_attempts < 1:
      raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
    if self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_retry_after_s < 0:
      raise ValueError("retry delays must not be negative")
    if not 0.0 <= self.jitter <= 1.0:
      raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
    if self.invalid_media_retries < 0:
      raise ValueError(f"invalid_media_retries must not be negative, got {self.invalid_media_retries}")


def retry_delay(policy: RetryPolicy, failed_attempts: int, retry_after_s: Optional[float] = None,
                rng: Optional[random.Random] = None) -> Optional[float]:
  """Seconds to wait before the next attempt, or None to stop retrying.

  Args:
    policy: the retry policy.
    failed_attempts: attempts made so far (all failed), >= 1.
    retry_after_s: the server's Retry-After for the last failure, if any.
    rng: source of jitter; the module's random by default.
  """
  if failed_attempts < 1:
    raise ValueError(f"failed_attempts must be at least 1, got {failed_attempts}")
  if failed_attempts >= policy.max_attempts:
    return None
  if retry_after_s is not None and retry_after_s > policy.max_retry_after_s:
    return None
  exponential = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (failed_attempts - 1))
  draw = (rng or random).random()
  delay = exponential * (1.0 - policy.jitter * draw)
  if retry_after_s is not None:
    # Honour the server's floor; a little jitter above it spreads the herd.
    delay = max(delay, retry_after_s + policy.jitter * draw * min(1.0, retry_after_s))
  return delay
