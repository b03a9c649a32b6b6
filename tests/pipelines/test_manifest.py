"""The manifest: nothing-lost accounting, log-mel moments, the written file."""

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines import manifest, shards
from shared import contract
from shared.manifest import Manifest, NothingLostError, read_manifest

LABELS = contract.LabelMap.from_names("toy", ["a", "b"])


def _info(index, ids):
  return shards.ShardInfo(index=index, files={"tfrecord": f"train-{index:05d}-of-00002"}, clip_ids=tuple(ids),
                          num_bytes=10)


def _build(requested, infos, failures, moments=((6.0, 14.0, 3),)):
  return manifest.build_manifest(dataset="toy", split="train", label_map=LABELS, requested=requested,
                                 shard_infos=infos, failures=failures, moments=moments,
                                 build_options={}).to_json_dict()


def test_counts_add_up_and_moments_are_exact():
  values = np.array([1.0, 2.0, 3.0])
  result = _build(4, [_info(1, ["c"]), _info(0, ["a", "b"])], [("d", "permanent/unavailable")],
                  moments=[(values.sum(), np.square(values).sum(), 3)])
  assert result["counts"] == {"requested": 4, "written": 3, "failed": 1,
                              "failed_by_reason": {"permanent/unavailable": 1}}
  assert result["melspec_mean"] == pytest.approx(values.mean())
  assert result["melspec_std"] == pytest.approx(values.std())
  assert result["shards"]["tfrecord"] == ["train-00000-of-00002", "train-00001-of-00002"]
  assert result["shard_clip_ids"]["train-00000-of-00002"] == ["a", "b"]
  contract.check_contract(result["contract"])
  assert "requested 4 = written 3 + failed 1" in Manifest.from_json_dict(result).summary_line()


@pytest.mark.parametrize("requested, infos, failures", [
    (5, [_info(0, ["a", "b"])], [("d", "x")]),  # a clip vanished
    (3, [_info(0, ["a", "b"])], [("b", "x")]),  # written and failed
    (3, [_info(0, ["a"]), _info(1, ["a"])], [("d", "x")]),  # in two shards
])
def test_lost_or_double_counted_clips_fail_the_build(requested, infos, failures):
  with pytest.raises(NothingLostError):
    _build(requested, infos, failures)


def test_write_manifest_transform_writes_the_file(tmp_path):
  with TestPipeline() as pipeline:
    inputs = {
        "shards": pipeline | "S" >> beam.Create([_info(0, ["a"]), _info(1, ["b"])]),
        "failures": pipeline | "F" >> beam.Create([("c", "transient/http_503")]),
        "moments": pipeline | "M" >> beam.Create([(1.0, 1.0, 1), (3.0, 9.0, 1)]),
    }
    _ = inputs | manifest.WriteManifest(str(tmp_path), dataset="toy", split="train", label_map=LABELS,
                                        requested=3, build_options={"clips_per_shard": 1})
  written = read_manifest(str(tmp_path)).to_json_dict()
  assert written["counts"]["written"] == 2 and written["melspec_mean"] == pytest.approx(2.0)
  assert contract.LabelMap.from_json_dict(json.loads((tmp_path / "label_map.json").read_text())) == LABELS
