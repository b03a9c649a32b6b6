r"""Trainer throughput on this machine: input pipeline vs plain JPEG decoding, and tiny-model training.

    python benchmarks/trainer_throughput.py [--clips 24] [--examples 96] [--train_steps 60]

Measures, in one run, on synthetic builds written to a temporary directory:

1. Input pipeline, per core: `ClipPreprocessor.train_example` on one thread
   (the paper's setting: 10 s clips, 8 frames over t = 8 s, 224 crops from
   256-short-side JPEGs, 800 x 128 log-mel with SpecAugment), examples/s;
   also with each record read from its ArrayRecord shard first, as written by
   shared.records (brotli, the library default) and uncompressed.
2. The floor it is compared with: decoding with Pillow the same 8 JPEG
   frames of each example (same records, same window starts), examples/s on
   one thread. The goal is pipeline / floor >= 0.7.
3. The grain pipeline end to end (threads, batching) and the tf.data
   pipeline, examples/s on all cores.
4. Training the tiny config on CPU: examples/s after compilation, and the
   fraction of step time spent waiting for input.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image


def _rate(count: int, seconds: float) -> float:
  return count / max(seconds, 1e-9)


def measure_pipeline(root: str, clips: int, examples: int) -> dict:
  from trainer.data import clip_reader, grain_input, manifest as manifest_lib, preprocess, sampling, synthetic, tfdata_input

  directory = os.path.join(root, "paper_like")
  synthetic.write_synthetic_build(directory, num_clips=clips, seconds=10.0, frame_size=(340, 256), texture=True,
                                  num_shards=2)
  manifest = manifest_lib.read_manifest(directory)
  source = grain_input.ArrayRecordShards(manifest.shard_paths(manifest_lib.ARRAYRECORD))
  prep = preprocess.ClipPreprocessor(
      window=sampling.WindowSpec.paper(8.0, 8), modalities=("rgb", "spectrogram"), label_kind=preprocess.ONE_HOT,
      num_classes=4, melspec_mean=manifest.melspec_mean, melspec_std=manifest.melspec_std, crop_size=224,
      min_resize=256, seed=0)
  records = [source[i] for i in range(len(source))]  # read once: both loops then measure CPU work only
  jobs = [(records[i % clips], i // clips, i % clips) for i in range(examples)]

  # The floor: Pillow decoding of exactly the frames each example uses.
  frames_of_job = []
  for serialized, epoch, index in jobs:
    clip = clip_reader.parse_clip(serialized)
    start = sampling.train_start(prep.window, clip.num_frames, np.random.default_rng([prep.seed, epoch, index]))
    frames_of_job.append([clip.jpeg(int(k)) for k in sampling.frame_indices(prep.window, start, clip.num_frames)])
  mean_jpeg_bytes = float(np.mean([len(f) for frames in frames_of_job for f in frames]))

  def decode_floor():
    began = time.perf_counter()
    for frames in frames_of_job:
      for jpeg in frames:
        np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    return time.perf_counter() - began

  def pipeline():
    began = time.perf_counter()
    for serialized, epoch, index in jobs:
      prep.train_example(serialized, epoch, index)
    return time.perf_counter() - began

  # The same records in an uncompressed ArrayRecord file (shared.records writes
  # the library default, brotli, which barely shrinks JPEG bytes).
  from array_record.python.array_record_module import ArrayRecordWriter

  uncompressed_path = os.path.join(root, "uncompressed.array_record")
  writer = ArrayRecordWriter(uncompressed_path, "group_size:1,uncompressed")
  for serialized in records:
    writer.write(serialized)
  writer.close()
  uncompressed = grain_input.ArrayRecordShards([uncompressed_path])

  def read_and_pipeline(shards):
    def run():
      began = time.perf_counter()
      for _, epoch, index in jobs:
        prep.train_example(shards[index], epoch, index)
      return time.perf_counter() - began
    return run

  timed = {"floor": decode_floor, "pipeline": pipeline, "read_default": read_and_pipeline(source),
           "read_uncompressed": read_and_pipeline(uncompressed)}
  best = {name: float("inf") for name in timed}
  for repeat in range(4):  # interleaved, so all see the same machine state; the first warms up
    for name, run in timed.items():
      seconds = run()
      if repeat:
        best[name] = min(best[name], seconds)
  floor_rate, pipeline_rate = _rate(examples, best["floor"]), _rate(examples, best["pipeline"])

  cores = os.cpu_count() or 1
  dataset = grain_input.train_dataset(source, prep, batch_size=8, seed=0, read_threads=cores)
  iterator = iter(dataset)
  next(iterator)
  began = time.perf_counter()
  batches = max(1, examples // 8)
  for _ in range(batches):
    next(iterator)
  grain_rate = _rate(batches * 8, time.perf_counter() - began)

  shards = tfdata_input.TFRecordShards(manifest.shard_paths(manifest_lib.TFRECORD))
  tf_batches = tfdata_input.numpy_batches(tfdata_input.train_dataset(
      shards, prep, batch_size=8, seed=0, parallel_calls=cores), shards)
  next(tf_batches)
  began = time.perf_counter()
  for _ in range(batches):
    next(tf_batches)
  tfdata_rate = _rate(batches * 8, time.perf_counter() - began)
  return {
      "jpeg_frame_kbytes": mean_jpeg_bytes / 1000,
      "frame_size": "340x256",
      "jpeg_decode_floor_examples_per_s_per_core": floor_rate,
      "pipeline_examples_per_s_per_core": pipeline_rate,
      "pipeline_over_floor": pipeline_rate / floor_rate,
      "read_and_pipeline_examples_per_s_per_core": _rate(examples, best["read_default"]),
      "read_uncompressed_and_pipeline_examples_per_s_per_core": _rate(examples, best["read_uncompressed"]),
      "cores": cores,
      "grain_examples_per_s_all_cores": grain_rate,
      "tfdata_examples_per_s_all_cores": tfdata_rate,
  }


def measure_training(root: str, steps: int) -> dict:
  from trainer import train
  from trainer.configs import tiny
  from trainer.data import synthetic

  train_dir = os.path.join(root, "tiny_train")
  synthetic.write_synthetic_build(train_dir, num_clips=64, seconds=2.0)
  config = tiny.get_config()
  config.data.train_dir = train_dir
  config.total_steps = steps
  config.log_every_steps = 10
  config.checkpoint_every_steps = steps  # one save, at the end
  result = train.train_and_evaluate(config, os.path.join(root, "tiny_run"))
  after_compile = [metrics for step, metrics in result["history"] if step > 10]
  return {
      "tiny_train_examples_per_s": float(np.mean([m["examples_per_s"] for m in after_compile])),
      "tiny_train_input_wait_fraction": float(np.mean([m["input_wait_fraction"] for m in after_compile])),
      "tiny_batch_size": config.batch_size,
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clips", type=int, default=24, help="10 s clips in the paper-like build")
  parser.add_argument("--examples", type=int, default=96, help="examples per pipeline measurement")
  parser.add_argument("--train_steps", type=int, default=60, help="tiny-config training steps (0: skip)")
  parser.add_argument("--json", help="also write the figures to this JSON file")
  args = parser.parse_args(argv)

  root = tempfile.mkdtemp(prefix="mbt_bench_")
  try:
    figures = measure_pipeline(root, args.clips, args.examples)
    if args.train_steps:
      figures.update(measure_training(root, args.train_steps))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  print("\ninput pipeline (paper setting: 8 frames of 224 from 256p JPEGs, 800x128 log-mel):")
  print(f"  plain JPEG decoding of the same frames : {figures['jpeg_decode_floor_examples_per_s_per_core']:.1f} ex/s/core")
  print(f"  pipeline (train_example)               : {figures['pipeline_examples_per_s_per_core']:.1f} ex/s/core")
  print(f"  ratio pipeline / floor                 : {figures['pipeline_over_floor']:.2f} (goal >= 0.7)")
  floor = figures["jpeg_decode_floor_examples_per_s_per_core"]
  for key, label in (("read_and_pipeline_examples_per_s_per_core", "ArrayRecord read (brotli) + pipeline"),
                     ("read_uncompressed_and_pipeline_examples_per_s_per_core", "ArrayRecord read (uncompressed) + pipe")):
    print(f"  {label:39s}: {figures[key]:.1f} ex/s/core ({figures[key] / floor:.2f} of the floor)")
  print(f"  grain, {figures['cores']} cores                         : {figures['grain_examples_per_s_all_cores']:.1f} ex/s")
  print(f"  tf.data, {figures['cores']} cores                       : {figures['tfdata_examples_per_s_all_cores']:.1f} ex/s")
  if "tiny_train_examples_per_s" in figures:
    print("training, tiny config on CPU:")
    print(f"  examples/s (after compilation)         : {figures['tiny_train_examples_per_s']:.1f}")
    print(f"  share of step time waiting for input   : {figures['tiny_train_input_wait_fraction']:.0%}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  main()
