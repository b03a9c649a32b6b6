"""The trainer's input side: build manifests, record reading, preprocessing, grain and tf.data pipelines.

  manifest        reads and checks a build's manifest.json (contract, labels, log-mel moments, shards)
  clip_reader     reads the frames and log-mel steps an example needs from a serialized record
  mapped_array_record  local ArrayRecord shards read in place (memory map), only the bytes an example uses
  sampling        window starts, frame indices and log-mel rows (train: random; test: uniform crops)
  preprocess      record -> example (decode, crop, flip, SpecAugment, labels), shared by both pipelines
  grain_input     grain over ArrayRecord shards: a deterministic, checkpointable index -> example map
  tfdata_input    tf.data over TFRecord shards, the same examples
  input_pipeline  config -> preprocessor and iterators
  device_ops      on-accelerator RGB finishing: colour jitter, scaling to [-1, 1]
  mixup           mixup and modality mixup on the accelerator
  synthetic       small synthetic builds for tests, benchmarks and the tiny config
"""
