"""The manifest record: its JSON document, its refusals, and its keys spelled in one module only."""

from __future__ import annotations

import ast
import json
import os
import pathlib

import pytest

from shared import contract, layout
from shared.manifest import (MANIFEST_VERSION, ClipOrigin, ClipOrigins, FailedClip, Manifest, ManifestError,
                             NothingLostError, read_manifest, write_manifest)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LABELS = contract.LabelMap.from_names("toy", ["a", "b"])
EXTRA = contract.LabelMap.from_names("toy_verb", ["x"])


def _manifest(**changes) -> Manifest:
  fields = dict(
      dataset="toy", split="train", requested=4,
      shards={"tfrecord": ("train-00000-of-00002", "train-00001-of-00002"),
              "arrayrecord": ("train-00000-of-00002.array_record", "train-00001-of-00002.array_record")},
      shard_clip_ids={"train-00000-of-00002": ("a", "b"), "train-00001-of-00002": ("c",)},
      shard_sizes={"train-00000-of-00002": 2048, "train-00001-of-00002": 1024,
                   "train-00000-of-00002.array_record": 4096, "train-00001-of-00002.array_record": 2048},
      failed_clips=(FailedClip("d", "permanent/http_404"),), label_map=LABELS, melspec_mean=-3.5, melspec_std=2.0,
      clips_without_audio=("c",),
      build_options={"clips_per_shard": 2}, request_fingerprint="ab" * 32, extra_label_maps={"toy_verb": EXTRA}, previous_build="/old",
      versions={"python": "3.11"}, created="2026-12-01T00:00:00+00:00")
  fields.update(changes)
  return Manifest(**fields)


def test_json_round_trip_in_the_documented_order():
  manifest = _manifest()
  document = manifest.to_json_dict()
  assert list(document) == ["manifest_version", "dataset", "split", "schema_version", "contract", "build_options",
                            "request_fingerprint", "counts", "melspec_mean", "melspec_std", "clips_without_audio", "shards",
                            "shard_clip_ids", "shard_sizes", "failed_clips",
                            "label_map", "versions", "created", "previous_build", "label_maps"]
  assert document["counts"] == {"requested": 4, "written": 3, "failed": 1,
                                "failed_by_reason": {"permanent/http_404": 1}}
  assert Manifest.from_json_dict(json.loads(json.dumps(document))) == manifest
  assert manifest.summary_line() == ("toy/train: requested 4 = written 3 + failed 1 (failures: permanent/http_404 1); "
                                     "2 shards; 1 written without audio")
  assert manifest.shard_holding() == {"a": "train-00000-of-00002", "b": "train-00000-of-00002",
                                      "c": "train-00001-of-00002"}


@pytest.mark.parametrize("changes, match", [
    (dict(requested=5), "requested 5 != written 3 \\+ failed 1"),
    (dict(failed_clips=(FailedClip("c", "transient/timeout"),)), "both written and failed"),
    (dict(shard_clip_ids={"s0": ("a", "b"), "s1": ("a", "c")}), "in two shards"),
    (dict(clips_without_audio=("d",)), "without audio that are not written"),
])
def test_nothing_lost_is_part_of_the_record(changes, match):
  with pytest.raises(NothingLostError, match=match):
    _manifest(**changes)


def test_sizes_are_of_shards_only():
  with pytest.raises(ManifestError, match=r"sizes of files that are not shards: \['elsewhere'\]"):
    _manifest(shard_sizes={"elsewhere": 1})


def test_documents_that_are_not_this_manifest_are_refused():
  document = _manifest().to_json_dict()
  with pytest.raises(ManifestError, match="manifest version 2"):
    Manifest.from_json_dict({**document, "manifest_version": MANIFEST_VERSION + 1})
  with pytest.raises(ManifestError, match="no 'shard_clip_ids'"):
    Manifest.from_json_dict({k: v for k, v in document.items() if k != "shard_clip_ids"})
  with pytest.raises(ManifestError, match="counts.written is 7"):
    Manifest.from_json_dict({**document, "counts": {**document["counts"], "written": 7}})
  with pytest.raises(NothingLostError):
    Manifest.from_json_dict({**document, "failed_clips": []})
  without_version = {k: v for k, v in document.items() if k != "manifest_version"}  # written before the key
  assert Manifest.from_json_dict(without_version) == _manifest()


def test_clip_origins_list_only_the_clips_not_of_the_commonest_origin():
  origins = ClipOrigins.of({"a": ClipOrigin.DOWNLOADED, "b": ClipOrigin.LOCAL, "c": ClipOrigin.DOWNLOADED})
  manifest = _manifest(clip_origins=origins)
  document = json.loads(json.dumps(manifest.to_json_dict()))
  assert document["clip_origins"] == {"counts": {"downloaded": 2, "local": 1}, "default": "downloaded",
                                      "listed": {"local": ["b"]}}
  read_back = Manifest.from_json_dict(document)
  assert read_back == manifest and read_back.clip_origins.origin_of("c") == "downloaded"
  assert read_back.clip_origins.by_clip(read_back.written_clip_ids()) == {"a": "downloaded", "b": "local",
                                                                          "c": "downloaded"}
  assert manifest.summary_line().endswith("; written from downloaded 2, local 1")
  assert _manifest().clip_origins is None and "clip_origins" not in _manifest().to_json_dict()  # older manifests
  # 500 written clips, 499 downloaded: one id is listed, not 500.
  many = {f"clip{i:03d}": ClipOrigin.DOWNLOADED for i in range(500)}
  many["clip007"] = ClipOrigin.CARRIED_OVER
  assert ClipOrigins.of(many) == ClipOrigins(default="downloaded", listed={"carried_over": ("clip007",)})


@pytest.mark.parametrize("origins, match", [
    (ClipOrigins(default="local", listed={"downloaded": ("d",)}), "with an origin that are not written"),
    (ClipOrigins(default=None), "written clips without an origin"),
    (ClipOrigins(default="local", listed={"downloaded": ("a",), "carried_over": ("a",)}), "two origins"),
])
def test_clip_origins_must_account_for_the_written_clips(origins, match):
  with pytest.raises(NothingLostError, match=match):
    _manifest(clip_origins=origins)


def test_unknown_origins_and_wrong_origin_counts_are_refused():
  with pytest.raises(ManifestError, match="unknown clip origins \\['mirrored'\\]"):
    ClipOrigins(default="mirrored")
  document = _manifest(clip_origins=ClipOrigins(default="local")).to_json_dict()
  with pytest.raises(ManifestError, match="clip_origins.counts"):
    Manifest.from_json_dict({**document, "clip_origins": {**document["clip_origins"], "counts": {"local": 2}}})
  with pytest.raises(ManifestError, match="unknown clip origins"):
    Manifest.from_json_dict({**document, "clip_origins": {"default": "elsewhere"}})


def test_contract_check_names_the_schema_and_the_parameters():
  with pytest.raises(contract.ContractMismatchError, match="schema version 2"):
    _manifest(schema_version=contract.SCHEMA_VERSION + 1).check_contract("build x")
  with pytest.raises(contract.ContractMismatchError, match="video_fps"):
    _manifest(contract={**contract.contract_parameters(), "video_fps": 30}).check_contract("build x")
  _manifest().check_contract("build x")


def test_written_last_with_its_label_map_and_read_back(tmp_path):
  root = str(tmp_path / "build")
  with pytest.raises(ManifestError, match="no manifest.json in"):
    read_manifest(root)
  write_manifest(root, _manifest())
  assert read_manifest(root) == _manifest()
  assert sorted(os.listdir(root)) == [layout.LABEL_MAP_NAME, layout.MANIFEST_NAME]
  assert contract.LabelMap.from_json_dict(json.loads((tmp_path / "build" / "label_map.json").read_text())) == LABELS
  (tmp_path / "build" / "manifest.json").write_text("{not json")
  with pytest.raises(ManifestError, match="not valid JSON"):
    read_manifest(root)


def test_manifest_keys_are_spelled_in_one_module():
  # The keys no config or command line shares (those say melspec_mean, previous_build too).
  distinctive_keys = {"manifest_version", "shard_clip_ids", "failed_clips", "failed_by_reason", "label_maps",
                      "build_options", "clip_origins"}
  spelled_in = {}
  for package in ("shared", "pipelines", "trainer", "demo", "testsupport", "benchmarks"):
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in distinctive_keys:
          spelled_in.setdefault(node.value, set()).add(path.relative_to(REPO_ROOT).as_posix())
  assert spelled_in == {key: {"shared/manifest.py"} for key in distinctive_keys}
