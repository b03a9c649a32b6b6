"""The trainer's inputs on gs://, against the GCS emulator: the manifest, the shards' record counts, the refusals.

tf.data reads TFRecord bytes from gs:// through TensorFlow's own GCS client,
which cannot be pointed at an emulator (see WORKSPACE.md, "The trainer and
gs://"); everything the trainer checks before that goes through shared.files.
"""

import pytest

from shared import files, layout
from trainer.data import grain_input, input_pipeline, manifest as manifest_lib, synthetic


@pytest.fixture(scope="module")
def gcs_build(gcs):
  directory = gcs.url("trainer-inputs", "vggsound", "train")
  synthetic.write_synthetic_build(directory, num_clips=6, seconds=1.0, frame_size=(32, 24))
  return directory


def test_tfrecord_shards_on_gcs_are_counted_against_the_manifest(gcs_build):
  manifest = manifest_lib.read_manifest(gcs_build)
  assert manifest.num_records == 6
  shards = input_pipeline.open_shards(manifest, layout.TFRECORD)
  assert len(shards) == 6 and all(path.startswith("gs://") for path in shards.paths)


def test_a_gcs_build_missing_records_is_refused(gcs, gcs_build):
  damaged = gcs.url("trainer-inputs", "short", "train")
  manifest = synthetic.write_synthetic_build(damaged, num_clips=6, seconds=1.0, frame_size=(32, 24),
                                             formats=(layout.TFRECORD,))
  shard = files.join(damaged, manifest.shards[layout.TFRECORD][0])
  files.write_bytes(shard, b"")  # its records lost
  with pytest.raises(grain_input.ShardError, match=rf"{shard}: 0 bytes, the build's manifest says \d+"):
    input_pipeline.open_shards(manifest_lib.read_manifest(damaged), layout.TFRECORD)
  # A manifest from before shard sizes were recorded: the records are counted instead.
  document = files.read_json(files.join(damaged, "manifest.json"))
  del document["shard_sizes"]
  files.write_json(files.join(damaged, "manifest.json"), document)
  with pytest.raises(grain_input.ShardError, match=r"manifest counts 6 records, the tfrecord shards hold 3"):
    input_pipeline.open_shards(manifest_lib.read_manifest(damaged), layout.TFRECORD)


def test_arrayrecord_shards_on_gcs_are_refused_at_once_not_hung(gcs_build):
  """The ArrayRecord library hangs on gs://: the trainer says so, and what to do, before the library is asked."""
  with pytest.raises(grain_input.ShardError) as raised:
    input_pipeline.open_shards(manifest_lib.read_manifest(gcs_build), layout.ARRAYRECORD)
  message = str(raised.value)
  assert "cannot be read from gs://" in message and gcs_build in message
  assert "--mount_bucket" in message and "config.data.format='tfrecord'" in message
