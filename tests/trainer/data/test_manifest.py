"""The build manifest reader refuses foreign or broken builds with clear errors."""

import json

import pytest

from shared import contract, layout
from trainer.configs import tiny
from trainer.data import input_pipeline, manifest as manifest_lib, synthetic


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("build"))
  synthetic.write_synthetic_build(directory, num_clips=4, seconds=1.0, num_shards=2)
  return directory


def _rewrite(directory, tmp_path, **changes):
  with open(f"{directory}/manifest.json") as f:
    raw = json.load(f)
  for key, value in changes.items():
    if value is None:
      raw.pop(key)
    else:
      raw[key] = value
  return manifest_lib.manifest_from_dict(raw, str(tmp_path))


def test_reads_a_build(build):
  manifest = manifest_lib.read_manifest(build)
  assert manifest.dataset == "vggsound" and manifest.split == "train" and manifest.num_records == 4
  assert len(manifest.label_map) == 4 and manifest.melspec_std > 0
  paths = manifest.shard_paths(layout.ARRAYRECORD)
  assert [p.rsplit("/", 1)[1] for p in paths] == ["vggsound-train-00000-of-00002.array_record",
                                                   "vggsound-train-00001-of-00002.array_record"]
  assert manifest.shard_paths(layout.TFRECORD)[0].endswith("vggsound-train-00000-of-00002")


def test_contract_mismatch_names_every_parameter(build, tmp_path):
  other = {**contract.contract_parameters(), "video_fps": 30, "mel_num_bins": 64}
  with pytest.raises(contract.ContractMismatchError) as error:
    _rewrite(build, tmp_path, contract=other)
  assert "video_fps: build" in str(error.value) and "mel_num_bins" in str(error.value)


def test_schema_version_mismatch(build, tmp_path):
  with pytest.raises(contract.ContractMismatchError, match="schema version 2"):
    _rewrite(build, tmp_path, schema_version=contract.SCHEMA_VERSION + 1)


def test_missing_keys_and_missing_manifest(build, tmp_path):
  with pytest.raises(manifest_lib.ManifestError, match="no 'label_map'"):
    _rewrite(build, tmp_path, label_map=None)
  with pytest.raises(manifest_lib.ManifestError, match="melspec_mean"):
    _rewrite(build, tmp_path, melspec_std=0.0)
  with pytest.raises(manifest_lib.ManifestError, match="no manifest.json"):
    manifest_lib.read_manifest(str(tmp_path))
  (tmp_path / "manifest.json").write_text("{not json")
  with pytest.raises(manifest_lib.ManifestError, match="not valid JSON"):
    manifest_lib.read_manifest(str(tmp_path))


def test_a_format_the_build_lacks(tmp_path):
  synthetic.write_synthetic_build(str(tmp_path), num_clips=2, seconds=1.0, num_shards=1, formats=(layout.TFRECORD,))
  with pytest.raises(manifest_lib.ManifestError, match="no arrayrecord shards"):
    manifest_lib.read_manifest(str(tmp_path)).shard_paths(layout.ARRAYRECORD)


def test_the_config_must_fit_the_build(build):
  manifest = manifest_lib.read_manifest(build)
  config = tiny.get_config()
  input_pipeline.check_labels(config, manifest)
  with config.unlocked():
    config.model.num_classes = 7
  with pytest.raises(input_pipeline.ConfigError, match="4 classes"):
    input_pipeline.check_labels(config, manifest)
  with pytest.raises(input_pipeline.ConfigError, match="holds 'vggsound' clips"):
    input_pipeline.check_labels(tiny.get_config("audioset"), manifest)


def test_epic_head_sizes_must_match_the_builds_verb_and_noun_maps(tmp_path):
  synthetic.write_synthetic_build(str(tmp_path), dataset="epic_kitchens", num_clips=2, seconds=1.0, num_shards=1,
                                  class_heads={"verb": 4, "noun": 5})
  manifest = manifest_lib.read_manifest(str(tmp_path))
  assert len(manifest.head_label_map("verb")) == 4 and manifest.head_label_map("noun").name == "epic_noun"
  input_pipeline.check_labels(tiny.get_config("epic_kitchens"), manifest)  # tiny: 4 verbs, 5 nouns
  config = tiny.get_config("epic_kitchens")
  with config.unlocked():
    config.model.class_heads.noun = 300
  with pytest.raises(input_pipeline.ConfigError, match="5 noun classes"):
    input_pipeline.check_labels(config, manifest)
