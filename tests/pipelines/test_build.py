"""Planning a build: what it fetches and what it fails before anything runs."""

from __future__ import annotations

import math

import pytest

from pipelines import build
from pipelines.sources.rows import ClipRequest
from shared import contract
from shared.failures import Reason


def _request(clip_id: str, start: float, end: float) -> ClipRequest:
  return ClipRequest(dataset="epic_kitchens", clip_id=clip_id, source_id="P01_11", start_s=start, end_s=end,
                     label_indices=(0,), label_names=("take plate",))


def _split(*requests) -> build.SplitToBuild:
  return build.SplitToBuild(dataset="epic_kitchens", split="validation",
                            label_map=contract.LabelMap.from_names("actions", ["take plate"]), requests=requests)


def test_spans_longer_than_max_span_seconds_fail_unfetched(tmp_path):
  short, limit, long = _request("P01_11_0", 0.0, 1.89), _request("P01_11_1", 10.0, 160.0), _request(
      "P01_11_2", 10.0, 160.5)
  plan = build.plan_build(_split(short, limit, long), build.BuildOptions(output_dir=str(tmp_path), max_span_s=150.0))

  assert [r.clip_id for r in plan.to_fetch] == ["P01_11_0", "P01_11_1"]  # 150 s exactly is allowed
  [failure] = plan.known_failures
  assert (failure.clip_id, failure.status, failure.reason_class, failure.reason) == (
      "P01_11_2", "failed", Reason.INVALID_SPAN.failure_class.value, Reason.INVALID_SPAN.value)
  assert "150.500 s" in failure.message and "--max_span_seconds=150" in failure.message
  assert (failure.start_s, failure.end_s) == (10.0, 160.5)
  assert plan.split.num_requested == 3  # still requested: the manifest counts it as failed


def test_the_default_span_limit_keeps_epic_kitchens_longest_action(tmp_path):
  # P31_10_30 of EPIC_100_validation.csv, "spread honey on rusks": 00:03:40.02 to 00:06:07.00, 146.98 s.
  longest = _request("P31_10_30", 220.02, 367.0)
  plan = build.plan_build(_split(longest), build.BuildOptions(output_dir=str(tmp_path)))
  assert plan.to_fetch == (longest,) and not plan.known_failures


@pytest.mark.parametrize("bad", [0.0, -10.0, math.nan, math.inf])
def test_max_span_seconds_must_be_a_positive_number(bad, tmp_path):
  with pytest.raises(build.BuildError, match="--max_span_seconds"):
    build.BuildOptions(output_dir=str(tmp_path), max_span_s=bad)
