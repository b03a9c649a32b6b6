"""A clip built from an audio-only file (has_video 0: black square frames) trains like any other."""

import numpy as np
import pytest

from shared import contract, layout, records
from shared.media import decode, generator, logmel
from trainer.data import grain_input, manifest as manifest_lib, preprocess, sampling, synthetic, tfdata_input

SHORT_SIDE = 48


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  """Two synthetic clips and one made, as the pipelines make it, from an audio-only file."""
  work = tmp_path_factory.mktemp("no_video")
  audio_only = generator.write_clip(str(work / "tone.mkv"), generator.ClipSpec(duration_s=3.0, video=False,
                                                                                    container="mkv"))
  decoded = decode.ClipDecoder(decode.DecodeOptions(short_side=SHORT_SIDE)).decode(audio_only.path, 0.0, 2.5,
                                                                                 require_video=False)
  silent_picture = records.ClipRecord(
      clip_id="audio_only", dataset="vggsound", source_id="audio_only", start_s=0.0, end_s=2.5,
      jpeg_frames=decoded.jpeg_frames, frame_width=decoded.frame_width, frame_height=decoded.frame_height,
      melspec=logmel.log_mel(decoded.audio), num_audio_samples=decoded.audio.size, label_indices=[1],
      label_names=["class_1"], has_audio=True, has_video=False, decoded_duration_s=decoded.decoded_duration_s,
      source_fps=decoded.source_fps, source_width=decoded.source_width, source_height=decoded.source_height)
  others = [synthetic.synthetic_record(i, dataset="vggsound", seconds=2.0, label=i % 4, num_classes=4,
                                       frame_size=(64, 48), rng=np.random.default_rng(i)) for i in (0, 2)]
  labels = contract.LabelMap.from_names("vggsound", [f"class_{i}" for i in range(4)])
  directory = str(work / "build")
  synthetic.write_build(directory, [others[0], silent_picture, others[1]], dataset="vggsound", split="train",
                        label_map=labels, num_shards=1)
  return manifest_lib.read_manifest(directory)


def test_audio_only_clips_batch_like_the_others_in_grain_and_tf_data(build):
  prep = preprocess.ClipPreprocessor(
      window=sampling.WindowSpec.paper(1.28, 4), modalities=("rgb", "spectrogram"), label_kind=preprocess.ONE_HOT,
      num_classes=4, melspec_mean=build.melspec_mean, melspec_std=build.melspec_std, crop_size=32, min_resize=48,
      num_test_crops=2, seed=3)
  source = grain_input.ArrayRecordShards(build.shard_paths(layout.ARRAYRECORD))
  assert records.decode(source[1]).has_video is False
  [grain_batch] = list(grain_input.test_dataset(source, prep, batch_size=3, read_threads=1))
  shards = tfdata_input.TFRecordShards(build.shard_paths(layout.TFRECORD))
  [tf_batch] = list(tfdata_input.numpy_batches(tfdata_input.test_dataset(shards, prep, batch_size=3), shards))
  for batch in (grain_batch, tf_batch):
    rgb, spectrogram = batch["inputs"]["rgb"], batch["inputs"]["spectrogram"]
    assert rgb.shape[:4] == (3, 2, 4, 32) and spectrogram.shape[:2] == (3, 2)  # every clip, the same shapes
    assert int(rgb[1].max()) <= 2 and rgb[0].max() > 100  # black frames for the clip without video
    assert np.isfinite(spectrogram).all() and spectrogram[1].std() > 0.1  # its audio is there
    assert batch["label"][1].tolist() == [0, 1, 0, 0]
  np.testing.assert_array_equal(grain_batch["inputs"]["rgb"], tf_batch["inputs"]["rgb"])
